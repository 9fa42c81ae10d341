#!/usr/bin/env python3
"""The SPEC's table of operations and errnos, corruption, remounts,
several mounts on one backing root, and racing publishers."""
import errno
import os
import subprocess
import sys
import time

from harness import (KVC, expect_errno, leftovers, main, metric, payload_of, run, valid_vectors,
                     vector_bytes, without_mutable_header)


def publish(m, e):
    name = e["key"] + ".kvc"
    tmp = m.path("up-" + e["key"][:8])
    with open(tmp, "wb") as f:
        f.write(vector_bytes(e))
    os.rename(tmp, m.path(name))
    return m.path(name)


def test_published_slabs_are_immutable(ws):
    m = ws.mount()
    e = valid_vectors()[0]
    p = publish(m, e)
    # O_WRONLY without O_TRUNC opens (cp's O_TRUNC arrives as a separate
    # truncate), but nothing can be written into the slab through it.
    fd = os.open(p, os.O_WRONLY)
    expect_errno(errno.EPERM, os.write, fd, b"x")
    expect_errno(errno.EPERM, os.pwrite, fd, b"x", 100)
    os.close(fd)
    # O_RDWR opens (to count hits) but writes only the two counters
    # (test_any_program.py); nothing else.
    fd = os.open(p, os.O_RDWR)
    expect_errno(errno.EPERM, os.pwrite, fd, b"x", 100)
    os.close(fd)
    expect_errno(errno.EPERM, os.open, p, os.O_WRONLY | os.O_APPEND)
    expect_errno(errno.EPERM, os.truncate, p, 0)
    # truncate(1): an open for writing (a staged copy, as root), then a
    # truncate of that copy; its close refuses the short file.
    t = subprocess.run(["truncate", "-s", "0", p], capture_output=True, text=True)
    assert t.returncode == 1 and "Bad message" in t.stderr, t
    expect_errno(errno.EPERM, os.rename, p, m.path("elsewhere"))
    expect_errno(errno.EPERM, os.link, p, m.path("hardlink"))
    expect_errno(errno.EPERM, os.open, m.path("payload", e["key"]), os.O_WRONLY)
    before = os.stat(p)
    os.chmod(p, 0o777)
    os.chown(p, 1234, 1234)
    os.utime(p, (1, 1))
    after = os.stat(p)
    assert (after.st_mode, after.st_uid, after.st_mtime) == \
        (before.st_mode, before.st_uid, before.st_mtime), "chmod/chown/utime change nothing"
    with open(p, "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(vector_bytes(e))


def rename_noreplace(src, dst):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, src.encode(), -100, dst.encode(), 1) != 0:  # AT_FDCWD, NOREPLACE
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dst)


def test_rename_noreplace(ws):
    """rename(2) with RENAME_NOREPLACE onto a key: EEXIST when anything is
    under the name (a valid slab, or junk another program left), decided
    by link(2) in the backing root; a free key is published."""
    m = ws.mount()
    a, b = valid_vectors()[0], valid_vectors()[1]
    with open(m.path("a.part"), "wb") as f:
        f.write(vector_bytes(a))
    rename_noreplace(m.path("a.part"), m.path(a["key"] + ".kvc"))
    with open(m.path("again.part"), "wb") as f:
        f.write(vector_bytes(a))
    expect_errno(errno.EEXIST, rename_noreplace, m.path("again.part"), m.path(a["key"] + ".kvc"))
    with open(os.path.join(m.root, b["key"] + ".kvc"), "wb") as f:
        f.write(b"KVC junk left by someone")
    with open(m.path("b.part"), "wb") as f:
        f.write(vector_bytes(b))
    expect_errno(errno.EEXIST, rename_noreplace, m.path("b.part"), m.path(b["key"] + ".kvc"))
    with open(os.path.join(m.root, b["key"] + ".kvc"), "rb") as f:
        assert f.read() == b"KVC junk left by someone"
    assert os.path.exists(m.path("again.part")) and os.path.exists(m.path("b.part"))


def test_open_slab_outlives_its_name(ws):
    """An open descriptor of a slab keeps working after rm of its name, and
    after the key is published again: fstat and reads answer from the file
    it opened, as on a local filesystem."""
    m = ws.mount()
    e = valid_vectors()[0]
    data = vector_bytes(e)
    name = publish(m, e)
    fd = os.open(name, os.O_RDONLY)
    try:
        os.unlink(name)
        assert os.fstat(fd).st_size == len(data)
        assert payload_of(os.pread(fd, len(data) + 10, 0)) == payload_of(data)
        publish(m, e)
        assert payload_of(os.pread(fd, len(data) + 10, 0)) == payload_of(data)
        assert os.fstat(fd).st_size == len(data)
    finally:
        os.close(fd)


def test_namespace_refusals(ws):
    m = ws.mount()
    # Directories are namespaces (test_directories.py), but never under a
    # key's name, nor in the payload view.
    expect_errno(errno.EPERM, os.mkdir, m.path("0" * 64 + ".kvc"))
    expect_errno(errno.EPERM, os.mkdir, m.path("payload", "dir"))
    expect_errno(errno.EPERM, os.symlink, "target", m.path("link"))
    expect_errno(errno.EPERM, os.mkfifo, m.path("fifo"))
    expect_errno(errno.ENAMETOOLONG, open, m.path("x" * 256), "wb")
    expect_errno(errno.ENAMETOOLONG, os.stat, m.path("a" * 300 + ".kvc"))
    expect_errno(errno.ENOENT, os.stat, m.path("0" * 64 + ".kvc"))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", "0" * 64))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", "not-a-key"))
    expect_errno(errno.EPERM, open, m.path("payload", "new"), "wb")
    expect_errno(errno.EPERM, open, m.path(".kvcfs", "new"), "wb")
    expect_errno(errno.EACCES, open, m.path(".kvcfs", "metrics"), "wb")
    # Upper-case hex is not a key name: an ordinary staging file.
    upper = "A" * 64 + ".kvc"
    with open(m.path(upper), "wb") as f:
        f.write(b"hello")
    assert open(m.path(upper), "rb").read() == b"hello"
    os.unlink(m.path(upper))
    # Staging files behave like files: rename among staging names, truncate, rm.
    with open(m.path("a"), "wb") as f:
        f.write(b"0123456789")
    os.truncate(m.path("a"), 4)
    os.rename(m.path("a"), m.path("b"))
    assert open(m.path("b"), "rb").read() == b"0123"
    expect_errno(errno.ENOENT, os.stat, m.path("a"))
    with open(m.path("c"), "wb") as f:
        f.write(b"c")
    os.rename(m.path("b"), m.path("c"))  # replaces c
    assert open(m.path("c"), "rb").read() == b"0123"
    os.unlink(m.path("c"))
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"]
    expect_errno(errno.ENODATA, os.getxattr, m.mnt, "user.kvc.key")


def test_corrupt_slab_is_refused_and_removed(ws):
    m = ws.mount(allowed_stderr=[r"dropped corrupt slab"])
    e = next(v for v in valid_vectors() if v["kind"] == "large_payload")
    p = publish(m, e)
    backing = os.path.join(m.root, e["key"] + ".kvc")
    with open(backing, "r+b") as f:
        f.seek(e["payload_offset"] + 1000)
        b = f.read(1)
        f.seek(e["payload_offset"] + 1000)
        f.write(bytes([b[0] ^ 0xFF]))
    expect_errno(errno.EIO, open, p, "rb")
    assert not os.path.exists(backing), "the corrupt slab is removed from the backing root"
    expect_errno(errno.ENOENT, os.stat, p)
    assert metric(m, "corrupt_dropped_total") == 1
    # The payload view refuses a corrupt slab the same way.
    p = publish(m, e)
    with open(backing, "r+b") as f:
        f.truncate(e["file_size"] - 1)
    expect_errno(errno.EIO, open, m.path("payload", e["key"]), "rb")
    assert not os.path.exists(backing)
    assert metric(m, "corrupt_dropped_total") == 2
    # The refused opens' pages never linger: a good slab reads back whole.
    publish(m, e)
    with open(m.path("payload", e["key"]), "rb") as f:
        assert f.read() == payload_of(vector_bytes(e))
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(vector_bytes(e))


def test_remount_keeps_everything(ws):
    root = ws.root()
    m = ws.mount(root)
    entries = valid_vectors()[:6]
    for e in entries:
        publish(m, e)
    with open(m.path(entries[0]["key"] + ".kvc"), "rb") as f:
        f.read()
    hits = int(os.getxattr(m.path(entries[0]["key"] + ".kvc"), "user.kvc.hit_count"))
    m.stop()
    m2 = ws.mount(root, name="mnt2")
    for e in entries:
        with open(m2.path("payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(vector_bytes(e))
    # A hit is persisted in the header: it survives the remount, and the
    # open above added one more.
    again = int(os.getxattr(m2.path(entries[0]["key"] + ".kvc"), "user.kvc.hit_count"))
    assert again == hits + 1, (hits, again)
    assert metric(m2, "slabs") == len(entries)


def test_second_mount_sees_first(ws):
    root = ws.root()
    a = ws.mount(root, name="a")
    b = ws.mount(root, name="b")
    e = valid_vectors()[3]
    publish(a, e)
    with open(b.path(e["key"] + ".kvc"), "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(vector_bytes(e))
    assert e["key"] + ".kvc" in os.listdir(b.mnt)
    os.unlink(b.path(e["key"] + ".kvc"))
    deadline = time.time() + 5
    while os.path.exists(a.path(e["key"] + ".kvc")):
        assert time.time() < deadline, "a delete on one mount shows on the other"
        time.sleep(0.1)


RACER = r"""
import os, sys
mnt, name, src, idx = sys.argv[1:5]
data = open(src, "rb").read()
tmp = os.path.join(mnt, "racer-%s" % idx)
with open(tmp, "wb") as f:
    f.write(data)
os.rename(tmp, os.path.join(mnt, name))
"""


def test_concurrent_publishers_one_key(ws):
    root = ws.root()
    mounts = [ws.mount(root, name="m%d" % i) for i in range(2)]
    e = next(v for v in valid_vectors() if v["kind"] == "large_payload")
    src = os.path.join(ws.dir, "src")
    with open(src, "wb") as f:
        f.write(vector_bytes(e))
    for round_ in range(5):
        procs = [subprocess.Popen([sys.executable, "-c", RACER, mounts[i % 2].mnt,
                                   e["key"] + ".kvc", src, str(i)]) for i in range(6)]
        assert all(p.wait() == 0 for p in procs), "every racing publish succeeds"
        assert leftovers(root) == [], leftovers(root)
        names = os.listdir(root)
        assert names == [e["key"] + ".kvc"], names
        run([KVC, "verify", os.path.join(root, names[0])])
        os.unlink(mounts[0].path(e["key"] + ".kvc"))
    total = sum(metric(m, "publishes_total") + metric(m, "adopted_total") for m in mounts)
    assert total == 30, total


COPIER = r"""
import os, sys
path, src = sys.argv[1:3]
data = open(src, "rb").read()
for _ in range(25):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
"""


def test_concurrent_copies_over_a_slab(ws):
    """cp onto an existing slab from many processes at once: every open
    (O_WRONLY|O_CREAT|O_TRUNC, whose truncate reaches kvcfs apart from the
    open) succeeds, and the slab stays the valid one."""
    m = ws.mount()
    e = valid_vectors()[2]
    publish(m, e)
    src = os.path.join(ws.dir, "src")
    with open(src, "wb") as f:
        f.write(vector_bytes(e))
    procs = [subprocess.Popen([sys.executable, "-c", COPIER, m.path(e["key"] + ".kvc"), src],
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    assert errors == [], errors[0]
    assert leftovers(m.root) == [], leftovers(m.root)
    names = os.listdir(m.root)
    assert names == [e["key"] + ".kvc"], names
    run([KVC, "verify", os.path.join(m.root, names[0])])


def test_read_only_mount(ws):
    root = ws.root()
    m = ws.mount(root)
    e = valid_vectors()[1]
    publish(m, e)
    m.stop()
    before = open(os.path.join(root, e["key"] + ".kvc"), "rb").read()
    ro = ws.mount(root, name="ro", options=["ro"])
    with open(ro.path(e["key"] + ".kvc"), "rb") as f:
        assert f.read() == before
    after = open(os.path.join(root, e["key"] + ".kvc"), "rb").read()
    assert after == before, "no hit persistence on a read-only mount"
    expect_errno(errno.EROFS, open, ro.path("new"), "wb")
    expect_errno(errno.EROFS, os.unlink, ro.path(e["key"] + ".kvc"))
    assert os.path.exists(os.path.join(root, e["key"] + ".kvc"))


def test_metrics_format(ws):
    m = ws.mount()
    publish(m, valid_vectors()[0])
    text = open(m.path(".kvcfs", "metrics")).read()
    for name in ("hits_total", "misses_total", "publishes_total", "adopted_total",
                 "rejected_total", "corrupt_dropped_total", "evictions_total", "bytes",
                 "slabs", "publish_seconds_count", "load_seconds_count"):
        assert "\nkvcfs_%s " % name in "\n" + text, name
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or \
            len(line.split()) == 2, line
    assert metric(m, "publishes_total") == 1
    assert metric(m, "bytes") == valid_vectors()[0]["file_size"]
    # kvc stats: the same names as the metrics, sizes also in IEC units.
    out = run([KVC, "stats", m.mnt]).stdout
    rows = {l.split()[0]: l.split(None, 1)[1] for l in out.splitlines()}
    assert rows["kvcfs_publishes_total"] == "1", out
    assert rows["kvcfs_bytes"] == "%d (%d bytes)" % ((valid_vectors()[0]["file_size"],) * 2), out
    assert rows["kvcfs_publish_seconds_sum"].endswith(" s"), out


KVC = os.environ.get("KVC_BIN")

if __name__ == "__main__":
    main()
