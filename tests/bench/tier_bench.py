#!/usr/bin/env python3
"""The local tier (-o local) on the GlusterFS lab, against baselines in the
same run. Two hosts (two GlusterFS mounts of one single-brick volume with
the recommended options, one kvcfs each); A publishes one slab, B has a
local tier on WORKDIR's disk. Before every timed read the page cache is
dropped and B is remounted.

    tier_bench.py KVCFS KVC WORKDIR [--quick]     (root, glusterfs-server)

second read: B reads the slab it fetched before (the local copy, verified
  on this first open after the remount) vs `cat` of that same local file.
first read:  B's first read (fetch from GlusterFS + verify + local copy +
  serve) vs `kvc verify` of the slab on B's GlusterFS mount (a plain read
  with CRC-32C, the hardware CRC the daemon uses)."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
sys.path.insert(0, os.path.join(HERE, "..", "gluster"))
os.environ.setdefault("KVCFS_BIN", sys.argv[1])
os.environ.setdefault("KVC_BIN", sys.argv[2])
import harness  # noqa: E402
from glusterlab import Lab  # noqa: E402

KVCFS, KVC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = "--quick" in sys.argv
ROUNDS = 3 if QUICK else 5
SIZE = (128 << 20) if QUICK else (256 << 20)
FP, CTX = bytes(range(11, 43)), bytes(range(70, 102))


def build(work):
    payload = os.path.join(work, "payload")
    with open(payload, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(SIZE >> 20):
            f.write(block)
    out = subprocess.run([KVC, "build", "--fingerprint", FP.hex(), "--quant", "q8_0",
                          "--ctx", CTX.hex(), "--tokens", "1,2,3", "--payload", payload,
                          "--hostname", "bench", "-o", work],
                         check=True, capture_output=True, text=True)
    os.unlink(payload)
    name = [n for n in os.listdir(work) if n.endswith(".kvc")][0]
    del out
    return name[:-4], os.path.join(work, name)


def timed_read(path):
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    return time.perf_counter() - t


def timed(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main():
    if os.geteuid() != 0 or shutil.which("glusterd") is None:
        print("SKIP: needs root and glusterfs-server")
        return 77
    os.makedirs(WORK, exist_ok=True)
    base = tempfile.mkdtemp(prefix="tier-bench-", dir=WORK)
    lab = Lab(os.path.join(base, "lab"))
    a = b = None
    lab.start()
    try:
        lab.volume("kvcbench", 1, options=Lab.RECOMMENDED)
        ga = lab.mount("kvcbench", os.path.join(base, "ga"))
        gb = lab.mount("kvcbench", os.path.join(base, "gb"))
        local = os.path.join(base, "localB")
        os.makedirs(local)
        a = harness.Mount(ga, os.path.join(base, "a"), ["host_id=hostA"]).start()
        b = harness.Mount(gb, os.path.join(base, "b"), ["host_id=hostB", "local=" + local])
        key, src = build(base)
        shutil.copyfile(src, os.path.join(a.mnt, "in.part"))
        os.rename(os.path.join(a.mnt, "in.part"), os.path.join(a.mnt, key + ".kvc"))
        os.unlink(src)
        through_b = os.path.join(b.mnt, key + ".kvc")
        copy = os.path.join(local, key + ".kvc")
        on_gluster = os.path.join(gb, key + ".kvc")

        second, disk, first, plain = [], [], [], []
        for _ in range(ROUNDS):
            # First read: no local copy.
            if os.path.exists(copy):
                os.unlink(copy)
            b.start()
            harness.drop_caches()
            first.append(timed_read(through_b))
            fetches = harness.metric(b, "local_fetches_total")
            assert fetches == 1, fetches
            b.stop()
            harness.drop_caches()
            plain.append(timed([KVC, "verify", on_gluster]))
            # Second read: the copy is there, B restarted, caches cold.
            b.start()
            harness.drop_caches()
            second.append(timed_read(through_b))
            assert harness.metric(b, "local_hits_total") == 1
            b.stop()
            harness.drop_caches()
            disk.append(timed_read(copy))
        mb = SIZE / 1e6

        def row(what, tier, base_t, baseline, goal):
            t, bt = statistics.median(tier), statistics.median(base_t)
            print("| %s | %.0f MB/s | %s %.0f MB/s | %.2f | >= %.2f |"
                  % (what, mb / t, baseline, mb / bt, bt / t, goal))
        print("slab %d MiB, %d rounds, medians; ratio = baseline time / tier time" %
              (SIZE >> 20, ROUNDS))
        print("| read on B | tier | baseline | ratio | goal |")
        print("| --- | --- | --- | --- | --- |")
        row("second read (local copy)", second, disk, "cat of the local file:", 0.90)
        row("first read (fetch + verify + copy)", first, plain,
            "kvc verify on GlusterFS:", 0.80)
    finally:
        for m in (a, b):
            if m is not None and m.proc is not None:
                try:
                    m.stop()
                except AssertionError as e:
                    print("warning:", e)
        lab.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
