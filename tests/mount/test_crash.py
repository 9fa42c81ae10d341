#!/usr/bin/env python3
"""Kill the daemon with SIGKILL at random moments while clients publish and
read large slabs; restart it; check that nothing partial or invalid is ever
visible, that every publish that returned success survived, and that no
temp is left after start-up.

KVC_CRASH_ROUNDS sets the number of rounds (default 6; the long run uses
100 or more)."""
import os
import random
import subprocess
import sys
import time

from harness import Mount, main, verify_slabs
import workers

HERE = os.path.dirname(os.path.abspath(__file__))


def verified_keys(root):
    """The keys of the slabs in root, after `kvc verify` passed on all."""
    return {n[:-4] for n in verify_slabs(root)}


def test_crash_rounds(ws):
    rounds = int(os.environ.get("KVC_CRASH_ROUNDS", "6"))
    rng = random.Random(int(os.environ.get("KVC_CRASH_SEED", "1")))
    root = ws.root()
    logdir = os.path.join(ws.dir, "logs")
    os.makedirs(logdir)
    opts = ["host_id=crashhost"]
    total_published = total_read = 0
    for rnd in range(rounds):
        m = Mount(root, os.path.join(ws.dir, "mnt"), opts,
                  allowed_stderr=[r"publish failed", r"dropped corrupt"])
        m.start()
        # Start-up after a crash: the dead daemon's temps are swept.
        leftover = [n for n in os.listdir(root) if n.endswith((".tmp", ".kvcpart"))]
        assert leftover == [], "temps after start-up: %s" % leftover
        seeds = ",".join(str(rnd * 1000 + i) for i in range(6))
        sizes = "65536,1048576,4194304"
        procs = []
        for i in range(3):
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "workers.py"), "writer", m.mnt, logdir,
                 "30", seeds, sizes], stdout=subprocess.PIPE, text=True))
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "workers.py"), "reader", m.mnt, logdir,
                 "30"], stdout=subprocess.PIPE, text=True))
        time.sleep(rng.uniform(0.2, 1.5))
        m.kill()
        for p in procs:
            try:
                out, _ = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                raise AssertionError("a client hung after the daemon died")
            role, n = out.split()[:2] if out.strip() else ("?", "0")
            if role == "writer":
                total_published += int(n)
            elif role == "reader":
                total_read += int(n)
        assert not os.path.exists(os.path.join(logdir, "bad")), \
            open(os.path.join(logdir, "bad")).read()
        present = verified_keys(root)  # every slab on disk is whole and valid
        lost = set(workers.known(logdir)) - present
        assert not lost, "published but lost: %s" % sorted(lost)[:5]
    # A last clean start: temps swept, everything still there.
    m = Mount(root, os.path.join(ws.dir, "mnt"), opts)
    m.start()
    assert [n for n in os.listdir(root) if n.endswith((".tmp", ".kvcpart"))] == []
    assert set(workers.known(logdir)) <= verified_keys(root)
    m.stop()
    print("    %d rounds: %d publishes acknowledged, 0 lost; %d verified reads, 0 wrong"
          % (rounds, total_published, total_read))


if __name__ == "__main__":
    main()
