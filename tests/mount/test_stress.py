#!/usr/bin/env python3
"""Concurrency: 8 writers publishing the same keys and different keys,
readers throughout, unlinks racing opens, eviction running under a small
budget. Every read that succeeds returns exactly the published bytes, every
slab left is valid, and the daemon never stalls (a watchdog bounds the run).

KVC_STRESS_SECONDS sets the duration (default 8)."""
import os
import subprocess
import sys
import time

from harness import KVC, main, reap, run, settle

HERE = os.path.dirname(os.path.abspath(__file__))


def stop_all(procs, m):
    """Kill every client and wait for it, so that none still holds a file
    of the mount when the test unmounts it (aborting the mount if it hung:
    then some cannot die); what that took, to tell with the failure."""
    note = reap(procs, m)
    return "" if note is None else " (" + note + ")"


def test_stress(ws):
    seconds = float(os.environ.get("KVC_STRESS_SECONDS", "8"))
    options = ["max_size=24M", "low_watermark=16M"]
    # threads=8 unless the suite runs this with a threads= of its own
    # (KVCFS_TEST_OPTIONS=threads=1), which the test's would override.
    if "threads=" not in os.environ.get("KVCFS_TEST_OPTIONS", ""):
        options.append("threads=8")
    m = ws.mount(options=options, allowed_stderr=[r"publish failed"])
    logdir = os.path.join(ws.dir, "logs")
    os.makedirs(logdir)
    sizes = "4096,65536,1048576,3145728"
    shared = ",".join(str(i) for i in range(8))
    procs = []
    for i in range(8):
        seeds = shared if i < 4 else ",".join(str(1000 * (i + 1) + j) for j in range(40))
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"),
                                       "writer", m.mnt, logdir, str(seconds), seeds, sizes],
                                      stdout=subprocess.PIPE, text=True))
    for _ in range(4):
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"),
                                       "reader", m.mnt, logdir, str(seconds)],
                                      stdout=subprocess.PIPE, text=True))
    for _ in range(2):
        # Readers of keys that writers are creating directly right now.
        procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"),
                                       "eager", m.mnt, logdir, str(seconds), shared, sizes],
                                      stdout=subprocess.PIPE, text=True))
    procs.append(subprocess.Popen([sys.executable, os.path.join(HERE, "workers.py"),
                                   "unlinker", m.mnt, logdir, str(seconds)],
                                  stdout=subprocess.PIPE, text=True))
    deadline = time.time() + seconds + 60  # the watchdog
    counts = {}
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            stuck = m.kernel_stacks()
            note = stop_all(procs, m)
            raise AssertionError("a client made no progress for 60 s: the daemon stalled "
                                 "(kvcfs threads: %s)%s" % (stuck, note))
        if p.returncode != 0:
            note = stop_all(procs, m)
            raise AssertionError("a client failed: %s%s" % (out, note))
        role, n = out.split()
        counts[role] = counts.get(role, 0) + int(n)
    assert not os.path.exists(os.path.join(logdir, "bad")), open(os.path.join(logdir, "bad")).read()
    settle(m)  # the worker's eviction after the last publishes, before the listing
    names = [n for n in os.listdir(m.root) if n.endswith(".kvc")]
    if names:
        run([KVC, "verify"] + [os.path.join(m.root, n) for n in names])
    metrics = {l.split()[0]: float(l.split()[1]) for l in open(m.path(".kvcfs", "metrics"))
               if not l.startswith("#")}
    assert counts["reader"] > 0 and counts["writer"] > 0 and counts["eager"] > 0, counts
    assert metrics["kvcfs_bytes"] <= 24 << 20 or metrics["kvcfs_slabs"] <= 2, metrics
    print("    %.0f s: %d publishes, %d verified reads, %d reads of keys in flight, %d unlinks; "
          "%d adopted, %d evicted"
          % (seconds, counts["writer"], counts["reader"], counts["eager"], counts["unlinker"],
             metrics["kvcfs_adopted_total"], metrics["kvcfs_evictions_total"]))


if __name__ == "__main__":
    main()
