#!/usr/bin/env python3
"""What others leave in the backing root: FIFOs, symlinks and directories
under slab names, programs that sweep *.tmp, headers that lie. The mount
never hangs on them and never lets them cost valid slabs."""
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time

from harness import Mount, main, verify_slabs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "python"))
import kvcache  # noqa: E402

FP = bytes(range(32))
CTX = bytes(range(32, 64))
PROMPT = 10  # seconds: far more than any of these takes when it does not hang


def slab(i, payload_len=5000):
    tokens = [i, i + 1, i + 2]
    data = kvcache.build_slab(FP, "q8_0", CTX, tokens, bytes([i & 0xFF]) * payload_len,
                              created=1_700_000_000, last_used=1_700_000_000 + i,
                              hostname=b"test")
    return kvcache.cache_key(FP, "q8_0", CTX, tokens), data


STUCK = []  # FIFOs a daemon thread may be stuck on, released on a timeout


def promptly(code):
    """Run a snippet of Python in a child with a deadline: a request that
    blocks in the daemon shows up as a timeout here, not as a hung test.
    Returns the child's stdout (the snippet prints what it saw)."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=PROMPT)
    except subprocess.TimeoutExpired:
        for fifo in STUCK:  # let the daemon (and so the child) go
            release_fifo(fifo)
        child.kill()
        child.communicate()
        raise AssertionError("did not return within %d s: %s" % (PROMPT, code.strip()))
    p = subprocess.CompletedProcess(child.args, child.returncode, out, err)
    if p.returncode != 0:
        raise AssertionError("snippet failed: %s%s" % (p.stdout, p.stderr))
    return p.stdout.strip()


def release_fifo(path):
    """If a daemon thread is stuck opening the FIFO for reading, an open for
    writing lets it go, so a failing test still unmounts."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


def outcome(expr):
    """Python source that prints 'ok' or the errno name of expr."""
    return textwrap.dedent("""
        import errno, os, subprocess
        try:
            r = %s
            print("ok")
        except OSError as e:
            print(errno.errorcode[e.errno])
    """) % expr


def test_fifo_under_slab_name(ws):
    key, data = slab(1)
    other, other_data = slab(2)
    root = ws.root()
    with open(os.path.join(root, other + ".kvc"), "wb") as f:
        f.write(other_data)
    fifo = os.path.join(root, key + ".kvc")
    os.mkfifo(fifo)
    STUCK.append(fifo)
    try:
        m = ws.mount(root)  # start-up scan with the FIFO there
        p = m.path(key + ".kvc")
        # Each returns at once; the ones that read must fail.
        promptly(outcome("os.stat(%r)" % p))
        promptly(outcome("os.stat(%r)" % m.path("payload", key)))
        assert promptly(outcome("open(%r, 'rb').read()" % p)) != "ok"
        assert promptly(outcome("open(%r, 'rb').read()" % m.path("payload", key))) != "ok"
        assert promptly(outcome("os.getxattr(%r, 'user.kvc.token_count')" % p)) != "ok"
        assert promptly(outcome("subprocess.run(['getfattr', '-d', %r], capture_output=True)"
                                % p)) == "ok"
        listing = promptly("import subprocess\nprint(subprocess.run(['ls', '-l', %r], "
                           "capture_output=True, text=True).stdout)" % m.mnt)
        assert other + ".kvc" in listing, listing
        assert promptly("print(open(%r).read())" % m.path(".kvcfs", "rescan")).startswith(
            "slabs 1\n")
        # The valid slab next to it is served as ever.
        assert kvcache.restore(m.mnt, other) == other_data[-5000:]
        m.stop()
        # Start-up again, with whatever the first mount left there.
        m2 = ws.mount(root, name="mnt2")
        assert promptly(outcome("os.listdir(%r)" % m2.mnt)) == "ok"
    finally:
        release_fifo(fifo)
        STUCK.remove(fifo)


def test_directory_under_a_slab_name_is_never_emptied(ws):
    """A directory tree under a key name in a shared root is someone's: rm
    of the name through the mount, a publish over it and a restart's sweep
    move it aside whole (the key is free at once) and never remove what is
    in it with the daemon's rights, whatever its modes say. An empty one
    just goes."""
    root = ws.root()
    key, data = slab(7)
    other, other_data = slab(8)
    tree = os.path.join(root, key + ".kvc")
    os.makedirs(os.path.join(tree, "deep", "er"))
    with open(os.path.join(tree, "deep", "er", "precious"), "w") as f:
        f.write("mine")
    os.chmod(os.path.join(tree, "deep", "er"), 0o555)
    os.mkdir(os.path.join(root, other + ".kvc"))  # empty
    m = ws.mount(root)
    try:
        os.unlink(m.path(key + ".kvc"))
        assert not os.path.exists(tree)
        os.unlink(m.path(other + ".kvc"))
        kvcache.save(m.mnt, other, other_data)  # the key is free again
        m.stop()
        m = ws.mount(root, name="again")  # the sweep at start
        aside = [n for n in os.listdir(root) if n.endswith(".kvcgone")]
        assert len(aside) == 1, os.listdir(root)
        with open(os.path.join(root, aside[0], "deep", "er", "precious")) as f:
            assert f.read() == "mine"
        assert kvcache.restore(m.mnt, other) == other_data[-5000:]
    finally:
        for dirpath, _, _ in os.walk(root):
            os.chmod(dirpath, 0o755)


def test_tmp_sweeper_spares_our_temps(ws):
    """A program sharing the root that deletes every *.tmp on start (the
    format's reference server does) must not destroy a write in flight."""
    key, data = slab(3, payload_len=1 << 20)
    m = ws.mount()
    stop = threading.Event()
    swept = []

    def sweeper():
        while not stop.is_set():
            for n in os.listdir(m.root):
                if n.endswith(".tmp"):
                    try:
                        os.unlink(os.path.join(m.root, n))
                        swept.append(n)
                    except FileNotFoundError:
                        pass
            time.sleep(0.001)

    t = threading.Thread(target=sweeper)
    t.start()
    try:
        staging = m.path("in-flight.part")
        with open(staging, "wb") as f:
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            time.sleep(0.3)  # the sweeper runs many times meanwhile
            f.write(data[half:])
        time.sleep(0.1)
        os.rename(staging, m.path(key + ".kvc"))
    finally:
        stop.set()
        t.join()
    assert swept == [], swept
    assert kvcache.restore(m.mnt, key) == data[-(1 << 20):]
    assert os.path.exists(os.path.join(m.root, key + ".kvc"))


def plant_liar(root, i, claimed, last_used):
    """A sparse <key>.kvc whose header claims a payload of `claimed` bytes
    (none of them on disk, so the CRC is wrong) and a last use of
    `last_used`: it parses, and fails verification."""
    tokens = [i, i + 1, i + 2]
    data = bytearray(kvcache.build_slab(FP, "q8_0", CTX, tokens, b"", created=1_700_000_000,
                                        last_used=last_used, hostname=b"liar"))
    struct.pack_into("<Q", data, 40, claimed)
    struct.pack_into("<Q", data, 56, claimed)
    struct.pack_into("<I", data, 64, 0x12345678)
    key = kvcache.cache_key(FP, "q8_0", CTX, tokens)
    path = os.path.join(root, key + ".kvc")
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(len(data) + claimed)
    return key


def start_with_liar(ws, claimed):
    root = ws.root()
    valid = {}
    for i in range(5):
        key, data = slab(10 + i * 5, payload_len=1 << 20)
        with open(os.path.join(root, key + ".kvc"), "wb") as f:
            f.write(data)
        valid[key] = data
    liar = plant_liar(root, 99, claimed, int(time.time()) + 10 * 365 * 86400)
    m = ws.mount(root, options=["max_size=10M"], allowed_stderr=[r"not counting invalid"])
    return m, valid, liar


class OtherPidNamespaceMount(Mount):
    """kvcfs in a pid namespace of its own (a second container of the
    pod): it sees none of the first kvcfs's pids, with the same host id."""

    def launcher(self):
        return ["unshare", "--pid", "--fork", "--kill-child"]


def test_second_kvcfs_in_another_pid_namespace_spares_live_temps(ws):
    """A second kvcfs on the same backing root, started in another pid
    namespace, swept the first one's live staging temps at its start (the
    first's pid looked dead from there), and that user's mv then failed
    with ENOENT. Their names now carry a writer id unique to each kvcfs,
    and an OFD lock on each temp proves its writer alive."""
    root = ws.root()
    a = ws.mount(root, "a")
    key, data = slab(40)
    open_key, open_data = slab(41)
    with open(a.path("closed.part"), "wb") as f:
        f.write(data)
    writer = open(a.path("open.part"), "wb")
    try:
        writer.write(open_data[:100])
        writer.flush()
        temps_before = sorted(n for n in os.listdir(root) if not n.endswith(".kvc"))
        assert len(temps_before) == 2, temps_before
        b = OtherPidNamespaceMount(root, os.path.join(ws.dir, "b"))
        ws.mounts.append(b)  # unmounted at the end, whatever happens
        b.start()
        assert sorted(n for n in os.listdir(root) if not n.endswith(".kvc")) == temps_before
        writer.write(open_data[100:])
    finally:
        writer.close()
    os.rename(a.path("closed.part"), a.path(key + ".kvc"))
    os.rename(a.path("open.part"), a.path(open_key + ".kvc"))
    assert verify_slabs(root) == sorted([key + ".kvc", open_key + ".kvc"])
    assert os.path.exists(os.path.join(b.mnt, key + ".kvc"))


def test_idle_staging_temps_are_marked_alive(ws):
    """Where another host cannot see a temp's lock, it judges the temp by
    age: the worker sets each staging temp's atime to now every quarter of
    sweep_grace, leaving its bytes and mtime alone, and the idle file
    still publishes."""
    root = ws.root()
    m = ws.mount(root, options=["sweep_grace=4"])
    key, data = slab(42)
    with open(m.path("idle.part"), "wb") as f:
        f.write(data)
    temp = next(n for n in os.listdir(root) if n.endswith(".kvcpart"))
    two_hours_ago = time.time() - 7200
    os.utime(os.path.join(root, temp), (two_hours_ago, two_hours_ago))
    deadline = time.time() + 10
    while os.stat(os.path.join(root, temp)).st_atime < time.time() - 5:
        assert time.time() < deadline, "the temp was not marked alive"
        time.sleep(0.1)
    assert abs(os.stat(os.path.join(root, temp)).st_mtime - two_hours_ago) < 1
    os.rename(m.path("idle.part"), m.path(key + ".kvc"))
    assert verify_slabs(root) == [key + ".kvc"]


def test_start_up_eviction_trusts_no_lying_header(ws):
    """Five valid 1 MiB slabs and a sparse file that claims 1 TiB and a last
    use in the future, under a 10 MiB budget: the liar goes, every valid
    slab stays."""
    m, valid, liar = start_with_liar(ws, 1 << 40)
    names = set(os.listdir(m.root))
    assert liar + ".kvc" not in names, "the slab larger than the budget goes first"
    for key, data in valid.items():
        assert key + ".kvc" in names, "a valid slab was evicted for the liar"
        assert kvcache.restore(m.mnt, key) == data[-(1 << 20):]


def test_unverified_header_costs_no_valid_slab(ws):
    """The same with a liar that fits the budget (8 MiB claimed): it is
    verified before it may push anything out, fails, and goes."""
    m, valid, liar = start_with_liar(ws, 8 << 20)
    names = set(os.listdir(m.root))
    assert liar + ".kvc" not in names
    for key in valid:
        assert key + ".kvc" in names, "a valid slab was evicted for the liar"


if __name__ == "__main__":
    main()
