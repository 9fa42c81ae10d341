#!/usr/bin/env python3
"""kvcfs on a shared backing root on GlusterFS: two "hosts" (two GlusterFS
mounts, one kvcfs each, different host ids) on a single-brick volume and on
a replica-2 volume, served on loopback. Needs root (mount, /etc/hosts) and
glusterfs-server; without them it skips (77)."""
import errno
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
import harness  # noqa: E402
from harness import kvcache  # noqa: E402
from glusterlab import Lab  # noqa: E402
import test_local_tier as tier  # noqa: E402

FP, CTX = bytes(range(50, 82)), bytes(range(90, 122))


def slab(i, size=65536, hits=0):
    tokens = [i, 4242]
    payload = bytes([(i * 7 + j) % 256 for j in range(251)]) * (size // 251 + 1)
    payload = payload[:size]
    return (kvcache.cache_key(FP, "q8_0", CTX, tokens),
            kvcache.build_slab(FP, "q8_0", CTX, tokens, payload, hits=hits, hostname=b"g"),
            payload)


def hosts(ws, lab, name, replica, options, a_opts=()):
    bricks = lab.volume(name, 2 if replica else 1, replica=2 if replica else None,
                        options=options)
    ga = lab.mount(name, os.path.join(ws.dir, name + "-ga"))
    gb = lab.mount(name, os.path.join(ws.dir, name + "-gb"))
    allowed = [r"dropped corrupt slab", r"changed behind"]
    a = harness.Mount(ga, os.path.join(ws.dir, name + "-a"), ["host_id=hostA"] + list(a_opts),
                      allowed).start()
    b = harness.Mount(gb, os.path.join(ws.dir, name + "-b"), ["host_id=hostB"], allowed).start()
    return bricks, a, b


def cross_host(a, b, report):
    for i in range(5):
        key, data, payload = slab(i, 65536 * (i + 1))
        kvcache.save(a.mnt, key, data)
        with open(os.path.join(b.mnt, "payload", key), "rb") as f:
            assert f.read() == payload, "B reads what A published"
    delays = []
    for i in range(100, 110):
        key, data, _ = slab(i)
        kvcache.save(a.mnt, key, data)
        t = time.perf_counter()
        while not os.path.exists(os.path.join(b.mnt, key + ".kvc")):
            assert time.perf_counter() - t < 10, "not visible on B after 10 s"
            time.sleep(0.002)
        delays.append(time.perf_counter() - t)
    report["visibility_ms"] = statistics.median(delays) * 1000


def races(a, b, rounds, report):
    ok = 0
    for r in range(rounds):
        key, d1, _ = slab(1000 + r, 262144, hits=1)
        _, d2, _ = slab(1000 + r, 262144, hits=2)  # same key, other header
        errors = []

        def pub(m, data):
            try:
                kvcache.save(m.mnt, key, data)
            except OSError as e:
                errors.append(e)
        ts = [threading.Thread(target=pub, args=(a, d1)), threading.Thread(target=pub, args=(b, d2))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, "a racing publish failed: %s" % errors
        names = [n for n in os.listdir(a.root) if n.startswith(key)]
        assert names == [key + ".kvc"], names
        harness.run([harness.KVC, "verify", os.path.join(a.root, key + ".kvc")])
        ok += 1
    report["race_rounds"] = ok


def corruption(a, b, bricks):
    key, data, _ = slab(7, 300000)
    kvcache.save(a.mnt, key, data)
    for brick in bricks:
        path = os.path.join(brick, key + ".kvc")
        with open(path, "r+b") as f:
            f.seek(len(data) - 5000)
            byte = f.read(1)
            f.seek(len(data) - 5000)
            f.write(bytes([byte[0] ^ 0x55]))
    harness.drop_caches()
    for m in (a, b):
        harness.expect_errno(errno.EIO, open, os.path.join(m.mnt, "payload", key), "rb")


def eviction_under_reader(a, b):
    key, data, payload = slab(300, 1 << 20)
    kvcache.save(a.mnt, key, data)
    f = open(os.path.join(b.mnt, "payload", key), "rb", buffering=0)
    try:
        first = f.read(100000)
        for i in range(301, 306):
            kvcache.save(a.mnt, *slab(i, 1 << 20)[:2])
        deadline = time.time() + 5
        while os.path.exists(os.path.join(a.root, key + ".kvc")):
            assert time.time() < deadline, "A did not evict the slab B holds"
            time.sleep(0.05)
        assert first + f.read() == payload, "B's open read survives A's eviction"
    finally:
        f.close()


def stop_hosts_and_lab(hosts, lab):
    """Cleanup after a scenario, whatever failed: every kvcfs host that
    started is stopped (a failure to stop is the test's own report, not a
    reason to leave the lab up), then the lab."""
    for m in hosts:
        if m is not None:
            try:
                m.stop()
            except AssertionError:
                pass
    lab.stop()


def sweep_own_temps(a):
    a.stop()
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = "%064x.kvc.hostA.%d.0.tmp" % (7, dead.pid)  # the old temp form, our label
    theirs = "%064x.kvc.hostB.%d.0.tmp" % (7, dead.pid)
    for n in (mine, theirs):
        with open(os.path.join(a.root, n), "w") as f:
            f.write("partial")
    a.start()
    names = os.listdir(a.root)
    assert mine not in names, "a restarted host sweeps its own dead temps"
    assert theirs in names, "and leaves another host's recent ones"
    os.unlink(os.path.join(a.root, theirs))


def throughput(m, report, prefix, size=32 << 20):
    key, data, payload = slab(5000 + len(report), size)
    src = os.path.join(os.path.dirname(m.mnt), "src-%d" % len(report))
    with open(src, "wb") as f:
        f.write(data)
    t = time.perf_counter()
    with open(src, "rb") as s, open(os.path.join(m.mnt, "in.part"), "wb") as d:
        shutil.copyfileobj(s, d, 1 << 20)
    os.rename(os.path.join(m.mnt, "in.part"), os.path.join(m.mnt, key + ".kvc"))
    report[prefix + "publish_MBps"] = size / (time.perf_counter() - t) / 1e6
    harness.drop_caches()
    t = time.perf_counter()
    with open(os.path.join(m.mnt, "payload", key), "rb") as f:
        assert f.read() == payload
    report[prefix + "read_MBps"] = size / (time.perf_counter() - t) / 1e6
    os.unlink(src)


def wait_for(what, cond, seconds=10):
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, what
        time.sleep(0.05)


def directories(a, b):
    """Two hosts making, filling and removing directories in one shared
    root: each sees the other's, and neither's churn disturbs the other."""
    os.makedirs(os.path.join(a.mnt, "model", "node-a"))
    key, data, payload = slab(2000)
    kvcache.save(os.path.join(a.mnt, "model", "node-a"), key, data)
    # B finds A's directory and slab by lookup at once, payload view too.
    with open(os.path.join(b.mnt, "payload", "model", "node-a", key), "rb") as f:
        assert f.read() == payload, "B reads the payload of A's nested slab"
    assert not os.path.exists(os.path.join(b.mnt, "model", key + ".kvc"))
    errors = []

    def churn(m, tag):
        try:
            for r in range(8):
                d = os.path.join(m.mnt, "model", "%s-%d" % (tag, r))
                os.mkdir(d)
                names = set()
                for i in range(3):
                    k, dd, _ = slab(3000 + 10 * r + i)  # the same keys on both hosts
                    kvcache.save(d, k, dd)
                    names.add(k + ".kvc")
                assert set(os.listdir(d)) == names, (d, os.listdir(d))
                shutil.rmtree(d)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    ts = [threading.Thread(target=churn, args=(a, "a")), threading.Thread(target=churn, args=(b, "b"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    # B removes the tree A made; A sees it go.
    shutil.rmtree(os.path.join(b.mnt, "model"))
    wait_for("A still sees the removed directory",
             lambda: not os.path.exists(os.path.join(a.mnt, "model")))
    assert not os.path.exists(os.path.join(a.root, "model"))


def scenario(ws, name, replica):
    lab = Lab(os.path.join(ws.dir, "lab"))
    report = {}
    a = b = None
    lab.start()
    try:
        bricks, a, b = hosts(ws, lab, name, replica, Lab.RECOMMENDED,
                             a_opts=["max_size=3M", "low_watermark=2M"])
        cross_host(a, b, report)
        directories(a, b)
        races(a, b, int(os.environ.get("KVC_GLUSTER_RACES", "20")), report)
        corruption(a, b, bricks)
        eviction_under_reader(a, b)
        sweep_own_temps(a)
        throughput(b, report, "")
        harness.settle(a)
        harness.verify_slabs(a.root)
        # The same on a volume with default options, for the numbers.
        _, da, db = hosts(ws, lab, name + "def", replica, {})
        cross_host(da, db, report_default := {})
        throughput(db, report_default, "")
        for m in (da, db):
            m.stop()
        local = harness.Mount(ws.root("local"), os.path.join(ws.dir, "local-mnt")).start()
        throughput(local, report_local := {}, "")
        local.stop()
    finally:
        stop_hosts_and_lab((a, b), lab)
    print("    %s: %d racing rounds, 0 lost; visibility %.1f ms (default options %.1f ms); "
          "publish %.0f MB/s, read %.0f MB/s (default options %.0f / %.0f; local disk %.0f / %.0f)"
          % (name, report["race_rounds"], report["visibility_ms"], report_default["visibility_ms"],
             report["publish_MBps"], report["read_MBps"], report_default["publish_MBps"],
             report_default["read_MBps"], report_local["publish_MBps"], report_local["read_MBps"]))


def tier_hosts(ws, lab, name):
    """Two hosts on one single-brick volume, each with its own local tier."""
    lab.volume(name, 1, options=Lab.RECOMMENDED)
    allowed = tier.ALLOWED + [r"dropped corrupt slab", r"changed behind"]
    ms = []
    for h in ("A", "B"):
        g = lab.mount(name, os.path.join(ws.dir, name + "-g" + h))
        local = ws.root(name + "-local" + h)
        ms.append(harness.Mount(g, os.path.join(ws.dir, name + "-" + h),
                                ["host_id=host" + h, "local=" + local, "local_size=40M"],
                                allowed).start())
        ms[-1].local = local
    return ms


def wait_gone(path, seconds=10):
    deadline = time.time() + seconds
    while os.path.exists(path):
        assert time.time() < deadline, path + " still visible"
        time.sleep(0.05)


def test_local_tier(ws):
    """Issue 15's scenarios on GlusterFS: each host has its own local tier."""
    lab = Lab(os.path.join(ws.dir, "lab"))
    a = b = None
    lab.start()
    try:
        a, b = tier_hosts(ws, lab, "kvctier")
        key, data, payload = slab(600, 1 << 20)
        kvcache.save(a.mnt, key, data)
        assert tier.copies(a.local) == [key + ".kvc"], "A keeps what it published"
        assert harness.metric(a, "local_kept_published_total") == 1
        # B's first read fetches, its second is local.
        assert tier.read(b, "payload", key) == payload
        assert harness.metric(b, "local_fetches_total") == 1
        assert harness.metric(b, "local_fetched_bytes_total") == len(data)
        assert tier.read(b, "payload", key) == payload
        assert harness.metric(b, "local_hits_total") == 1
        assert harness.metric(b, "local_fetches_total") == 1
        # A corrupt copy on B is refetched, never served.
        copy = os.path.join(b.local, key + ".kvc")
        with open(copy, "r+b") as f:
            f.seek(len(data) - 100)
            f.write(b"\xff" * 8)
        assert tier.read(b, "payload", key) == payload
        assert harness.metric(b, "local_fetches_total") == 2
        assert harness.metric(b, "local_dropped_total") == 1
        harness.verify_slabs(b.local)
        # A removes the key: B stops serving it and drops its copy.
        os.unlink(os.path.join(a.mnt, key + ".kvc"))
        wait_gone(os.path.join(b.root, key + ".kvc"))
        harness.expect_errno(errno.ENOENT, tier.read, b, "payload", key)
        assert tier.copies(b.local) == []
        # Local budget (40M) holds with 12 slabs of 4 MiB read on B.
        for i in range(610, 622):
            k, d, p = slab(i, 4 << 20)
            kvcache.save(a.mnt, k, d)
            assert tier.read(b, "payload", k) == p
            harness.settle(b)  # the worker evicts after the fetch
            size = sum(os.path.getsize(os.path.join(b.local, n)) for n in tier.copies(b.local))
            assert size <= 40 << 20, "B's local tier over budget: %d" % size
        assert harness.metric(b, "local_evictions_total") >= 2
        # kill -9 of B in the middle of a fetch: no partial copy after restart.
        big, path, work = tier.big_slab(650, 32 << 20)  # within local_size
        try:
            shutil.copyfile(path, os.path.join(a.mnt, "big.part"))
            os.rename(os.path.join(a.mnt, "big.part"), os.path.join(a.mnt, big + ".kvc"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for name in tier.copies(b.local):
            os.unlink(os.path.join(b.local, name))  # nothing that could pass for the copy
        b.stop()
        b.start()
        reader = subprocess.Popen(["cat", os.path.join(b.mnt, "payload", big)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        caught = False
        deadline = time.time() + 30
        while not caught and time.time() < deadline and reader.poll() is None:
            caught = any(n.endswith(".kvcpart") and
                         os.path.getsize(os.path.join(b.local, n)) > 0
                         for n in os.listdir(b.local))
            time.sleep(0.001)
        assert caught, "never saw B's fetch in progress"
        b.kill()
        reader.wait()
        assert tier.copies(b.local) == [], "no copy under a slab name after kill -9"
        b.start()
        assert not any(n.endswith(".kvcpart") for n in os.listdir(b.local))
        with open(os.path.join(b.mnt, big + ".kvc"), "rb") as f:
            while f.read(8 << 20):
                pass
        assert harness.metric(b, "local_fetches_total") == 1
        harness.verify_slabs(b.local)
    finally:
        stop_hosts_and_lab((a, b), lab)


def test_single_brick(ws):
    scenario(ws, "kvcone", replica=False)


def test_replica_2(ws):
    scenario(ws, "kvctwo", replica=True)


if __name__ == "__main__":
    if os.geteuid() != 0 or shutil.which("glusterd") is None:
        print("SKIP: needs root and glusterfs-server")
        sys.exit(77)
    harness.main()
