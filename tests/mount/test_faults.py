#!/usr/bin/env python3
"""Faults under a running daemon: a full backing filesystem, a backing root
turned read-only, a backing file changed behind an open reader. Each gives
the caller a clear errno and loses no published slab."""
import contextlib
import errno
import os
import subprocess

from harness import drop_caches, expect_errno, kvcache, main, metric, verify_slabs

FP, CTX = bytes(32), bytes(range(32))


def slab(i, n=100_000):
    tokens = [i, 7, 7]
    return kvcache.cache_key(FP, "f16", CTX, tokens), kvcache.build_slab(
        FP, "f16", CTX, tokens, bytes([i % 251]) * n, hostname=b"t")


@contextlib.contextmanager
def tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path])


def root_only():
    if os.geteuid() != 0:
        print("    (skipped: needs root to mount a tmpfs)")
        return True
    return False


def test_enospc_mid_write(ws):
    if root_only():
        return
    with tmpfs(os.path.join(ws.dir, "small"), "2m") as root:
        m = ws.mount(root, allowed_stderr=[r"publish failed"])
        key, data = slab(1)
        kvcache.save(m.mnt, key, data)
        big_key, big = slab(2, n=3_000_000)

        def write_staging():
            with open(m.path("big.part"), "wb") as f:
                f.write(big)
        expect_errno(errno.ENOSPC, write_staging)
        os.unlink(m.path("big.part"))

        def write_direct():
            f = open(m.path(big_key + ".kvc"), "wb")
            try:
                f.write(big)
            finally:
                # close() reports the write's error, not a refusal of the
                # incomplete bytes
                expect_errno(errno.ENOSPC, f.close)
        expect_errno(errno.ENOSPC, write_direct)
        assert not os.path.exists(m.path(big_key + ".kvc"))
        assert verify_slabs(root) == [key + ".kvc"], "the published slab is intact"
        with open(m.path("payload", key), "rb") as f:
            assert f.read() == data[-100_000:]
        # Space comes back once the refused bytes' temps are gone.
        k3, d3 = slab(3)
        for _ in range(50):
            try:
                kvcache.save(m.mnt, k3, d3)
                break
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                import time
                time.sleep(0.1)
        assert verify_slabs(root) == sorted([key + ".kvc", k3 + ".kvc"])
        m.stop()


def test_backing_root_turns_read_only(ws):
    if root_only():
        return
    with tmpfs(os.path.join(ws.dir, "fs"), "16m") as root:
        m = ws.mount(root)
        key, data = slab(1)
        kvcache.save(m.mnt, key, data)
        subprocess.run(["mount", "-o", "remount,ro", root], check=True)
        k2, d2 = slab(2)
        expect_errno(errno.EROFS, kvcache.save, m.mnt, k2, d2)
        expect_errno(errno.EROFS, os.unlink, m.path(key + ".kvc"))
        with open(m.path("payload", key), "rb") as f:   # reads still work
            assert f.read() == data[-100_000:]
        subprocess.run(["mount", "-o", "remount,rw", root], check=True)
        kvcache.save(m.mnt, k2, d2)
        assert verify_slabs(root) == sorted([key + ".kvc", k2 + ".kvc"])
        m.stop()


def test_backing_file_changed_under_reader(ws):
    if root_only():
        return
    m = ws.mount(allowed_stderr=[r"changed behind an open reader"])
    n = 8 << 20
    key, data = slab(5, n=n)
    kvcache.save(m.mnt, key, data)
    backing = os.path.join(m.root, key + ".kvc")
    payload = data[-n:]
    far = 6 << 20  # past what the kernel read ahead and cached

    def reader():
        f = open(m.path("payload", key), "rb", buffering=0)
        assert f.read(4096) == payload[:4096]
        f.seek(far)
        # The open put the verified bytes in the kernel's cache, and reads
        # from there are safe whatever happens to the file; drop them so
        # the reads below reach the daemon and its checks.
        drop_caches(1)
        return f

    # Truncated behind an open reader: a read that reaches the file fails,
    # never returns short or foreign bytes.
    f = reader()
    os.truncate(backing, len(data) - 10)
    expect_errno(errno.EIO, f.read, 4096)
    f.close()
    os.unlink(backing)

    # Rewritten in place: the changed bytes are never served.
    kvcache.save(m.mnt, key, data)
    f = reader()
    with open(backing, "r+b") as w:
        w.seek(len(data) - n + far + 100)
        w.write(b"\xff" * 10)
    expect_errno(errno.EIO, f.read, 4096)
    f.close()
    os.unlink(backing)

    # Rewritten in place with another valid slab of the key (the same
    # length, another payload): valid, but not what this reader began to
    # read. Re-verified, it is refused: a reader never stitches two slabs.
    kvcache.save(m.mnt, key, data)
    tokens = [5, 7, 7]
    other_data = kvcache.build_slab(FP, "f16", CTX, tokens, bytes([77]) * n, hostname=b"t")
    assert len(other_data) == len(data)
    f = reader()
    with open(backing, "r+b") as w:
        w.write(other_data)
    expect_errno(errno.EIO, f.read, 4096)
    f.close()
    with open(m.path("payload", key), "rb") as g:  # a new open: the new slab
        assert g.read() == bytes([77]) * n
    os.unlink(backing)

    refused = metric(m, "changed_under_readers_total")
    assert refused >= 3, refused

    # Replaced by rename (another host re-publishing the key, say): the
    # open reader keeps the bytes it verified.
    kvcache.save(m.mnt, key, data)
    f = reader()
    other = os.path.join(m.root, "other")
    with open(other, "wb") as w:
        w.write(data[:12] + b"\x09\x00\x00\x00" + data[16:])  # another hit count
    os.rename(other, backing)
    try:
        assert f.read() == payload[far:]
    finally:
        f.close()

    # Other opens of the same slab (hit writes) do not disturb a reader.
    os.unlink(backing)
    kvcache.save(m.mnt, key, data)
    f = reader()
    for _ in range(3):
        with open(m.path(key + ".kvc"), "rb") as g:
            g.read(10)
    assert f.read() == payload[far:]
    f.close()
    assert metric(m, "changed_under_readers_total") == refused, "no read was refused after the faults"

if __name__ == "__main__":
    main()
