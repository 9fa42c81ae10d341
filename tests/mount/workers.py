"""Client processes for the crash and stress tests: writers that publish
slabs and log each success, readers that check every byte they get.

A slab's content is a function of its seed, so any reader can tell whether
the bytes it was served are exactly the bytes that were published."""
import errno
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from harness import kvcache  # noqa: E402  (the examples' client)

FP = bytes(range(100, 132))
CTX = bytes(range(200, 232))


_built = {}


def slab_for(seed, size):
    """(key, slab bytes, payload). Large slabs are framed by the kvc tool
    (pure Python CRC-32C would make the workers, not kvcfs, the bottleneck)."""
    if (seed, size) in _built:
        return _built[(seed, size)]
    tokens = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, size]
    payload = random.Random(seed).randbytes(size)
    key = kvcache.cache_key(FP, "q4_0", CTX, tokens)
    kvc = os.environ.get("KVC_BIN")
    if kvc and size > 65536:
        work = tempfile.mkdtemp(prefix="kvc-worker-")
        try:
            with open(os.path.join(work, "p"), "wb") as f:
                f.write(payload)
            subprocess.run([kvc, "build", "--fingerprint", FP.hex(), "--quant", "q4_0",
                            "--ctx", CTX.hex(), "--tokens", ",".join(map(str, tokens)),
                            "--payload", os.path.join(work, "p"), "--hostname", "worker",
                            "-o", work], check=True, capture_output=True)
            with open(os.path.join(work, key + ".kvc"), "rb") as f:
                data = f.read()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:
        data = kvcache.build_slab(FP, "q4_0", CTX, tokens, payload, hostname=b"worker")
    _built[(seed, size)] = (key, data, payload)
    return _built[(seed, size)]


def payload_for(seed, size):
    return random.Random(seed).randbytes(size)


def append_line(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class Mounted:
    """Names resolved against a descriptor of the mount's root: once the
    daemon dies every call fails with ENOTCONN, instead of quietly going to
    the empty directory under the mountpoint."""

    def __init__(self, mount):
        self.dfd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
        # Started after the daemon died and the mount was detached: this is
        # the bare directory, not a cache.
        if not os.path.exists(os.path.join("/proc/self/fd/%d" % self.dfd, ".kvcfs")):
            raise OSError(errno.ENOTCONN, "not a kvcfs mount", mount)

    def open(self, name, mode):
        flags = os.O_RDONLY if mode == "rb" else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        return open(name, mode, opener=lambda p, f: os.open(p, flags, 0o644, dir_fd=self.dfd))

    def rename(self, a, b):
        os.rename(a, b, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)

    def unlink(self, name):
        os.unlink(name, dir_fd=self.dfd)


GONE = (errno.ENOTCONN, errno.ECONNABORTED)


def publish(m, key, data, direct, tag):
    if direct:
        with m.open(key + ".kvc", "wb") as f:
            f.write(data)
    else:
        staging = "w-%s.part" % tag
        with m.open(staging, "wb") as f:
            f.write(data)
        m.rename(staging, key + ".kvc")


def writer(mount, log, seeds, sizes, until, tag):
    """Publish slabs of the given seeds until the deadline or the mount dies;
    log "key seed size" after each publish that returned success."""
    rng = random.Random(tag)
    m = Mounted(mount)
    n = 0
    while time.time() < until:
        seed = rng.choice(seeds)
        size = rng.choice(sizes)
        key, data, _ = slab_for(seed, size)
        try:
            publish(m, key, data, rng.random() < 0.3, tag)
        except OSError as e:
            if e.errno in GONE:
                return n  # the daemon is gone (crash test)
            if e.errno in (errno.ENOENT, errno.ENOSPC, errno.ETXTBSY, errno.EIO):
                # a racing unlink took the staging file; budget; a copy over
                # a slab that is open in passthrough (it is there already):
                # ETXTBSY from kvcfs, or EIO from the kernel when a reader
                # is closing it at that very moment (docs/contract.md)
                continue
            raise
        append_line(log, "%s %d %d" % (key, seed, size))
        n += 1
    return n


def known(logdir):
    out = {}
    for name in os.listdir(logdir):
        if name.startswith("published"):
            with open(os.path.join(logdir, name)) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3:
                        out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


def reader(mount, logdir, until, badlog):
    """Read published keys until the deadline; any byte that is not the
    published byte is logged as BAD. Errors (EIO, ENOENT) are fine."""
    rng = random.Random(os.getpid())
    m = Mounted(mount)
    checked = 0
    while time.time() < until:
        keys = known(logdir)
        if not keys:
            time.sleep(0.01)
            continue
        key = rng.choice(sorted(keys))
        seed, size = keys[key]
        try:
            with m.open("payload/" + key, "rb") as f:
                got = f.read()
        except OSError as e:
            if e.errno in GONE:
                return checked
            continue  # evicted, unlinked, refused: fine, but never wrong bytes
        if got != payload_for(seed, size):
            append_line(badlog, "BAD %s got %d bytes" % (key, len(got)))
            return checked
        checked += 1
    return checked


def eager_reader(mount, seeds, sizes, until, badlog):
    """Open <key>.kvc for keys that writers may be creating directly at this
    very moment, as a model server polling for a prefix would: whatever an
    open returns must be the whole published slab, never a writer's bytes
    in flight. ENOENT (not there yet) and EIO are fine."""
    rng = random.Random(os.getpid())
    m = Mounted(mount)
    wanted = [(kvcache.cache_key(FP, "q4_0", CTX, [s & 0xFFFFFFFF, (s >> 32) & 0xFFFFFFFF, z]),
               s, z) for s in seeds for z in sizes]
    checked = 0
    while time.time() < until:
        key, seed, size = rng.choice(wanted)
        try:
            with m.open(key + ".kvc", "rb") as f:
                got = f.read()
        except OSError as e:
            if e.errno in GONE:
                return checked
            continue
        if len(got) < 56 or got[:4] != b"KVC\x01":
            append_line(badlog, "BAD %s.kvc: not a slab (%d bytes)" % (key, len(got)))
            return checked
        offset = int.from_bytes(got[48:56], "little")
        if got[offset:] != payload_for(seed, size):
            append_line(badlog, "BAD %s.kvc: %d bytes, not the published slab" % (key, len(got)))
            return checked
        checked += 1
    return checked


def unlinker(mount, logdir, until):
    rng = random.Random(os.getpid())
    m = Mounted(mount)
    n = 0
    while time.time() < until:
        keys = sorted(known(logdir))
        if keys:
            try:
                m.unlink(rng.choice(keys) + ".kvc")
                n += 1
            except OSError as e:
                if e.errno in GONE:
                    return n
        time.sleep(0.02)
    return n


if __name__ == "__main__":
    role, mount, logdir, duration = sys.argv[1:5]
    until = time.time() + float(duration)
    tag = "%s-%d" % (role, os.getpid())
    try:
        Mounted(mount)
    except OSError:
        print("%s 0" % role)
        sys.exit(0)
    if role == "writer":
        seeds = [int(s) for s in sys.argv[5].split(",")]
        sizes = [int(s) for s in sys.argv[6].split(",")]
        n = writer(mount, os.path.join(logdir, "published-" + tag), seeds, sizes, until, tag)
    elif role == "reader":
        n = reader(mount, logdir, until, os.path.join(logdir, "bad"))
    elif role == "eager":
        seeds = [int(s) for s in sys.argv[5].split(",")]
        sizes = [int(s) for s in sys.argv[6].split(",")]
        n = eager_reader(mount, seeds, sizes, until, os.path.join(logdir, "bad"))
    else:
        n = unlinker(mount, logdir, until)
    print("%s %d" % (role, n))
