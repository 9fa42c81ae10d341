#!/usr/bin/env python3
"""Hostile names and requests: each gets the errno a filesystem gives and
the daemon keeps serving."""
import errno
import itertools
import os

from harness import expect_errno, kvcache, main


def publish_one(m):
    fp, ctx, tokens = bytes(32), bytes(32), [1, 2, 3]
    key = kvcache.cache_key(fp, "f16", ctx, tokens)
    kvcache.save(m.mnt, key, kvcache.build_slab(fp, "f16", ctx, tokens, b"p" * 5000, hostname=b"h"))
    return key


def alive(m, key):
    with open(m.path("payload", key), "rb") as f:
        assert f.read() == b"p" * 5000


def test_hostile_names(ws):
    m = ws.mount()
    key = publish_one(m)
    for name in ("x" * 255, "\x01\x7f\xff".encode("latin-1").decode("latin-1") * 10,
                 "a b\tc\nd", "..a", ".kvc", "A" * 64 + ".kvc", key.upper() + ".kvc",
                 key[:63] + "g.kvc", key + ".KVC", key + ".kvc.tmp", "-rf", "payload2"):
        p = m.path(name)
        with open(p, "wb") as f:
            f.write(b"staging")
        assert os.path.exists(p), name
        os.unlink(p)
    for bad in ("x" * 256, "y" * 1000):
        expect_errno(errno.ENAMETOOLONG, open, m.path(bad), "wb")
        expect_errno(errno.ENAMETOOLONG, os.stat, m.path(bad))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", "..." + "0" * 61))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", key.upper()))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", key + ".kvc"))
    expect_errno(errno.ENOTDIR, os.stat, m.path(key + ".kvc", "x"))
    expect_errno(errno.EPERM, os.rename, m.path(key + ".kvc"), m.path("payload", "x"))
    expect_errno(errno.EEXIST, open, m.path("payload"), "xb")
    # binary bytes in a name, through the bytes API
    raw = os.path.join(os.fsencode(m.mnt), bytes(range(1, 47)) + bytes(range(48, 256)))
    with open(raw, "wb") as f:
        f.write(b"z")
    os.unlink(raw)
    alive(m, key)


def test_huge_requests(ws):
    m = ws.mount()
    key = publish_one(m)
    slab = m.path(key + ".kvc")
    # xattrs: any buffer size, too small a buffer, names that are not ours
    assert len(os.listxattr(slab)) > 10
    value = os.getxattr(slab, "user.kvc.fingerprint")
    assert len(value) == 64
    expect_errno(errno.ENODATA, os.getxattr, slab, "user.kvc." + "x" * 240)
    expect_errno(errno.ENOTSUP, os.getxattr, slab, "trusted.anything")
    expect_errno(errno.ENOTSUP, os.getxattr, slab, "system.posix_acl_access")
    expect_errno(errno.ENOTSUP, os.setxattr, slab, "user.kvc.hit_count", b"1" * 65536)
    expect_errno(errno.ENOTSUP, os.removexattr, slab, "user.kvc.hit_count")
    # reads at huge offsets and of huge sizes
    fd = os.open(slab, os.O_RDONLY)
    try:
        assert os.pread(fd, 1 << 20, 1 << 62) == b""
        try:  # the kernel may refuse an offset + count past its limit
            assert os.pread(fd, 1 << 20, (1 << 63) - 4096) == b""
        except OSError as e:
            assert e.errno == errno.EINVAL, e
        assert len(os.pread(fd, 64 << 20, 0)) == os.fstat(fd).st_size
    finally:
        os.close(fd)
    fd = os.open(m.path("staging"), os.O_RDWR | os.O_CREAT)
    try:
        assert os.pwrite(fd, b"q", 1 << 30) == 1
        assert os.pread(fd, 10, (1 << 30) - 5) == b"\0" * 5 + b"q"
        try:
            os.pwrite(fd, b"q", (1 << 63) - 1)
            raise AssertionError("a write at 2^63-1 succeeded")
        except OSError as e:
            assert e.errno in (errno.EFBIG, errno.EINVAL), e
    finally:
        os.close(fd)
    os.unlink(m.path("staging"))
    alive(m, key)


FLAGS = [os.O_RDONLY, os.O_WRONLY, os.O_RDWR]
MODIFIERS = [os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_APPEND, os.O_NOFOLLOW, os.O_DIRECTORY,
             os.O_NONBLOCK, os.O_SYNC, getattr(os, "O_NOATIME", 0)]


def test_every_open_flag(ws):
    m = ws.mount()
    key = publish_one(m)
    targets = [m.path(key + ".kvc"), m.path("payload", key), m.path(".kvcfs", "metrics"),
               m.mnt, m.path("payload"), m.path("staged"), m.path("0" * 64 + ".kvc")]
    seen = set()
    for path in targets:
        for acc in FLAGS:
            for k in range(0, 4):
                for mods in itertools.combinations(MODIFIERS, k):
                    flags = acc
                    for f in mods:
                        flags |= f
                    try:
                        fd = os.open(path, flags, 0o644)
                        os.close(fd)
                        seen.add("ok")
                    except OSError as e:
                        assert e.errno in (errno.EPERM, errno.EACCES, errno.EEXIST,
                                           errno.EISDIR, errno.ENOTDIR, errno.ENOENT,
                                           errno.EINVAL, errno.EBADMSG, errno.EROFS), \
                            (path, oct(flags), errno.errorcode[e.errno])
                        seen.add(errno.errorcode[e.errno])
        for p in (m.path("staged"), m.path("0" * 64 + ".kvc")):
            if os.path.exists(p):
                os.unlink(p)
    # the published slab is as it was, and the daemon serves
    alive(m, key)
    assert {"ok", "EPERM", "EISDIR", "EEXIST"} <= seen, seen


if __name__ == "__main__":
    main()
