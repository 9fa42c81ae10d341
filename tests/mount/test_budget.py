#!/usr/bin/env python3
"""The byte budget: what eviction keeps, what it never touches, and that
its order is a function of what the slab headers persist."""
import errno
import math
import os
import struct
import time

from harness import expect_errno, kvcache, main, metric, settle

FP = bytes(range(32))
CTX = bytes(range(32, 64))
BASE = 1_700_000_000  # unix seconds, in the past; fixed so the order is known
CREDIT = 300


def slab(i, payload_len=100_000, last_used=None, hits=0):
    tokens = [i, i + 1, i + 2]
    payload = bytes([i & 0xFF]) * payload_len
    data = kvcache.build_slab(FP, "q8_0", CTX, tokens, payload, created=BASE,
                              last_used=BASE + i if last_used is None else last_used,
                              hits=hits, hostname=b"test")
    return kvcache.cache_key(FP, "q8_0", CTX, tokens), data


def score(hits, last_used):
    return last_used + CREDIT * math.log2(1 + hits)


def header(root, key):
    with open(os.path.join(root, key + ".kvc"), "rb") as f:
        h = f.read(48)
    return struct.unpack_from("<I", h, 12)[0], struct.unpack_from("<Q", h, 32)[0]


def simulate(published, max_size, low):
    """The policy, restated: after each publish, while over max_size evict
    the lowest score (ties: creation, then key) among all but the slab just
    published, down to the low watermark."""
    live = {}
    for key, size, hits, last_used in published:
        live[key] = (size, hits, last_used)
        if sum(v[0] for v in live.values()) > max_size:
            order = sorted((k for k in live if k != key),
                           key=lambda k: (score(live[k][1], live[k][2]), bytes.fromhex(k)))
            for k in order:
                if sum(v[0] for v in live.values()) <= low:
                    break
                del live[k]
    return set(live)


def slabs_in(root):
    return {n[:-4] for n in os.listdir(root) if n.endswith(".kvc")}


def test_fill_past_budget(ws):
    m = ws.mount(options=["max_size=1000000", "low_watermark=800000", "hit_credit=%d" % CREDIT])
    published = []
    popular_key = stale_key = None
    for i in range(40):
        if i == 3:   # many hits, persisted in its header: kept for a while
            key, data = slab(i, hits=1000)
            popular_key = key
        elif i == 4:  # many hits, but last used long ago: credit is bounded
            key, data = slab(i, hits=1000, last_used=BASE - 10_000)
            stale_key = key
        else:
            key, data = slab(i)
        kvcache.save(m.mnt, key, data)
        settle(m)  # the worker evicts after the publish returned
        hits, last_used = header(m.root, key)
        published.append((key, len(data), hits, last_used))
        assert metric(m, "bytes") <= 1_000_000 or len(slabs_in(m.root)) == 1
    expected = simulate(published, 1_000_000, 800_000)
    assert slabs_in(m.root) == expected, (sorted(slabs_in(m.root)), sorted(expected))
    assert popular_key in expected and stale_key not in expected
    assert published[-1][0] in expected and published[-2][0] in expected
    assert metric(m, "evictions_total") == 40 - len(expected)
    assert metric(m, "bytes") == sum(p[1] for p in published if p[0] in expected)
    assert metric(m, "slabs") == len(expected)
    print("    filled %d x %d bytes into a 1000000-byte budget: %d remain, %d evicted"
          % (len(published), published[0][1], len(expected), metric(m, "evictions_total")))


def test_open_slab_survives(ws):
    # hit_credit=0: the order is last use alone (key0's open is one).
    m = ws.mount(options=["max_size=600000", "low_watermark=400000", "hit_credit=0"])
    key0, data0 = slab(0)
    kvcache.save(m.mnt, key0, data0)
    with open(m.path(key0 + ".kvc"), "rb") as held:  # oldest, and open
        for i in range(1, 20):
            kvcache.save(m.mnt, *slab(i))
            settle(m)
        assert key0 in slabs_in(m.root), "an open slab is never evicted"
        got = held.read()
        assert got[48:] == data0[48:] and got[:12] == data0[:12]
    assert metric(m, "evictions_total") > 0
    # Closed, it is fair game again: once newer slabs come, it goes
    # (used later than its last hit; not in the future, which earns nothing).
    time.sleep(1.1)
    newer = int(time.time())
    for i in range(20, 26):
        kvcache.save(m.mnt, *slab(i, last_used=newer))
        settle(m)
    assert key0 not in slabs_in(m.root)


def test_just_published_survives(ws):
    m = ws.mount(options=["max_size=500000", "low_watermark=300000"])
    for i in range(1, 5):
        kvcache.save(m.mnt, *slab(i))
    # Its header says it was last used in 1970: it is still kept.
    key, data = slab(50, last_used=1)
    kvcache.save(m.mnt, key, data)
    settle(m)
    assert key in slabs_in(m.root), "the slab just published is never evicted"
    assert metric(m, "evictions_total") > 0


def test_order_same_after_remount(ws):
    root = ws.root()
    m = ws.mount(root)  # no budget: nothing evicted
    published = []
    for i in range(12):
        key, data = slab(i, hits=(i * 7) % 5)
        kvcache.save(m.mnt, key, data)
    # Use some: hits and last_used are persisted in the headers.
    for i in (2, 5, 5, 9):
        key, _ = slab(i)
        with open(m.path(key + ".kvc"), "rb") as f:
            f.read(10)
    m.stop()
    for name in sorted(os.listdir(root)):
        key = name[:-4]
        hits, last_used = header(root, key)
        published.append((key, os.path.getsize(os.path.join(root, name)), hits, last_used))
    # A restart with a budget evicts at start, by the persisted order.
    ranked = sorted(published, key=lambda p: (score(p[2], p[3]), bytes.fromhex(p[0])))
    size = published[0][1]
    m2 = ws.mount(root, name="again", options=["max_size=%d" % (size * 6),
                                               "low_watermark=%d" % (size * 4)])
    expected = {p[0] for p in ranked[-4:]}
    assert slabs_in(root) == expected, (slabs_in(root), expected)
    used = {slab(i)[0] for i in (2, 5, 9)}
    assert used <= expected, "the slabs used before the restart are kept after it"
    assert metric(m2, "evictions_total") == 8


def test_oversize_refused(ws):
    m = ws.mount(options=["max_size=250000"])
    small = [slab(i) for i in range(2)]
    for key, data in small:
        kvcache.save(m.mnt, key, data)
    key, data = slab(9, payload_len=300_000)
    staging = m.path("big.part")
    with open(staging, "wb") as f:
        f.write(data)
    expect_errno(errno.ENOSPC, os.rename, staging, m.path(key + ".kvc"))
    assert os.path.exists(staging), "the staging file is kept"
    assert os.getxattr(staging, "user.kvcfs.error").startswith(b"no_space:")
    assert slabs_in(m.root) == {k for k, _ in small}, "nothing lost"

    def copy_direct():
        with open(m.path(key + ".kvc"), "wb") as f:
            f.write(data)
    expect_errno(errno.ENOSPC, copy_direct)
    assert not os.path.exists(m.path(key + ".kvc"))
    assert slabs_in(m.root) == {k for k, _ in small}
    assert metric(m, "evictions_total") == 0


def test_lying_headers_cannot_hold_the_budget(ws):
    """Seven slabs whose headers claim a last use in 2096 and 2^32-1 hits,
    then ten honest newer ones, into a budget of ten: the liars go first
    (a last use no cache could have written earns nothing, and hits earn a
    bounded credit), also after a rescan re-reads every header."""
    m = ws.mount(options=["max_size=1100000", "low_watermark=1050000",
                          "hit_credit=%d" % CREDIT])
    now = int(time.time())
    liars, honest = [], []
    for i in range(7):
        key, data = slab(100 + i, last_used=4_000_000_000, hits=2**32 - 1)
        kvcache.save(m.mnt, key, data)
        settle(m)
        liars.append(key)
    for i in range(10):
        key, data = slab(200 + i, last_used=now - 100 + i)
        kvcache.save(m.mnt, key, data)
        settle(m)
        honest.append(key)
    assert slabs_in(m.root) == set(honest), (sorted(slabs_in(m.root) & set(liars)))
    # A rescan re-reads the headers: the liars' claims count no more then.
    for i in range(7):
        key, data = slab(100 + i, last_used=4_000_000_000, hits=2**32 - 1)
        with open(os.path.join(m.root, key + ".kvc"), "wb") as f:
            f.write(data)  # planted behind the mount's back
    open(m.path(".kvcfs", "rescan")).read()
    settle(m)
    assert set(honest) <= slabs_in(m.root), sorted(set(honest) - slabs_in(m.root))


def written_by(m):
    """Bytes the daemon has sent to storage (dirtied) so far."""
    with open("/proc/%d/io" % m.proc.pid) as f:
        return int(next(l for l in f if l.startswith("write_bytes:")).split()[1])


def test_sparse_file_held_open_costs_no_disk(ws):
    """A 2 GiB sparse staging file (a few blocks) renamed while its writer
    holds it open: refused before anything is copied (over the budget:
    ENOSPC; with no budget, over copy_max: EBUSY), and no hole becomes
    blocks in the backing root. The staging file stays, and says why."""
    for options, err, reason in ((["max_size=1G"], errno.ENOSPC, b"no_space:"),
                                 ([], errno.EBUSY, b"busy:")):
        m = ws.mount(options=options, name="mnt-%d" % err)
        key, data = slab(60)
        staging = m.path("sparse.part")
        fd = os.open(staging, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, 2 << 30)
            before = written_by(m)
            # Both paths: with passthrough a copy would be needed; on the
            # daemon's path the open file's bytes were never synced.
            expect_errno(err, os.rename, staging, m.path(key + ".kvc"))
            assert os.getxattr(staging, "user.kvcfs.error").startswith(reason)
            assert written_by(m) - before < (64 << 20), written_by(m) - before
            assert os.path.exists(staging)
        finally:
            os.close(fd)
        m.stop()


def test_rescan_counts_other_mounts(ws):
    root = ws.root()
    a = ws.mount(root, name="a", options=["max_size=700000", "low_watermark=500000",
                                          "rescan=0"])
    b = ws.mount(root, name="b")
    for i in range(5):
        kvcache.save(b.mnt, *slab(i))
    assert metric(a, "slabs") == 0, "a has not looked yet"
    out = open(a.path(".kvcfs", "rescan")).read()
    assert out == "slabs 5\nbytes %d\n" % (5 * len(slab(0)[1])), out
    assert metric(a, "rescans_total") == 1
    for i in range(5, 8):
        kvcache.save(a.mnt, *slab(i))
    settle(a)
    assert metric(a, "bytes") <= 700_000
    assert slab(0)[0] not in slabs_in(root), "b's oldest slab was evicted by a's budget"
    assert slab(7)[0] in slabs_in(root)


if __name__ == "__main__":
    main()
