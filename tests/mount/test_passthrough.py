#!/usr/bin/env python3
"""FUSE passthrough: the kernel reads verified slabs and writes staging
files itself, and the guarantees still hold. The suite runs this file twice,
with passthrough on (where the kernel and privileges allow) and with
KVCFS_TEST_OPTIONS=passthrough=off; each test says what differs."""
import errno
import mmap
import os
import socket
import threading
import time

from harness import (KVC, leftovers, main, metric, payload_of, run, settle, valid_vectors,
                     vector_bytes)
import workers

FORCED_OFF = "passthrough=off" in os.environ.get("KVCFS_TEST_OPTIONS", "")


def passthrough_on(m):
    """Whether this mount uses passthrough, checked against what it said at
    start: on unless forced off or the machine cannot (then it says why)."""
    on = metric(m, "passthrough") == 1
    said = m.stderr()
    if FORCED_OFF:
        assert not on and "passthrough off (-o passthrough=off)" in said, said
    elif not on:
        assert "passthrough off (" in said, said
        print("    passthrough unavailable here: " + said.split("passthrough off (")[1].split(")")[0])
    else:
        assert "passthrough on" in said, said
    return on


def publish(m, key, data, name="in.part"):
    with open(m.path(name), "wb") as f:
        f.write(data)
    os.rename(m.path(name), m.path(key + ".kvc"))


def write_after_publish(fd, on, size):
    """A write through a descriptor still open on a file that was published
    meanwhile: with passthrough it goes to the writer's own copy; on the
    daemon's path it gets EPERM. Either way it never reaches the slab,
    which the caller checks."""
    try:
        os.pwrite(fd, b"\xee" * 64, size - 64)
        assert on, "a write after publish went through on the daemon's path"
    except OSError as err:
        assert err.errno == errno.EPERM and not on, err


def test_verified_reads_go_to_the_kernel(ws):
    m = ws.mount()
    on = passthrough_on(m)
    key, data, payload = workers.slab_for(31, 3 << 20)
    publish(m, key, data)
    before = metric(m, "passthrough_opens_total")
    with open(m.path(key + ".kvc"), "rb") as f:
        got = f.read()
        # mmap works either way.
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            assert payload_of(mm[:]) == payload
    assert payload_of(got) == payload and len(got) == len(data)
    with open(m.path("payload", key), "rb") as f:  # never passthrough: offsets differ
        assert f.read() == payload
    assert metric(m, "passthrough_opens_total") - before == (1 if on else 0)


def test_staging_writes_and_size_while_written(ws):
    m = ws.mount()
    on = passthrough_on(m)
    key, data, _ = workers.slab_for(32, 2 << 20)
    fd = os.open(m.path("growing.part"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data[:1 << 20])
        assert os.stat(m.path("growing.part")).st_size == 1 << 20
        os.write(fd, data[1 << 20:])
        os.fsync(fd)
        assert os.stat(m.path("growing.part")).st_size == len(data)
    finally:
        os.close(fd)
    os.rename(m.path("growing.part"), m.path(key + ".kvc"))
    run([KVC, "verify", os.path.join(m.root, key + ".kvc")])
    if on:
        assert metric(m, "passthrough_opens_total") >= 1


def test_rename_while_written_never_changes_the_slab(ws):
    """A writer that still holds the staging file when it is renamed: with
    passthrough its later writes go to its own copy (the slab is the file as
    it was at the rename); without, they get EPERM."""
    m = ws.mount()
    on = passthrough_on(m)
    e = valid_vectors()[0]
    good = vector_bytes(e)
    fd = os.open(m.path("open.part"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, good)
        os.rename(m.path("open.part"), m.path(e["key"] + ".kvc"))
        write_after_publish(fd, on, len(good))
    finally:
        os.close(fd)
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        assert payload_of(f.read()) == payload_of(good)
    run([KVC, "verify", os.path.join(m.root, e["key"] + ".kvc")])
    assert leftovers(m.root) == [], leftovers(m.root)
    assert metric(m, "publish_copies_total") == (1 if on else 0)


def held_in_flight(fd):
    """A second reference to fd's open file that is no descriptor: a copy
    of it in flight in a socket. close(fd) then sends FLUSH but no RELEASE;
    closing the returned sockets drops the last reference (RELEASE)."""
    a, b = socket.socketpair(socket.AF_UNIX)
    socket.send_fds(a, [b"x"], [fd])
    return a, b


def rename_in_thread(src, dst):
    done = {}

    def run_it():
        started = time.monotonic()
        os.rename(src, dst)
        done["took"] = time.monotonic() - started

    t = threading.Thread(target=run_it)
    t.start()
    return t, done


def only_temp_inode(root):
    temps = [n for n in os.listdir(root) if not n.endswith(".kvc")]
    assert len(temps) == 1, temps
    return os.stat(os.path.join(root, temps[0])).st_ino


def test_rename_before_the_release_publishes_the_file_itself(ws):
    """cp + mv: close(2) returns before the kernel's RELEASE reaches the
    daemon, so the rename often comes first. The kernel has let go of the
    file at the close, and the daemon asks it so (a write lease) instead of
    waiting for the RELEASE: the file itself becomes the slab, every time
    (no copy, nothing left beside it, no wait)."""
    m = ws.mount()
    passthrough_on(m)
    for i in range(40):
        key, data, _ = workers.slab_for(5100 + i, 64 << 10)
        fd = os.open(m.path("late.part"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, data)
        os.close(fd)  # FLUSH; the RELEASE follows in the background
        temp = only_temp_inode(m.root)
        os.rename(m.path("late.part"), m.path(key + ".kvc"))
        assert os.stat(os.path.join(m.root, key + ".kvc")).st_ino == temp
    assert metric(m, "publish_copies_total") == 0
    assert all(n.endswith(".kvc") for n in os.listdir(m.root)), os.listdir(m.root)


def test_rename_while_the_file_is_in_flight_publishes_a_copy(ws):
    """The closed descriptor lives on in a socket (it could be received and
    written through): the kernel still holds the file, so the rename
    publishes a copy at once, without waiting for a RELEASE."""
    m = ws.mount()
    on = passthrough_on(m)
    key, data, payload = workers.slab_for(51, 1 << 20)
    fd = os.open(m.path("late.part"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, data)
    pending = held_in_flight(fd)
    os.close(fd)  # FLUSH; the RELEASE waits for the socket
    try:
        os.rename(m.path("late.part"), m.path(key + ".kvc"))
    finally:
        for s in pending:
            s.close()  # RELEASE
    with open(m.path(key + ".kvc"), "rb") as f:
        assert payload_of(f.read()) == payload
    assert metric(m, "publish_copies_total") == (1 if on else 0)
    run([KVC, "verify", os.path.join(m.root, key + ".kvc")])


def test_rename_while_a_dup_lives_on_publishes_a_copy(ws):
    """A dup that may still write stays open: with passthrough the rename
    publishes a copy at once (no waiting for a RELEASE that does not
    come); the dup's later writes never reach the slab. On the daemon's
    path they get EPERM."""
    m = ws.mount()
    on = passthrough_on(m)
    key, data, payload = workers.slab_for(52, 1 << 20)
    fd = os.open(m.path("dup.part"), os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, data)
    dup = os.dup(fd)
    os.close(fd)  # FLUSH; the dup keeps the file open
    try:
        t, done = rename_in_thread(m.path("dup.part"), m.path(key + ".kvc"))
        t.join()
        write_after_publish(dup, on, len(data))
    finally:
        os.close(dup)
    with open(m.path(key + ".kvc"), "rb") as f:
        assert payload_of(f.read()) == payload
    assert metric(m, "publish_copies_total") == (1 if on else 0)
    run([KVC, "verify", os.path.join(m.root, key + ".kvc")])


def same_key_slabs(ws, sizes):
    """Valid slabs of one key (same tokens) with payloads of these sizes,
    framed by the kvc tool."""
    import subprocess
    out = []
    for i, size in enumerate(sizes):
        work = ws.root("frame-%d" % i)
        with open(os.path.join(work, "p"), "wb") as f:
            f.write(os.urandom(size))
        subprocess.run([KVC, "build", "--fingerprint", workers.FP.hex(), "--quant", "q4_0",
                        "--ctx", workers.CTX.hex(), "--tokens", "7,8,9", "--payload",
                        os.path.join(work, "p"), "--hostname", "t", "-o", work],
                       check=True, capture_output=True)
        name = [n for n in os.listdir(work) if n.endswith(".kvc")][0]
        with open(os.path.join(work, name), "rb") as f:
            out.append((name[:-4], f.read()))
    return out


def read_by(m):
    """Bytes the daemon has read through read(2)-like calls so far."""
    with open("/proc/%d/io" % m.proc.pid) as f:
        return int(next(l for l in f if l.startswith("rchar:")).split()[1])


def test_publishing_over_a_big_slab_does_not_read_it(ws):
    """Small valid slabs of a key renamed over its 64 MiB slab, three times:
    each publish keeps the existing slab after a look at its head (the
    worker verifies it once, in the background), instead of reading all
    of it inside each rename while the directory is locked."""
    m = ws.mount()
    (key, big), (_, small) = same_key_slabs(ws, [64 << 20, 100])
    publish(m, key, big)
    settle(m)
    before = read_by(m)
    for i in range(3):
        publish(m, key, small, name="small-%d.part" % i)
        settle(m)
    assert read_by(m) - before < (100 << 20), read_by(m) - before
    with open(m.path(key + ".kvc"), "rb") as f:
        assert f.read()[72:] == big[72:]  # the first writer's slab stayed


def test_chmod_or_touch_keeps_the_close_check(ws):
    """mkstemp, write, close, fchmod/utime, rename: the check the close
    made still holds (no byte changed), so the rename does not read the
    file again under the directory's lock; a file refused at its close is
    refused again without being read."""
    m = ws.mount()
    if not passthrough_on(m):
        return  # the daemon's path checks tracked writes: nothing is read
    (key, data), = same_key_slabs(ws, [32 << 20])
    for name, content in (("good.part", data), ("bad.part", data[:-1] + b"x")):
        with open(m.path(name), "wb") as f:
            f.write(content)
        os.chmod(m.path(name), 0o644)
        os.utime(m.path(name), (1, 1))
        before = read_by(m)
        for _ in range(1 if content is data else 3):
            if content is data:
                os.rename(m.path(name), m.path(key + ".kvc"))
            else:
                try:
                    os.rename(m.path(name), m.path("%064x.kvc" % 5))
                    raise AssertionError("an invalid file was published")
                except OSError as err:
                    assert err.errno == errno.EBADMSG, err
        assert read_by(m) - before < (8 << 20), (name, read_by(m) - before)


def test_open_rename_over_an_existing_key_is_bounded_too(ws):
    """A 32 MiB file still held open, renamed over a key that has a slab:
    over copy_max, so EBUSY before a byte of it is read (not a read of the
    whole file to decide whether the existing slab is kept)."""
    m = ws.mount()
    if not passthrough_on(m):
        return
    (key, big), (_, small) = same_key_slabs(ws, [32 << 20, 100])
    publish(m, key, small)
    fd = os.open(m.path("held.part"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, big)
        try:
            os.rename(m.path("held.part"), m.path(key + ".kvc"))
            raise AssertionError("a 32 MiB open file was renamed over a key")
        except OSError as err:
            assert err.errno == errno.EBUSY, err
    finally:
        os.close(fd)


def test_link_while_written_never_changes_the_slab(ws):
    """link(2) while the writer still holds the staging file (libkvc's own
    save does this): with passthrough the slab is a copy and the staging
    name goes on naming the writer's file; without, later writes get
    EPERM. Either way the slab keeps the bytes it was published with."""
    m = ws.mount()
    on = passthrough_on(m)
    e = valid_vectors()[1]
    good = vector_bytes(e)
    fd = os.open(m.path("held.part"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, good)
        os.link(m.path("held.part"), m.path(e["key"] + ".kvc"))
        write_after_publish(fd, on, len(good))
    finally:
        os.close(fd)
    os.unlink(m.path("held.part"))
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        assert payload_of(f.read()) == payload_of(good)
    run([KVC, "verify", os.path.join(m.root, e["key"] + ".kvc")])


def test_copy_over_a_slab_being_read(ws):
    """The kernel takes no daemon-path open of an inode open in passthrough:
    cp onto a slab that someone is reading is ETXTBSY then (the slab of
    that key is there already and would be kept anyway); on the daemon's
    path it succeeds and keeps the slab."""
    m = ws.mount()
    on = passthrough_on(m)
    e = valid_vectors()[0]
    publish(m, e["key"], vector_bytes(e))
    name = m.path(e["key"] + ".kvc")
    reader = os.open(name, os.O_RDONLY)
    try:
        try:
            with open(name, "wb") as f:
                f.write(vector_bytes(e))
            assert not on, "a writer opened beside a passthrough reader"
        except OSError as err:
            assert on and err.errno == errno.ETXTBSY, err
        assert payload_of(os.pread(reader, 1 << 20, 0)) == payload_of(vector_bytes(e))
    finally:
        os.close(reader)
    with open(name, "wb") as f:  # nobody reading: accepted, the slab kept
        f.write(vector_bytes(e))
    with open(name, "rb") as f:
        assert payload_of(f.read()) == payload_of(vector_bytes(e))



def test_copy_right_after_the_last_reader_closed(ws):
    """A reader closes a slab and something copies onto it at once: the
    reader's RELEASE is often still on its way, but the kernel let go of
    its passthrough file at the close, so the copy's open is taken (the
    daemon does not wait for the RELEASE, and does not refuse either)."""
    m = ws.mount()
    passthrough_on(m)
    e = valid_vectors()[0]
    publish(m, e["key"], vector_bytes(e))
    name = m.path(e["key"] + ".kvc")
    for _ in range(40):
        reader = os.open(name, os.O_RDONLY)
        assert payload_of(os.pread(reader, 1 << 20, 0)) == payload_of(vector_bytes(e))
        os.close(reader)  # FLUSH; the RELEASE follows in the background
        with open(name, "wb") as f:
            f.write(vector_bytes(e))
    with open(name, "rb") as f:
        assert payload_of(f.read()) == payload_of(vector_bytes(e))


def test_copy_while_the_reader_is_in_flight_is_refused_by_the_kernel(ws):
    """The reader's descriptor lives on in a socket: the kernel still holds
    the slab open in passthrough and refuses the copy's open itself (EIO;
    ETXTBSY when the daemon still counts the reader as open). No request
    waits for the RELEASE, and the slab is kept."""
    m = ws.mount()
    if not passthrough_on(m):
        return
    e = valid_vectors()[0]
    publish(m, e["key"], vector_bytes(e))
    name = m.path(e["key"] + ".kvc")
    reader = os.open(name, os.O_RDONLY)
    assert payload_of(os.pread(reader, 1 << 20, 0)) == payload_of(vector_bytes(e))
    pending = held_in_flight(reader)
    os.close(reader)
    try:
        with open(name, "wb") as f:
            f.write(vector_bytes(e))
        raise AssertionError("a writer opened beside a passthrough reader")
    except OSError as err:
        assert err.errno in (errno.EIO, errno.ETXTBSY), err
    finally:
        for s in pending:
            s.close()
    with open(name, "rb") as f:
        assert payload_of(f.read()) == payload_of(vector_bytes(e))


def test_lingering_dup_leaves_threads_for_everyone_else(ws):
    """A reader closes a slab once and keeps a dup: its RELEASE never
    comes. Many writers over that slab are refused at once (by the kernel,
    EIO, or by the daemon, ETXTBSY); none holds a request thread waiting
    for the RELEASE, so everyone else is answered as usual."""
    m = ws.mount(options=["threads=4"])
    if not passthrough_on(m):
        return  # no passthrough opens, nothing to wait for
    e, other = valid_vectors()[0], valid_vectors()[1]
    publish(m, e["key"], vector_bytes(e))
    publish(m, other["key"], vector_bytes(other))
    name = m.path(e["key"] + ".kvc")
    reader = os.open(name, os.O_RDONLY)
    lingering = os.dup(reader)
    os.close(reader)  # FLUSH; the dup keeps the RELEASE away for good
    stop = time.monotonic() + 3
    errors = set()

    def write_over():
        while time.monotonic() < stop:
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_TRUNC))
            except OSError as err:
                errors.add(err.errno)

    writers = [threading.Thread(target=write_over) for _ in range(8)]
    for t in writers:
        t.start()
    took = []
    try:
        time.sleep(0.5)
        while time.monotonic() < stop - 0.3:
            started = time.monotonic()
            with open(m.path(other["key"] + ".kvc"), "rb") as f:
                assert payload_of(f.read()) == payload_of(vector_bytes(other))
            os.listdir(m.mnt)
            took.append(time.monotonic() - started)
    finally:
        for t in writers:
            t.join()
        os.close(lingering)
    assert errors and errors <= {errno.ETXTBSY, errno.EIO}, errors
    took.sort()
    # Every thread stuck in a 200 ms wait made each of these take 200 ms
    # or more; with threads to spare they take a few milliseconds.
    assert took[len(took) // 2] < 0.1, took


def test_writer_opening_during_a_publish_never_writes_the_slab(ws):
    """A writer opens a named staging file while a link(2) or rename
    publishes it (here through /proc/self/fd of a reader: no lookup, no
    directory lock). The publish looked for writers before it took the
    stage: an open in between went on to write the slab itself, through
    the kernel. A race, so tried many times; every slab must verify."""
    m = ws.mount()
    if not passthrough_on(m):
        return  # the daemon refuses writes to a published stage itself
    e = valid_vectors()[0]
    data = vector_bytes(e)
    key_name = m.path(e["key"] + ".kvc")
    backing = os.path.join(m.root, e["key"] + ".kvc")
    stop = time.monotonic() + 10
    tries = 0
    while time.monotonic() < stop:
        tries += 1
        staged = m.path("st")
        with open(staged, "wb") as f:
            f.write(data)
        reader = os.open(staged, os.O_RDONLY)
        publishing = threading.Event()

        def write_during_publish():
            while not publishing.is_set():
                try:
                    fd = os.open("/proc/self/fd/%d" % reader, os.O_RDWR)
                except OSError:
                    continue
                try:
                    os.pwrite(fd, b"\0\x11\x22\x33", len(data) - 50)
                except OSError:
                    pass
                os.close(fd)

        t = threading.Thread(target=write_during_publish)
        t.start()
        try:
            (os.link if tries % 2 else os.rename)(staged, key_name)
        except OSError as err:
            assert err.errno == errno.EBADMSG, err  # a write came first
        finally:
            publishing.set()
            t.join()
            os.close(reader)
        if os.path.exists(backing):
            p = run([KVC, "verify", backing], check=False)
            assert p.returncode == 0, "try %d: %s" % (tries, p.stdout + p.stderr)
            os.unlink(key_name)
        if os.path.exists(staged):
            os.unlink(staged)

if __name__ == "__main__":
    main()
