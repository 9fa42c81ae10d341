#!/usr/bin/env python3
"""The host-local tier (-o local=DIR): two mounts on one backing root, A
without a tier and B with one. What exists is the backing root's; B serves
its local copies only while they are the backing root's slab, never a
partial or corrupt copy."""
import errno
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time

from harness import KVC, KVCFS, Mount, expect_errno, mounted, kvcache, main, metric, run, settle, verify_slabs

FP, CTX = bytes(range(7, 39)), bytes(range(60, 92))
ALLOWED = [r"local copy of [0-9a-f]+ failed verification: dropped"]


def slab(i, size=200_000, created=1_700_000_000):
    tokens = [i, 77, 78]
    payload = bytes([(i * 13 + j) % 256 for j in range(241)]) * (size // 241 + 1)
    payload = payload[:size]
    return (kvcache.cache_key(FP, "q8_0", CTX, tokens),
            kvcache.build_slab(FP, "q8_0", CTX, tokens, payload, created=created,
                               hostname=b"t"), payload)


def big_slab(i, size):
    """A slab of size payload bytes, built by `kvc build` (the example
    client's CRC is pure Python): returns key, path of the slab file."""
    work = tempfile.mkdtemp(prefix="kvc-big-")
    tokens = [i, 99]
    with open(os.path.join(work, "p"), "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    run([KVC, "build", "--fingerprint", FP.hex(), "--quant", "q8_0", "--ctx", CTX.hex(),
         "--tokens", ",".join(map(str, tokens)), "--payload", os.path.join(work, "p"),
         "--hostname", "t", "-o", work])
    os.unlink(os.path.join(work, "p"))
    key = kvcache.cache_key(FP, "q8_0", CTX, tokens)
    return key, os.path.join(work, key + ".kvc"), work


def two_mounts(ws, b_opts=()):
    root = ws.root()
    local = ws.root("local-b")
    a = ws.mount(root, "a", ["host_id=hostA"])
    b = ws.mount(root, "b", ["host_id=hostB", "local=" + local] + list(b_opts), ALLOWED)
    return root, local, a, b


def read(m, *parts):
    with open(m.path(*parts), "rb") as f:
        return f.read()


def copies(local):
    return sorted(n for n in os.listdir(local) if n.endswith(".kvc"))


def test_hit_write_through_a_local_copy_reads_back(ws):
    """A program counting its own hits (O_RDWR, the header's hit count)
    on a slab that B serves from its local copy reads back what it wrote:
    the field is written to the backing root and to the copy it reads."""
    root, local, a, b = two_mounts(ws)
    key, data, _ = slab(3)
    kvcache.save(a.mnt, key, data)
    read(b, key + ".kvc")  # fetched: the next open reads the local copy
    fd = os.open(b.path(key + ".kvc"), os.O_RDWR)
    try:
        assert metric(b, "local_hits_total") >= 1
        os.pwrite(fd, struct.pack("<I", 4242), 12)
        assert struct.unpack("<I", os.pread(fd, 4, 12))[0] == 4242
    finally:
        os.close(fd)
    with open(os.path.join(root, key + ".kvc"), "rb") as f:
        assert struct.unpack("<I", f.read(16)[12:16])[0] == 4242
    with open(os.path.join(local, key + ".kvc"), "rb") as f:
        assert struct.unpack("<I", f.read(16)[12:16])[0] == 4242


def test_open_slab_keeps_its_inode_number(ws):
    """A slab read from the local copy kept changing inode number at each
    lookup while a handle was open (find -samefile, rsync -H broke). With
    entry_timeout=0 every path walk is a lookup."""
    root, local, a, b = two_mounts(ws, ["entry_timeout=0"])
    key, data, _ = slab(4)
    kvcache.save(a.mnt, key, data)
    before = os.stat(b.path(key + ".kvc")).st_ino
    with open(b.path(key + ".kvc"), "rb") as held:
        inos = set()
        for _ in range(3):
            with open(b.path(key + ".kvc"), "rb") as f:
                f.read(1)
                inos.add(os.fstat(f.fileno()).st_ino)
            inos.add(os.stat(b.path(key + ".kvc")).st_ino)
        inos.add(os.fstat(held.fileno()).st_ino)
    assert inos == {before}, (before, inos)


def test_without_local_no_tier_metrics(ws):
    m = ws.mount()
    with open(m.path(".kvcfs", "metrics")) as f:
        assert "kvcfs_local_" not in f.read(), "no tier, no tier metrics"


def test_first_read_fetches_second_is_local(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(1)
    kvcache.save(a.mnt, key, data)
    assert copies(local) == []
    assert read(b, "payload", key) == payload
    assert metric(b, "local_fetches_total") == 1
    assert metric(b, "local_fetched_bytes_total") == len(data)
    assert metric(b, "local_hits_total") == 0
    assert copies(local) == [key + ".kvc"], "the fetch left a copy"
    verify_slabs(local)
    # The second read (and one of the slab view) is served locally.
    assert read(b, "payload", key) == payload
    assert read(b, key + ".kvc")[40:] == data[40:]
    assert metric(b, "local_hits_total") == 2
    assert metric(b, "local_fetches_total") == 1
    assert metric(b, "local_bytes") == len(data)
    # Hits served locally still count in the backing root's header.
    with open(os.path.join(root, key + ".kvc"), "rb") as f:
        hits = int.from_bytes(f.read(16)[12:16], "little")
    assert hits == 3, "every open of B counted in the shared header: %d" % hits


def test_publish_keeps_a_local_copy(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(2)
    kvcache.save(b.mnt, key, data)
    assert os.path.exists(os.path.join(root, key + ".kvc")), "the backing root has it"
    assert copies(local) == [key + ".kvc"], "and the local tier kept B's bytes"
    assert metric(b, "local_kept_published_total") == 1
    assert read(b, "payload", key) == payload
    assert metric(b, "local_fetches_total") == 0, "no fetch of what B published"
    assert metric(b, "local_hits_total") == 1
    # A cp onto a slab name (publish at close) is kept too.
    key2, data2, payload2 = slab(3)
    with open(b.path(key2 + ".kvc"), "wb") as f:
        f.write(data2)
    assert key2 + ".kvc" in copies(local)
    assert read(b, "payload", key2) == payload2
    assert metric(b, "local_fetches_total") == 0
    # A's view is the backing root's.
    assert read(a, "payload", key2) == payload2


def local_parts(local):
    """The tier's parts of directories: {part name: copies}."""
    return {n: copies(os.path.join(local, n)) for n in os.listdir(local)
            if os.path.isdir(os.path.join(local, n))}


def test_slabs_in_directories_have_local_copies(ws):
    """Each directory has its part of the tier (local/d-<dev>-<ino>): its
    publishes are kept there, its opens served from there; a directory
    renamed keeps its copies, one removed loses them, and a restart keeps
    the parts of directories that still exist."""
    root, local, a, b = two_mounts(ws)
    os.mkdir(b.path("model"))
    key, data, payload = slab(4)
    kvcache.save(b.mnt, key, data, directory="model")
    st = os.stat(os.path.join(root, "model"))
    part = "d-%x-%x" % (st.st_dev, st.st_ino)
    assert local_parts(local) == {part: [key + ".kvc"]}, local_parts(local)
    assert copies(local) == []
    assert metric(b, "local_kept_published_total") == 1
    assert read(b, "payload", "model", key) == payload
    assert metric(b, "local_hits_total") == 1 and metric(b, "local_fetches_total") == 0
    # A's slab in another directory: B's first open fetches it there.
    os.mkdir(a.path("other"))
    key2, data2, payload2 = slab(5)
    kvcache.save(a.mnt, key2, data2, directory="other")
    assert read(b, "other", key2 + ".kvc")[72:] == data2[72:]
    assert metric(b, "local_fetches_total") == 1
    assert len(local_parts(local)) == 2
    # Renamed (on A): B's copies stay with the directory.
    os.rename(a.path("model"), a.path("renamed"))
    assert read(b, "payload", "renamed", key) == payload
    assert metric(b, "local_hits_total") == 2, "served from the copy after the rename"
    # Restart: the parts of existing directories are kept and indexed.
    b.stop()
    b2 = ws.mount(root, "b2", ["host_id=hostB", "local=" + local], ALLOWED)
    assert read(b2, "payload", "renamed", key) == payload
    assert metric(b2, "local_hits_total") == 1 and metric(b2, "local_fetches_total") == 0
    # Removed: its copies go with it.
    os.unlink(b2.path("renamed", key + ".kvc"))
    os.rmdir(b2.path("renamed"))
    deadline = time.time() + 10
    while part in local_parts(local):
        assert time.time() < deadline, local_parts(local)
        time.sleep(0.1)
    # A directory removed while no mount with the tier ran: its part goes
    # at the next start.
    b2.stop()
    shutil.rmtree(os.path.join(root, "other"))
    b3 = ws.mount(root, "b3", ["host_id=hostB", "local=" + local], ALLOWED)
    assert local_parts(local) == {}, local_parts(local)
    assert metric(b3, "local_slabs") == 0


def test_local_budget_spans_directories(ws):
    """One local_size over the root's copies and every directory's."""
    root = ws.root()
    local = ws.root("local-b")
    b = ws.mount(root, "b", ["host_id=hostB", "local=" + local, "local_size=700000"], ALLOWED)
    for i in range(6):
        d = "d%d" % i
        os.mkdir(b.path(d))
        key, data, _ = slab(40 + i)
        kvcache.save(b.mnt, key, data, directory=d)
    settle(b)
    held = sum(os.path.getsize(os.path.join(dp, f))
               for dp, _, fs in os.walk(local) for f in fs if f.endswith(".kvc"))
    assert held <= 700000, held
    assert metric(b, "local_evictions_total") >= 2


def test_corrupt_local_copy_is_refetched(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(4)
    kvcache.save(a.mnt, key, data)
    assert read(b, "payload", key) == payload
    copy = os.path.join(local, key + ".kvc")
    # Same size, one payload byte flipped: the identity (header) still
    # matches, so only verification can catch it.
    with open(copy, "r+b") as f:
        f.seek(len(data) - 10)
        byte = f.read(1)
        f.seek(len(data) - 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    for _ in range(2):
        assert read(b, "payload", key) == payload, "never the corrupt bytes"
    assert metric(b, "local_fetches_total") == 2, "refetched once"
    assert metric(b, "local_dropped_total") == 1
    assert metric(b, "corrupt_dropped_total") == 0, "the backing root's slab is fine"
    assert os.path.exists(os.path.join(root, key + ".kvc"))
    verify_slabs(local)
    # A truncated copy does not even match the backing root's size.
    with open(copy, "r+b") as f:
        f.truncate(len(data) // 2)
    assert read(b, "payload", key) == payload
    assert metric(b, "local_fetches_total") == 3
    verify_slabs(local)


def test_replaced_slab_is_not_answered_with_the_old_copy(ws):
    root, local, a, b = two_mounts(ws)
    key, old, _ = slab(5, created=1_700_000_000)
    _, new, payload = slab(5, created=1_700_000_999)
    kvcache.save(a.mnt, key, old)
    read(b, "payload", key)
    os.unlink(a.path(key + ".kvc"))
    kvcache.save(a.mnt, key, new)
    got = read(b, key + ".kvc")
    assert got[24:32] == new[24:32], "B serves the slab the backing root has now"
    assert metric(b, "local_fetches_total") == 2


def test_removed_key_stops_being_served(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(6)
    kvcache.save(a.mnt, key, data)
    assert read(b, "payload", key) == payload
    assert read(b, "payload", key) == payload
    os.unlink(a.path(key + ".kvc"))
    # B's kernel may still hold the entry (entry_timeout): the open checks
    # the backing root, and the copy goes with the key.
    expect_errno(errno.ENOENT, read, b, "payload", key)
    assert copies(local) == []
    assert metric(b, "local_dropped_total") == 1
    # Without an open: a rescan drops copies of keys gone from the root.
    key2, data2, payload2 = slab(7)
    kvcache.save(a.mnt, key2, data2)
    assert read(b, "payload", key2) == payload2
    os.unlink(os.path.join(root, key2 + ".kvc"))
    read(b, ".kvcfs", "rescan")
    assert copies(local) == [], "the rescan dropped the copy"
    assert metric(b, "local_bytes") == 0


def test_restart_keeps_the_tier(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(8)
    kvcache.save(a.mnt, key, data)
    assert read(b, "payload", key) == payload
    b.stop()
    b2 = ws.mount(root, "b2", ["host_id=hostB", "local=" + local], ALLOWED)
    assert metric(b2, "local_bytes") == len(data), "indexed from headers at start-up"
    assert read(b2, "payload", key) == payload
    assert metric(b2, "local_hits_total") == 1
    assert metric(b2, "local_fetches_total") == 0
    # A key removed while B was down: its copy goes at start-up.
    b2.stop()
    os.unlink(os.path.join(root, key + ".kvc"))
    b3 = ws.mount(root, "b3", ["host_id=hostB", "local=" + local], ALLOWED)
    assert copies(local) == []
    assert metric(b3, "local_bytes") == 0


def test_local_tier_must_be_apart(ws):
    """A local tier that is the backing root, lies inside it or around it,
    or is the mountpoint, would evict or serve the cache's own files (the
    local budget once deleted published slabs this way): one line, exit
    status 1, nothing mounted, nothing in the root touched."""
    root, mnt = ws.root(), ws.root("mnt")
    inside = os.path.join(root, "tier")
    os.mkdir(inside)
    key, data, payload = slab(70)
    with open(os.path.join(root, key + ".kvc"), "wb") as f:
        f.write(data)
    for local in (root, inside, ws.dir, mnt, root + "/"):
        p = subprocess.run([KVCFS, "-o", "local=%s,local_size=1K" % local, root, mnt],
                           capture_output=True, text=True, timeout=20)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        assert p.returncode == 1 and len(lines) == 1 and "local=" in lines[0], (local, p.stderr)
        assert not mounted(mnt), local
    assert sorted(os.listdir(root)) == sorted([key + ".kvc", "tier"])
    apart = ws.root("apart")
    m = ws.mount(root, options=["local=" + apart])
    assert read(m, "payload", key) == payload


def test_refused_open_leaves_no_pin(ws):
    """An open that fails after the slab was opened and verified (here
    ETXTBSY: a hit-count writer beside a passthrough reader) gives back its
    pin on the local copy too: that copy is evicted like any other later."""
    # hit_credit=0: the order is last use alone, and the first is oldest.
    root, local, a, b = two_mounts(ws, ["local_size=1000000", "hit_credit=0"])
    if metric(b, "passthrough") != 1:
        return  # no ETXTBSY on the daemon's path
    first, data, payload = slab(30, 150_000)
    kvcache.save(a.mnt, first, data)
    reader = open(b.path(first + ".kvc"), "rb")
    try:
        expect_errno(errno.ETXTBSY, open, b.path(first + ".kvc"), "r+b")
    finally:
        reader.close()
    for i in range(31, 40):  # newer copies: the first one's turn to go
        key, data, payload = slab(i, 150_000)
        kvcache.save(a.mnt, key, data)
        assert read(b, "payload", key) == payload
        settle(b)
    assert first + ".kvc" not in copies(local), "a refused open kept its copy pinned"


def test_local_budget_holds(ws):
    root, local, a, b = two_mounts(ws, ["local_size=1000000"])
    keys = []
    for i in range(20, 28):
        key, data, payload = slab(i, 150_000)
        kvcache.save(a.mnt, key, data)
        keys.append((key, payload))
    held = open(b.path("payload", keys[0][0]), "rb")  # open: never evicted
    try:
        for key, payload in keys:
            assert read(b, "payload", key) == payload
            settle(b)  # the worker evicts after the fetch
            size = sum(os.path.getsize(os.path.join(local, n)) for n in copies(local))
            assert size <= 1_000_000, "local tier over its budget: %d" % size
            assert metric(b, "local_bytes") <= 1_000_000
        assert metric(b, "local_evictions_total") >= 2
        assert keys[0][0] + ".kvc" in copies(local), "the open copy stayed"
        assert held.read() == keys[0][1]
    finally:
        held.close()
    # A slab larger than the whole local budget is served from the root.
    key, data, payload = slab(40, 1_200_000)
    kvcache.save(a.mnt, key, data)
    fetched = metric(b, "local_fetches_total")
    assert read(b, "payload", key) == payload
    assert metric(b, "local_fetches_total") == fetched
    assert key + ".kvc" not in copies(local)
    # Every backing-root slab is still there: the local budget is B's own.
    assert len(verify_slabs(root)) == 9


def test_kill_during_fetch_leaves_no_partial_copy(ws):
    root = ws.root()
    local = ws.root("local-b")
    key, path, work = big_slab(9, 256 << 20)
    try:
        shutil.copyfile(path, os.path.join(root, key + ".kvc"))
        with open(path, "rb") as f:
            f.seek(-4096, os.SEEK_END)
            tail = f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    caught = False
    for attempt in range(3):
        b = Mount(root, os.path.join(ws.dir, "b%d" % attempt),
                  ["host_id=hostB", "local=" + local], ALLOWED).start()
        ws.mounts.append(b)
        reader = subprocess.Popen(["cat", b.path("payload", key)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and not caught:
            caught = any(n.endswith(".kvcpart") and os.path.getsize(os.path.join(local, n)) > 0
                         for n in os.listdir(local))
            if not caught:
                time.sleep(0.0005)
        if caught:
            b.kill()
        else:
            b.stop()
        reader.wait()
        if caught:
            break
        os.unlink(os.path.join(local, key + ".kvc"))  # fetched too fast: again
    assert caught, "never saw the fetch's temp"
    assert copies(local) == [], "no copy under a slab name after a kill mid-fetch"
    b = ws.mount(root, "b-after", ["host_id=hostB", "local=" + local], ALLOWED)
    assert not any(n.endswith(".kvcpart") for n in os.listdir(local)), "start-up swept the temp"
    with open(b.path(key + ".kvc"), "rb") as f:
        f.seek(-4096, os.SEEK_END)
        assert f.read() == tail
    assert metric(b, "local_fetches_total") == 1
    verify_slabs(local)


def test_concurrent_first_reads(ws):
    root, local, a, b = two_mounts(ws)
    key, data, payload = slab(10, 2_000_000)
    kvcache.save(a.mnt, key, data)
    got, errors = [], []

    def reader():
        try:
            got.append(read(b, "payload", key))
        except OSError as e:
            errors.append(e)
    ts = [threading.Thread(target=reader) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert got == [payload] * 6
    assert copies(local) == [key + ".kvc"]
    assert not any(n.endswith(".kvcpart") for n in os.listdir(local))
    verify_slabs(local)


if __name__ == "__main__":
    main()
