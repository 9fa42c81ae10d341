#!/usr/bin/env python3
"""Directories in the mount: each one a key namespace with the root's rules,
mirrored in the backing root, under one budget. First, a client that keeps
one cache directory per test case, as the format's reference implementation
does with its own suite."""
import errno
import os
import shutil
import struct
import threading
import time
import traceback

from harness import KVC, expect_errno, kvcache, main, metric, run, settle

FP = bytes(range(32))
CTX = bytes(range(32, 64))


def slab(i, payload_len=4096, last_used=None):
    tokens = [i, i + 1, i + 2]
    payload = bytes([i & 0xFF]) * payload_len
    extra = {} if last_used is None else {"created": 1_700_000_000, "last_used": last_used}
    data = kvcache.build_slab(FP, "q8_0", CTX, tokens, payload, hostname=b"test", **extra)
    return kvcache.cache_key(FP, "q8_0", CTX, tokens), data


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def client_save(d, key, data, n):
    """The reference client's save: O_EXCL temp, write, fdatasync, link(2)
    to <key>.kvc, unlink the temp, fsync the directory."""
    tmp = os.path.join(d, "%s.kvc.%d.%d.tmp" % (key, os.getpid(), n))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        assert os.write(fd, data) == len(data)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.link(tmp, os.path.join(d, key + ".kvc"))
    os.unlink(tmp)
    fsync_dir(d)


def client_restart(d):
    """What the client does at start: delete every *.tmp it lists, drop
    every <key>.kvc that does not parse."""
    for name in os.listdir(d):
        path = os.path.join(d, name)
        if name.endswith(".tmp"):
            os.unlink(path)
        elif name.endswith(".kvc"):
            with open(path, "rb") as f:
                head = f.read(72)
            if head[:4] != b"KVC\x01":
                os.unlink(path)


def one_case(cache, case, base):
    d = os.path.join(cache, "case-%02d" % case)
    os.mkdir(d)
    saved = {}
    for j in range(3):
        key, data = slab(base + j)
        client_save(d, key, data, j)
        saved[key + ".kvc"] = data
    # Its directory holds exactly what it put there.
    assert sorted(os.listdir(d)) == sorted(saved), (case, os.listdir(d))
    for name, data in saved.items():
        with open(os.path.join(d, name), "rb") as f:
            got = f.read()
        assert got[72:] == data[72:] and got[:12] == data[:12], name
    # A leftover temp and a corrupt slab written through the mount: the
    # corrupt one is refused at its close and never appears.
    with open(os.path.join(d, "left.kvc.1.1.tmp"), "wb") as f:
        f.write(b"half a slab")
    corrupt = os.path.join(d, "ab" * 32 + ".kvc")
    try:
        with open(corrupt, "wb") as f:
            f.write(b"KVC\x01" + b"\0" * 100)
    except OSError as e:
        assert e.errno == errno.EBADMSG, e
    client_restart(d)
    left = os.listdir(d)
    assert not any(n.endswith(".tmp") for n in left), left
    assert os.path.basename(corrupt) not in left, left
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def test_reference_client_cases(ws):
    """A dozen cases, each in a fresh directory of the cache directory: they
    make, fill, list, check, clean and remove it, as the reference suite
    does with TMPDIR pointing into the mount."""
    root = ws.root()
    m = ws.mount(root)
    cache = m.path("tmp")
    os.mkdir(cache)
    for case in range(12):
        one_case(cache, case, 10 * case)
    assert os.listdir(cache) == []
    os.rmdir(cache)
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"]
    # Nothing left behind in the backing root either.
    assert os.listdir(root) == [], os.listdir(root)


def test_each_directory_is_a_namespace(ws):
    root = ws.root()
    m = ws.mount(root)
    os.makedirs(m.path("a", "deep", "er"))
    os.mkdir(m.path("b"))
    key, data = slab(1)
    for d in ("a", "a/deep/er"):
        with open(m.path(d, "in.part"), "wb") as f:
            f.write(data)
        os.rename(m.path(d, "in.part"), m.path(d, key + ".kvc"))
    # Published in a/ and a/deep/er/, not in b/ or the root.
    expect_errno(errno.ENOENT, os.stat, m.path("b", key + ".kvc"))
    expect_errno(errno.ENOENT, os.stat, m.path(key + ".kvc"))
    assert sorted(os.listdir(m.path("a"))) == sorted(["deep", key + ".kvc"])
    assert os.listdir(m.path("b")) == []
    # The backing root mirrors the tree.
    assert os.path.isfile(os.path.join(root, "a", key + ".kvc"))
    assert os.path.isfile(os.path.join(root, "a", "deep", "er", key + ".kvc"))
    # The payload view of a nested slab is payload/<path>/<key>.
    with open(m.path("payload", "a", "deep", "er", key), "rb") as f:
        assert f.read() == data[struct.unpack_from("<Q", data, 48)[0]:]
    assert sorted(os.listdir(m.path("payload", "a"))) == sorted(["deep", key])
    # The virtual entries are the root's only.
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "a", "b", "payload"]
    # A staging file in a/ is a/'s: b/ does not see it.
    with open(m.path("a", "x"), "wb") as f:
        f.write(b"staged")
    expect_errno(errno.ENOENT, os.stat, m.path("b", "x"))
    os.unlink(m.path("a", "x"))
    # The same errnos as in the root.
    expect_errno(errno.EPERM, os.rename, m.path("a", key + ".kvc"), m.path("a", "y"))
    expect_errno(errno.ENOTEMPTY, os.rmdir, m.path("a"))
    expect_errno(errno.ENOTDIR, os.rmdir, m.path("a", key + ".kvc"))
    expect_errno(errno.EISDIR, os.unlink, m.path("a", "deep"))
    expect_errno(errno.EEXIST, os.mkdir, m.path("a", "deep"))
    expect_errno(errno.EPERM, os.mkdir, m.path("a", "0" * 64 + ".kvc"))
    expect_errno(errno.EPERM, os.mkdir, m.path("a", "x.kvcpart"))
    expect_errno(errno.EPERM, os.mkdir, m.path("a", "x.kvcgone"))
    # A bare key would shadow a slab's payload view.
    expect_errno(errno.EPERM, os.mkdir, m.path("a", key))
    expect_errno(errno.EEXIST, os.mkdir, m.path("payload"))
    # payload and .kvcfs are ordinary names below the root.
    os.mkdir(m.path("b", "payload"))
    with open(m.path("b", ".kvcfs"), "wb") as f:
        f.write(b"mine")
    assert sorted(os.listdir(m.path("b"))) == [".kvcfs", "payload"]
    # rm -r, to any depth.
    shutil.rmtree(m.path("a"))
    shutil.rmtree(m.path("b"))
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"]
    assert os.listdir(root) == []
    assert metric(m, "slabs") == 0


def test_renames_between_directories(ws):
    root = ws.root()
    m = ws.mount(root)
    os.mkdir(m.path("a"))
    os.mkdir(m.path("b"))
    key, data = slab(2)
    with open(m.path("a", "in.part"), "wb") as f:
        f.write(data)
    # A staging file, or a slab, stays in its directory: EXDEV, after
    # which mv copies, and the copy is published (validated) there.
    expect_errno(errno.EXDEV, os.rename, m.path("a", "in.part"), m.path("b", key + ".kvc"))
    expect_errno(errno.EXDEV, os.link, m.path("a", "in.part"), m.path("b", key + ".kvc"))
    os.rename(m.path("a", "in.part"), m.path("a", key + ".kvc"))
    expect_errno(errno.EXDEV, os.rename, m.path("a", key + ".kvc"), m.path("b", key + ".kvc"))
    shutil.move(m.path("a", key + ".kvc"), m.path("b", key + ".kvc"))
    assert os.listdir(m.path("a")) == []
    with open(m.path("b", key + ".kvc"), "rb") as f:
        assert f.read()[72:] == data[72:]
    # A corrupt file moved in is refused like any publish.
    with open(m.path("a", "bad.part"), "wb") as f:
        f.write(data[:-1] + bytes([data[-1] ^ 1]))
    other = "cd" * 32 + ".kvc"
    try:
        shutil.move(m.path("a", "bad.part"), m.path("b", other))
    except OSError as e:
        assert e.errno == errno.EBADMSG, e
    assert other not in os.listdir(m.path("b"))
    for n in os.listdir(m.path("a")):
        os.unlink(m.path("a", n))
    # A directory renames, within a parent and across: its slabs go with it.
    os.rename(m.path("b"), m.path("a", "c"))
    with open(m.path("a", "c", key + ".kvc"), "rb") as f:
        assert f.read()[72:] == data[72:]
    assert os.path.isfile(os.path.join(root, "a", "c", key + ".kvc"))
    with open(m.path("payload", "a", "c", key), "rb") as f:
        assert len(f.read()) == len(data) - struct.unpack_from("<Q", data, 48)[0]
    os.rename(m.path("a", "c"), m.path("d"))
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "a", "d", "payload"]
    # Onto an empty directory: replaced; onto a non-empty one: ENOTEMPTY;
    # onto a file: ENOTDIR; into itself: EINVAL.
    os.mkdir(m.path("e"))
    expect_errno(errno.ENOTEMPTY, os.rename, m.path("e"), m.path("d"))
    os.rename(m.path("d"), m.path("e"))
    assert os.listdir(m.path("e")) == [key + ".kvc"]
    with open(m.path("f"), "wb") as f:
        f.write(b"file")
    expect_errno(errno.ENOTDIR, os.rename, m.path("a"), m.path("f"))
    expect_errno(errno.EISDIR, os.rename, m.path("f"), m.path("a"))
    expect_errno(errno.EINVAL, os.rename, m.path("e"), m.path("e", "inside"))
    expect_errno(errno.EPERM, os.rename, m.path("e"), m.path("e" * 64 + ".kvc"))


def test_startup_and_rescan_see_the_tree(ws):
    root = ws.root()
    key, data = slab(3)
    # Made directly in the backing root, as another host would.
    os.makedirs(os.path.join(root, "x", "y"))
    with open(os.path.join(root, "x", "y", key + ".kvc"), "wb") as f:
        f.write(data)
    # A temp left by a writer that is gone (a pid that cannot be alive).
    host = os.uname().nodename
    stale = os.path.join(root, "x", "stage.%s.999999999.1.kvcpart" % host)
    with open(stale, "wb") as f:
        f.write(b"left")
    m = ws.mount(root, options=["rescan=1"])
    assert not os.path.exists(stale), "the start-up sweep missed a subdirectory"
    assert metric(m, "slabs") == 1
    assert metric(m, "directories") == 3
    with open(m.path("x", "y", key + ".kvc"), "rb") as f:
        assert f.read()[72:] == data[72:]
    # Another host adds a directory with a slab, and removes one.
    key2, data2 = slab(4)
    os.makedirs(os.path.join(root, "z"))
    with open(os.path.join(root, "z", key2 + ".kvc"), "wb") as f:
        f.write(data2)
    shutil.rmtree(os.path.join(root, "x"))
    deadline = time.time() + 10
    while (metric(m, "slabs"), metric(m, "directories")) != (1, 2):
        assert time.time() < deadline, (metric(m, "slabs"), metric(m, "directories"))
        time.sleep(0.2)
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload", "z"]
    expect_errno(errno.ENOENT, os.stat, m.path("x", "y", key + ".kvc"))


def test_tree_moved_behind_the_mount(ws):
    """Another host swaps a directory and its parent (a/b becomes b/a)
    while this mount's kernel still has a/b cached: a lookup through the
    stale path must not make the tree a cycle (the daemon then spun
    forever on the next mkdir below it), and the new shape shows once the
    cached entries expire."""
    root = ws.root()
    m = ws.mount(root)
    os.makedirs(m.path("a", "b"))
    os.stat(m.path("a", "b"))
    os.rename(os.path.join(root, "a", "b"), os.path.join(root, "b"))
    os.rename(os.path.join(root, "a"), os.path.join(root, "b", "a"))
    try:
        os.stat(m.path("a", "b", "a"))
    except OSError as e:
        assert e.errno in (errno.ENOENT, errno.ELOOP), e
    p = run(["timeout", "10", "mkdir", m.path("a", "b", "x")], check=False)
    assert p.returncode != 124, "mkdir below a moved tree hung"
    deadline = time.time() + 10
    while True:
        try:
            if sorted(os.listdir(m.mnt)) == [".kvcfs", "b", "payload"] and \
                    "a" in os.listdir(m.path("b")):
                break
        except OSError:
            pass
        assert time.time() < deadline, os.listdir(m.mnt)
        time.sleep(0.2)
    os.mkdir(m.path("b", "a", "y"))
    assert os.path.isdir(os.path.join(root, "b", "a", "y"))


def test_one_budget_over_all_directories(ws):
    """The budget counts every directory, and eviction takes the oldest
    slab wherever it is."""
    root = ws.root()
    m = ws.mount(root, options=["max_size=300000", "low_watermark=250000"])
    for d in ("a", "b", "c"):
        os.mkdir(m.path(d))
    names = []
    for i in range(6):
        d = "abc"[i % 3]
        key, data = slab(20 + i, payload_len=60_000, last_used=1_700_000_000 + i)
        with open(m.path(d, "in.part"), "wb") as f:
            f.write(data)
        os.rename(m.path(d, "in.part"), m.path(d, key + ".kvc"))
        names.append(os.path.join(d, key + ".kvc"))
    settle(m)
    present = [n for n in names if os.path.exists(os.path.join(root, n))]
    total = sum(os.path.getsize(os.path.join(root, n)) for n in present)
    assert total <= 300000, (present, total)
    # The oldest went first, across directories; the newest stays.
    assert names[-1] in present and names[0] not in present, present
    assert present == names[len(names) - len(present):], present
    assert metric(m, "evictions_total") == len(names) - len(present)


def test_concurrent_directory_churn(ws):
    """Writers each make, fill, rename and remove their own directories,
    while others list the tree and rename one shared directory back and
    forth: every publish lands where it was made, nothing is left, and
    the daemon's counts come back to the root alone."""
    root = ws.root()
    m = ws.mount(root, options=["rescan=1"])
    os.mkdir(m.path("shared"))
    errors = []
    stop = threading.Event()

    def writer(w):
        try:
            for r in range(6):
                d = m.path("w%d-%d" % (w, r))
                os.makedirs(os.path.join(d, "sub"))
                keys = []
                for i in range(4):
                    key, data = slab(1000 * w + 10 * r + i)
                    where = d if i % 2 else os.path.join(d, "sub")
                    with open(os.path.join(where, "in.part"), "wb") as f:
                        f.write(data)
                    os.rename(os.path.join(where, "in.part"), os.path.join(where, key + ".kvc"))
                    keys.append(os.path.relpath(os.path.join(where, key + ".kvc"), d))
                moved = d + "-moved"
                os.rename(d, moved)
                for k in keys:
                    with open(os.path.join(moved, k), "rb") as f:
                        assert f.read(4) == b"KVC\x01", k
                shutil.rmtree(moved)
        except Exception:  # noqa: BLE001 (reported below)
            errors.append(traceback.format_exc())

    # The lister and the flipper race the renames on purpose: a name gone
    # (ENOENT) or a directory the kernel could not move to where a lookup
    # found it (ESTALE, contract.md) is theirs to expect, never a writer's.
    expected = (errno.ENOENT, errno.ESTALE)

    def lister():
        try:
            while not stop.is_set():
                for top, dirs, files in os.walk(m.mnt):
                    if top == m.mnt:
                        dirs[:] = [d for d in dirs if d not in ("payload", ".kvcfs")]
        except OSError as e:
            if e.errno not in expected:
                errors.append(traceback.format_exc())

    def flipper():
        names = [m.path("shared"), m.path("shared2")]
        i = 0
        while not stop.is_set():
            try:
                os.rename(names[i % 2], names[(i + 1) % 2])
                i += 1
            except OSError as e:
                if e.errno not in expected:
                    errors.append(traceback.format_exc())
                    return

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    others = [threading.Thread(target=lister), threading.Thread(target=flipper)]
    for t in ts + others:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert not errors, errors
    assert len(os.listdir(root)) == 1, os.listdir(root)
    shutil.rmtree(os.path.join(m.mnt, os.listdir(root)[0]))
    assert os.listdir(root) == []
    deadline = time.time() + 10
    while (metric(m, "directories"), metric(m, "slabs")) != (1, 0):
        assert time.time() < deadline, (metric(m, "directories"), metric(m, "slabs"))
        time.sleep(0.2)


def test_listing_while_publishing_keeps_staging_names_apart(ws):
    """ls -l (readdirplus) racing publishes by rename of one staging name:
    a listed staging name must never be left cached pointing at the slab
    it was renamed to, or the writer's next create of that name opens the
    slab (and its close fails EBADMSG). In the root and in a directory."""
    m = ws.mount()
    os.mkdir(m.path("d"))
    for where in (m.mnt, m.path("d")):
        errors, stop = [], threading.Event()

        def lister():
            while not stop.is_set():
                for name in os.listdir(where):
                    try:
                        os.stat(os.path.join(where, name))
                    except FileNotFoundError:
                        pass
        t = threading.Thread(target=lister)
        t.start()
        try:
            for i in range(300):
                key, data = slab(5000 + i)
                with open(os.path.join(where, "in.part"), "wb") as f:
                    f.write(data)
                os.rename(os.path.join(where, "in.part"), os.path.join(where, key + ".kvc"))
        except OSError:
            errors.append(traceback.format_exc())
        finally:
            stop.set()
            t.join()
        assert not errors, errors


def test_budget_holds_with_one_slab_per_directory(ws):
    """Only the mount's last publish is pinned, over the whole tree: one
    slab in each of many directories cannot hold more than the budget."""
    root = ws.root()
    m = ws.mount(root, options=["max_size=200000", "low_watermark=150000"])
    for i in range(12):
        d = "d%d" % i
        os.mkdir(m.path(d))
        key, data = slab(60 + i, payload_len=40_000, last_used=1_700_000_000 + i)
        with open(m.path(d, "in.part"), "wb") as f:
            f.write(data)
        os.rename(m.path(d, "in.part"), m.path(d, key + ".kvc"))
    settle(m)
    sizes = [os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(root) for f in fs]
    assert sum(sizes) <= 200000, (len(sizes), sum(sizes))
    assert metric(m, "bytes") <= 200000
    # The newest (the last publish) is the one kept for sure.
    assert os.listdir(m.path("d11")) != []


def test_directories_removed_behind_the_mount_free_their_places(ws):
    """dirs_max counts directories that exist: ones removed in the backing
    root (another host) give their place back before a rescan does."""
    root = ws.root()
    m = ws.mount(root, options=["rescan=0", "dirs_max=10"])
    for n in range(25):
        d = "d%d" % n
        os.mkdir(os.path.join(root, d))
        assert os.path.isdir(m.path(d)), d
        os.rmdir(os.path.join(root, d))
    os.mkdir(m.path("mine"))
    assert metric(m, "directories") <= 10
    # Full, a directory made behind the mount is not shown: ENOENT, not
    # ENOSPC, for every way of reaching it; mkdir says ENOSPC.
    for n in range(8):
        os.mkdir(m.path("full%d" % n))
    os.mkdir(os.path.join(root, "behind"))
    expect_errno(errno.ENOENT, os.stat, m.path("behind"))
    expect_errno(errno.ENOENT, os.rmdir, m.path("behind"))
    expect_errno(errno.ENOSPC, os.mkdir, m.path("more"))


def test_listing_never_puts_a_moved_directory_back(ws):
    """A listing is a snapshot made at opendir; a directory moved since
    must not be handed to the kernel under its old name (paths through it
    would lead into the moved directory, and files land there)."""
    root = ws.root()
    m = ws.mount(root)
    os.makedirs(m.path("A", "x"))
    os.mkdir(m.path("B"))
    fd = os.open(m.path("A"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rename(m.path("A", "x"), m.path("B", "x"))
        assert os.listdir(fd) == ["x"]  # the snapshot
    finally:
        os.close(fd)
    assert not os.path.exists(m.path("A", "x"))
    expect_errno(errno.ENOENT, open, m.path("A", "x", "f"), "wb")
    assert os.listdir(os.path.join(root, "B", "x")) == []


def test_rescans_keep_directories_moved_under_their_walk(ws):
    """A directory moved while a rescan walks the tree (from a part not yet
    walked into one already walked) is not reached by that walk; it must
    not be forgotten: its slabs stay counted and its processes' working
    directories stay valid."""
    root = ws.root()
    m = ws.mount(root)
    os.makedirs(m.path("a", "x", "deep"))
    for i in range(20):
        os.mkdir(m.path("a", "f%d" % i))
    for i in range(3):
        key, data = slab(900 + i)
        with open(m.path("a", "x", "deep", "in.part"), "wb") as f:
            f.write(data)
        os.rename(m.path("a", "x", "deep", "in.part"), m.path("a", "x", "deep", key + ".kvc"))
    stop = threading.Event()

    def mover():
        while not stop.is_set():
            os.rename(m.path("a", "x"), m.path("y"))
            os.rename(m.path("y"), m.path("a", "x"))
    cwd = os.open(m.path("a", "x", "deep"), os.O_RDONLY | os.O_DIRECTORY)
    t = threading.Thread(target=mover)
    t.start()
    try:
        for _ in range(150):
            with open(m.path(".kvcfs", "rescan")) as f:
                f.read()
            assert metric(m, "slabs") == 3, metric(m, "slabs")
    finally:
        stop.set()
        t.join()
    try:
        assert len(os.listdir(cwd)) == 3, "an open directory of a moved tree went stale"
    finally:
        os.close(cwd)


def test_shell_redirection_is_no_refusal(ws):
    """cat slab > MNT/<key>.kvc: the shell closes its first descriptor
    after dup2, before cat writes: that empty close is not a refused
    publish (nor logged as one); the last close publishes."""
    m = ws.mount()
    os.mkdir(m.path("d"))
    key, data = slab(950)
    src = os.path.join(ws.dir, "slab.kvc")
    with open(src, "wb") as f:
        f.write(data)
    run(["sh", "-c", 'cat "$1" > "$2"', "sh", src, m.path("d", key + ".kvc")])
    with open(m.path("d", key + ".kvc"), "rb") as f:
        assert f.read()[72:] == data[72:]
    with open(m.path(".kvcfs", "refusals")) as f:
        assert f.read() == "", "a refusal was recorded"
    # An empty file under a key name is still refused at its close, and
    # recorded once its last descriptor is gone (its RELEASE).
    expect_errno(errno.EBADMSG, lambda p: open(p, "wb").close(), m.path("d", "ef" * 32 + ".kvc"))
    deadline = time.time() + 10
    while True:
        with open(m.path(".kvcfs", "refusals")) as f:
            if "ef" * 32 in f.read():
                break
        assert time.time() < deadline, "the empty file's refusal was never recorded"
        time.sleep(0.05)


def test_kvc_tools_know_directories(ws):
    """kvc build -o, kvc lookup and kvc stats on a directory of the mount."""
    m = ws.mount()
    os.makedirs(m.path("model-a", "node-1"))
    os.mkdir(m.path("model-b"))
    base = ["--fingerprint", "ab" * 32, "--quant", "q8_0", "--ctx", "cd" * 32]
    tokens = ",".join(str(t) for t in range(100, 116))
    run([KVC, "build"] + base + ["--tokens", tokens, "-o", m.path("model-a", "node-1") + "/"])
    key = run([KVC, "key"] + base + ["--tokens", tokens]).stdout.strip()
    assert os.listdir(m.path("model-a", "node-1")) == [key + ".kvc"]
    hit = run([KVC, "lookup"] + base + ["--tokens", tokens, m.path("model-a", "node-1")])
    assert hit.stdout.strip() == "16 " + key, hit.stdout
    miss = run([KVC, "lookup"] + base + ["--tokens", tokens, m.path("model-b")], check=False)
    assert miss.returncode == 1 and miss.stdout == "", (miss.returncode, miss.stdout)
    # stats from inside the tree: the mount's counters, and the
    # directory's own slabs.
    out = run([KVC, "stats", m.path("model-a", "node-1")]).stdout
    assert "kvcfs_slabs" in out and "kvcfs_directories" in out, out
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["directory_slabs"].strip() == "1", out
    assert int(lines["kvcfs_directories"].split()[0]) == 4, out
    out = run([KVC, "stats", m.path("model-b")]).stdout
    assert dict(line.split(None, 1) for line in out.splitlines())["directory_slabs"].strip() == "0"
    out = run([KVC, "stats", m.mnt]).stdout
    assert "directory_slabs" not in out, out


if __name__ == "__main__":
    main()
