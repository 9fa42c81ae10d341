#!/usr/bin/env python3
"""The daemon with a single request thread: libfuse's single-threaded loop
(-s), and kvcfs's own loop with -o threads=1. Then no request may wait on
the kernel for something that needs another request answered: nobody else
would answer it, and the mount hangs for good.

The case here: one rm of 1,000 slabs while another process looks up random
payload/<key> names. Each unlink tells the kernel to drop payload/<key>'s
entry, which takes payload/'s lock; a lookup in payload/ holds that lock
while it waits for its answer, queued behind the unlink. The removal must
still finish (in about a second; allowed a minute, or 10 s without a single
slab removed), and leave no slab behind.

A hang fails the test: the clients are killed, the mount's FUSE connection
is aborted if killing them is not enough (harness.reap), and the harness
unmounts it."""
import os
import random
import signal
import subprocess
import sys
import time

from harness import kvcache, main, metric, reap

SLABS = 1000
RM_TIMEOUT = 60  # the whole removal
STALL = 10       # no slab removed for this long while rm runs: hung

FP = bytes(range(32))
CTX = bytes(range(32, 64))

# stat()s payload/<key> until SIGTERM: mostly random keys (ENOENT), one in
# four a key of the slabs being removed (there or not any more). Says
# "ready" after its first stat, and how many it made at the end; any other
# error fails it.
STATTER = r"""
import errno, os, random, signal, sys
mnt, keyfile = sys.argv[1:3]
keys = open(keyfile).read().split()
rng = random.Random(os.getpid())
n = 0
def done(*_):
    print(n, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    key = rng.choice(keys) if rng.random() < 0.25 else "%064x" % rng.getrandbits(256)
    try:
        os.stat(os.path.join(mnt, "payload", key))
    except FileNotFoundError:
        pass
    except OSError as e:
        print("stat payload/%s: %s" % (key, e), file=sys.stderr, flush=True)
        sys.exit(1)
    n += 1
    if n == 1:
        print("ready", flush=True)
"""


def publish_small_slabs(m, n):
    """n slabs of 64-byte payloads, each its own key; returns the keys."""
    keys = []
    for i in range(n):
        tokens = [i, 0x5157]
        key = kvcache.cache_key(FP, "q4_0", CTX, tokens)
        kvcache.save(m.mnt, key, kvcache.build_slab(FP, "q4_0", CTX, tokens,
                                                    bytes([i & 0xFF]) * 64))
        keys.append(key)
    return keys


def slabs_in(root):
    """The *.kvc in the backing root: counted without asking the daemon."""
    return sum(1 for n in os.listdir(root) if n.endswith(".kvc"))


def rm_while_stat(ws, flags=(), options=()):
    m = ws.mount(flags=flags, options=options)
    started = time.time()
    keys = publish_small_slabs(m, SLABS)
    names = sorted(n for n in os.listdir(m.mnt) if n.endswith(".kvc"))
    assert names == sorted(k + ".kvc" for k in keys), "%d of %d slabs listed" % (len(names), SLABS)
    published = time.time() - started

    keyfile = os.path.join(ws.dir, "keys")
    with open(keyfile, "w") as f:
        f.write("\n".join(keys))
    statter = subprocess.Popen([sys.executable, "-c", STATTER, m.mnt, keyfile],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rm = None
    try:
        assert statter.stdout.readline() == "ready\n", statter.communicate()[1]
        rm = subprocess.Popen(["rm", "--"] + [m.path(n) for n in names],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        began = last_change = time.time()
        left = SLABS
        while rm.poll() is None:
            time.sleep(0.1)
            now, was = time.time(), left
            left = slabs_in(m.root)
            if left != was:
                last_change = now
            if now - last_change > STALL or now - began > RM_TIMEOUT:
                stacks = m.kernel_stacks()
                how = reap([statter, rm], m, patience=5)
                raise AssertionError(
                    "rm of %d slabs %s with %d left, while lookups in payload/ ran: the mount "
                    "hung (kvcfs threads: %s)%s"
                    % (SLABS, "stalled for %d s" % STALL if now - last_change > STALL
                       else "ran past %d s" % RM_TIMEOUT, left, stacks,
                       "; " + how if how else "; the clients were killed"))
        removal = time.time() - began
        statter.send_signal(signal.SIGTERM)
        try:
            out, err = statter.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            how = reap([statter], m, patience=5)
            raise AssertionError("the stat process did not stop after rm ended (%s)" % how)
        assert statter.returncode == 0, err
        assert rm.returncode == 0, "rm exited %d: %s" % (rm.returncode, rm.stderr.read())
    finally:
        reap([p for p in (statter, rm) if p is not None], m, patience=5)

    left = [n for n in os.listdir(m.mnt) if n.endswith(".kvc")]
    assert left == [], "%d slabs still listed after rm: %s" % (len(left), left[:3])
    assert os.listdir(m.path("payload")) == []
    assert slabs_in(m.root) == 0
    assert metric(m, "slabs") == 0
    print("    %d slabs published in %.1f s, removed in %.1f s beside %d lookups in payload/"
          % (SLABS, published, removal, int(out)))


def test_rm_1000_while_stat_single_threaded_loop(ws):
    """-s: libfuse's single-threaded session loop."""
    rm_while_stat(ws, flags=["-s"])


def test_rm_1000_while_stat_one_thread(ws):
    """-o threads=1: kvcfs's multi-threaded loop with one thread."""
    rm_while_stat(ws, options=["threads=1"])


if __name__ == "__main__":
    main()
