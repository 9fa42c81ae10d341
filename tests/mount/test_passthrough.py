#!/usr/bin/env python3
"""FUSE passthrough: the kernel reads verified slabs and writes staging
files itself, and the guarantees still hold. The suite runs this file twice,
with passthrough on (where the kernel and privileges allow) and with
KVCFS_TEST_OPTIONS=passthrough=off; each test says what differs."""
import errno
import mmap
import os
import subprocess
import sys

from harness import KVC, main, metric, payload_of, run, valid_vectors, vector_bytes
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
        try:
            os.pwrite(fd, b"\xff" * 64, len(good) - 64)
            assert on, "a write after publish went through on the daemon's path"
        except OSError as err:
            assert err.errno == errno.EPERM and not on, err
    finally:
        os.close(fd)
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        assert payload_of(f.read()) == payload_of(good)
    run([KVC, "verify", os.path.join(m.root, e["key"] + ".kvc")])
    leftover = [n for n in os.listdir(m.root) if not n.endswith(".kvc")]
    assert leftover == [], leftover
    assert metric(m, "publish_copies_total") == (1 if on else 0)


QUICK_PUBLISHER = r"""
import os, sys
mnt, root, srcdir, tag = sys.argv[1:5]
for name in sorted(os.listdir(srcdir)):
    with open(os.path.join(srcdir, name), "rb") as f:
        data = f.read()
    part = os.path.join(mnt, "%s-%s.part" % (tag, name))
    with open(part, "wb") as f:
        f.write(data)
    # This writer's temp in the backing root: the one of its size (each
    # writer's slabs have a size of their own).
    temps = [os.stat(os.path.join(root, n)).st_ino for n in os.listdir(root)
             if not n.endswith(".kvc") and os.stat(os.path.join(root, n)).st_size == len(data)]
    os.rename(part, os.path.join(mnt, name))
    if temps != [os.stat(os.path.join(root, name)).st_ino]:
        print("not the written file:", name, temps)
"""


def test_rename_right_after_close_publishes_the_file_itself(ws):
    """cp + mv: close(2) returns before the kernel's RELEASE reaches the
    daemon, so the rename often comes first, the more so under load. A
    closed file is published itself (its temp becomes the slab), never a
    copy made because its writer looked open."""
    m = ws.mount()
    passthrough_on(m)
    procs = []
    for w in range(4):
        srcdir = os.path.join(ws.dir, "src%d" % w)
        os.makedirs(srcdir)
        for i in range(12):
            key, data, _ = workers.slab_for(400 + 12 * w + i, (256 << 10) + 4096 * w)
            with open(os.path.join(srcdir, key + ".kvc"), "wb") as f:
                f.write(data)
        procs.append(subprocess.Popen([sys.executable, "-c", QUICK_PUBLISHER, m.mnt, m.root,
                                       srcdir, "w%d" % w], stdout=subprocess.PIPE, text=True))
    copied = [line for p in procs for line in p.communicate()[0].splitlines()]
    assert all(p.returncode == 0 for p in procs)
    assert copied == [], copied
    assert metric(m, "publish_copies_total") == 0
    assert metric(m, "publishes_total") == 48
    leftover = [n for n in os.listdir(m.root) if not n.endswith(".kvc")]
    assert leftover == [], leftover


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
        try:
            os.pwrite(fd, b"\xee" * 32, len(good) - 32)
            assert on, "a write into a linked slab went through on the daemon's path"
        except OSError as err:
            assert err.errno == errno.EPERM and not on, err
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


if __name__ == "__main__":
    main()
