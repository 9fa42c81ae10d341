#!/usr/bin/env python3
"""Unix permissions on a shared mount (-o allow_other), with real users made
for the test: who may list, read, publish, rename and remove, and that a
refusal changes nothing in the backing root; and a daemon that is not root.

The test runs as root (it creates users with useradd and removes them
whatever happens); each action runs as one of those users in a child process
(setpriv), which prints "OK" or the errno's name.
"""
import contextlib
import fcntl
import grp
import json
import os
import pwd
import shutil
import stat
import struct
import subprocess
import sys
import textwrap
import time

from harness import Mount, main, metric, mounted, verify_slabs, without_mutable_header

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "examples", "python"))
import kvcache  # noqa: E402

FP = bytes(range(32))
CTX = bytes(range(32, 64))
TAG = "kvcfs-t-%d" % os.getpid()


def slab(i):
    tokens = [i, i + 1, i + 2]
    data = kvcache.build_slab(FP, "q8_0", CTX, tokens, bytes([i & 0xFF]) * 3000,
                              created=1_700_000_000, last_used=1_700_000_000, hostname=b"t")
    return kvcache.cache_key(FP, "q8_0", CTX, tokens), data


@contextlib.contextmanager
def users(*names, group_members=()):
    """Makes a group TAG-g and users TAG-<name> (those in group_members also
    in the group); yields {name: (uid, gid)} and the group's gid; removes
    them all at the end, whatever happened."""
    made, group = [], TAG + "-g"
    try:
        retry(["groupadd", group])
        for n in names:
            user = "%s-%s" % (TAG, n)
            cmd = ["useradd", "-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin"]
            if n in group_members:
                cmd += ["-G", group]
            made.append(user)
            retry(cmd + [user])
        yield ({n: (pwd.getpwnam("%s-%s" % (TAG, n)).pw_uid,
                    pwd.getpwnam("%s-%s" % (TAG, n)).pw_gid) for n in names},
               grp.getgrnam(group).gr_gid)
    finally:
        problems = []
        for cmd in [["userdel", user] for user in made] + [["groupdel", group]]:
            try:
                retry(cmd)
            except AssertionError as e:
                problems.append(str(e))
        if problems:
            raise AssertionError("; ".join(problems))


def retry(cmd):
    """useradd and friends refuse while another program holds the lock of
    /etc/passwd: try again for a while, then say what is left."""
    for _ in range(50):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode == 0 or "does not exist" in p.stderr:
            return
        time.sleep(0.1)
    raise AssertionError("%s: %s" % (" ".join(cmd), p.stderr))


# What a user may try, in the child: each prints OK or the errno's name.
ACTIONS = textwrap.dedent("""
    import errno, json, os, sys
    op, args, data = sys.argv[1], json.loads(sys.argv[2]), sys.stdin.buffer.read()
    def write(path, flags):
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    def read(path):
        with open(path, "rb") as f:
            sys.stdout.write(f.read().hex() + " ")
    try:
        if op == "publish":      # cp to a staging name + mv to <key>.kvc
            write(args[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            os.rename(args[0], args[1])
        elif op == "publish_open":  # rename while still holding it open
            fd = os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.rename(args[0], args[1])
            finally:
                os.close(fd)
        elif op == "create":     # cp straight to a name
            write(args[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        elif op == "overwrite":  # cp onto an existing file
            write(args[0], os.O_WRONLY | os.O_TRUNC)
        elif op == "append":
            write(args[0], os.O_WRONLY | os.O_APPEND)
        elif op == "rename":
            os.rename(args[0], args[1])
        elif op == "rm":
            os.unlink(args[0])
        elif op == "read":
            read(args[0])
        elif op == "ls":
            sys.stdout.write(",".join(sorted(os.listdir(args[0]))) + " ")
        elif op == "setxattr":
            os.setxattr(args[0], "user.test", b"x")
        elif op == "chmod":
            os.chmod(args[0], 0o666)
        elif op == "chmod_to":
            os.chmod(args[0], args[1])
        elif op == "mkdir":
            os.mkdir(args[0], 0o755)
        elif op == "rmdir":
            os.rmdir(args[0])
        elif op == "truncate":
            os.truncate(args[0], 0)
        elif op == "hold":       # open a file args[1] times, report, close all
            held = []
            try:
                for i in range(args[1]):
                    held.append(os.open(args[0], os.O_RDONLY))
                sys.stdout.write("%d none " % len(held))
            except OSError as e:
                sys.stdout.write("%d %s " % (len(held), errno.errorcode[e.errno]))
            finally:
                for fd in held:
                    os.close(fd)
        elif op == "fill":       # empty staging files until refused
            for i in range(args[1]):
                try:
                    os.close(os.open("%s.%d" % (args[0], i), os.O_WRONLY | os.O_CREAT, 0o644))
                except OSError as e:
                    sys.stdout.write("%d %s " % (i, errno.errorcode[e.errno]))
                    break
            else:
                sys.stdout.write("%d none " % args[1])
        print("OK")
    except OSError as e:
        print(errno.errorcode[e.errno])
""")


def as_user(ids, op, *args, data=b""):
    """Runs one action as the user with these (uid, gid) and their groups;
    returns what it printed: [output..., "OK" | errno name]."""
    uid, gid = ids
    p = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--init-groups",
                        sys.executable, "-c", ACTIONS, op, json.dumps(list(args))],
                       input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s as uid %d: %s" % (op, uid, p.stderr.decode()))
    return p.stdout.decode().split()


def expect(ids, want, op, *args, data=b""):
    got = as_user(ids, op, *args, data=data)[-1]
    if got != want:
        raise AssertionError("%s %s as uid %d: %s, want %s" % (op, args, ids[0], got, want))


def same_slab(hex_read, data):
    """A slab as read equals the one written, but for the hit fields the
    open updated."""
    return without_mutable_header(bytes.fromhex(hex_read)) == without_mutable_header(data)


def backing_state(root):
    """Every name in the backing root, and each slab's bytes without the
    header fields every open updates."""
    state = {}
    for n in sorted(os.listdir(root)):
        with open(os.path.join(root, n), "rb") as f:
            data = f.read()
        state[n] = without_mutable_header(data) if n.endswith(".kvc") else data
    return state


def shared_workspace(ws, mode):
    """A backing root with this mode, in a workspace others can walk into."""
    os.chmod(ws.dir, 0o755)
    root = ws.root()
    os.chmod(root, mode)
    return root


def outsider_changes_nothing(ws, options):
    root = shared_workspace(ws, 0o755)  # root's, like /var/cache/kvc
    m = ws.mount(root, options=["allow_other"] + options)
    key, data = slab(1)
    other_key, other = slab(2)
    with open(m.path(key + ".kvc"), "wb") as f:
        f.write(data)
    with open(m.path("root.part"), "wb") as f:  # root's staging file, 0644
        f.write(b"root's bytes")
    st = os.stat(m.mnt)
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0, oct(st.st_mode)
    before = backing_state(root)
    with users("out") as (u, _):
        out = u["out"]
        # It may look and read...
        listed = as_user(out, "ls", m.mnt)
        assert listed[0] == ".kvcfs,%s.kvc,payload,root.part" % key, listed
        assert same_slab(as_user(out, "read", m.path(key + ".kvc"))[0], data)
        assert as_user(out, "read", m.path("payload", key))[-1] == "OK"
        assert b"kvcfs_hits_total" in bytes.fromhex(
            as_user(out, "read", m.path(".kvcfs", "metrics"))[0])
        assert bytes.fromhex(as_user(out, "read", m.path("root.part"))[0]) == b"root's bytes"
        # ...and change nothing.
        expect(out, "EACCES", "publish", m.path("x.part"), m.path(other_key + ".kvc"),
               data=other)
        expect(out, "EACCES", "create", m.path(other_key + ".kvc"), data=other)
        expect(out, "EACCES", "overwrite", m.path(key + ".kvc"), data=other)
        expect(out, "EACCES", "rename", m.path("root.part"), m.path(other_key + ".kvc"))
        expect(out, "EACCES", "rename", m.path("root.part"), m.path("mine.part"))
        expect(out, "EACCES", "rm", m.path(key + ".kvc"))
        expect(out, "EACCES", "rm", m.path("root.part"))
        expect(out, "EACCES", "overwrite", m.path("root.part"), data=b"theirs")
        expect(out, "EACCES", "append", m.path("root.part"), data=b"theirs")
        expect(out, "EACCES", "truncate", m.path("root.part"))
        expect(out, "EACCES", "setxattr", m.path(key + ".kvc"))
        expect(out, "EPERM", "chmod", m.path("root.part"))
        # The daemon does no work for it: a rescan is the mount owner's.
        rescans = metric(m, "rescans_total")
        expect(out, "EACCES", "read", m.path(".kvcfs", "rescan"))
        assert metric(m, "rescans_total") == rescans
    st = os.stat(m.path(".kvcfs", "rescan"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o400, os.geteuid()), st
    assert open(m.path(".kvcfs", "rescan")).read().startswith("slabs ")
    assert metric(m, "rescans_total") == rescans + 1
    assert backing_state(root) == before, "a refused request changed the backing root"
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", key + ".kvc", "payload", "root.part"]
    with open(m.path("root.part"), "rb") as f:
        assert f.read() == b"root's bytes"


def test_outsider_cannot_publish_rename_or_remove(ws):
    outsider_changes_nothing(ws, [])


def test_outsider_refused_by_kvcfs_itself(ws):
    """The same, with kvcfs's own checks instead of the kernel's."""
    outsider_changes_nothing(ws, ["no_default_permissions"])


def directories_have_their_own_permissions(ws, options):
    """Under a sticky shared root (like /tmp), each user's directory is
    theirs: its mode, owner and sticky bit decide who changes its names,
    as on a local filesystem."""
    root = shared_workspace(ws, 0o1777)
    m = ws.mount(root, options=["allow_other"] + options)
    k1, d1 = slab(11)
    k2, d2 = slab(12)
    with users("alice", "bob") as (u, _):
        alice, bob = u["alice"], u["bob"]
        a = m.path("alice")
        expect(alice, "OK", "mkdir", a)
        st = os.stat(a)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (alice[0], alice[1], 0o755), st
        bst = os.stat(os.path.join(root, "alice"))
        assert (bst.st_uid, stat.S_IMODE(bst.st_mode)) == (alice[0], 0o755), bst
        expect(alice, "OK", "publish", os.path.join(a, "x.part"), os.path.join(a, k1 + ".kvc"),
               data=d1)
        assert os.stat(os.path.join(root, "alice", k1 + ".kvc")).st_uid == alice[0]
        # Another user may read there, but change nothing.
        assert same_slab(as_user(bob, "read", os.path.join(a, k1 + ".kvc"))[0], d1)
        expect(bob, "EACCES", "publish", os.path.join(a, "y.part"), os.path.join(a, k2 + ".kvc"),
               data=d2)
        expect(bob, "EACCES", "mkdir", os.path.join(a, "sub"))
        expect(bob, "EACCES", "rm", os.path.join(a, k1 + ".kvc"))
        expect(bob, "EPERM", "chmod_to", a, 0o777)
        # The sticky root: bob may not remove or rename alice's directory.
        expect(bob, "OK", "mkdir", m.path("bob"))
        expect(bob, "EPERM", "rename", a, m.path("bob", "taken"))
        expect(alice, "EPERM", "rmdir", m.path("bob"))
        # Alice opens her directory to everyone, sticky: bob publishes
        # there, alice (its owner) may remove his slab, he may not hers.
        expect(alice, "OK", "chmod_to", a, 0o1777)
        assert stat.S_IMODE(os.stat(os.path.join(root, "alice")).st_mode) == 0o1777
        expect(bob, "OK", "publish", os.path.join(a, "y.part"), os.path.join(a, k2 + ".kvc"),
               data=d2)
        expect(bob, "EPERM", "rm", os.path.join(a, k1 + ".kvc"))
        # Closed to others: its slabs too, by their name or payload view.
        expect(alice, "OK", "chmod_to", a, 0o700)
        expect(bob, "EACCES", "read", os.path.join(a, k1 + ".kvc"))
        expect(bob, "EACCES", "read", m.path("payload", "alice", k1))
        expect(bob, "EACCES", "ls", m.path("payload", "alice"))
        assert as_user(alice, "read", m.path("payload", "alice", k1))[-1] == "OK"
        expect(alice, "OK", "chmod_to", a, 0o1777)
        expect(alice, "OK", "rm", os.path.join(a, k2 + ".kvc"))
        expect(alice, "OK", "rm", os.path.join(a, k1 + ".kvc"))
        expect(bob, "EPERM", "rmdir", a)
        expect(alice, "OK", "rmdir", a)
        # Moving a directory to another parent changes its "..": only
        # with write permission on it, even in a directory open to all.
        expect(bob, "OK", "chmod_to", m.path("bob"), 0o777)
        expect(alice, "OK", "mkdir", m.path("bob", "hers"))
        expect(bob, "OK", "mkdir", m.path("bob", "to"))
        expect(bob, "OK", "chmod_to", m.path("bob", "to"), 0o777)
        expect(bob, "EACCES", "rename", m.path("bob", "hers"), m.path("bob", "to", "moved"))
        expect(alice, "OK", "rename", m.path("bob", "hers"), m.path("bob", "to", "moved"))
        # A directory closed to others closes everything below it, also
        # while someone else keeps the kernel's entries warm.
        expect(alice, "OK", "mkdir", m.path("bob", "to", "moved", "c"))
        expect(alice, "OK", "publish", m.path("bob", "to", "moved", "c", "z.part"),
               m.path("bob", "to", "moved", "c", k1 + ".kvc"), data=d1)
        expect(alice, "OK", "chmod_to", m.path("bob", "to", "moved"), 0o700)
        os.stat(m.path("bob", "to", "moved", "c", k1 + ".kvc"))  # root warms the cache
        os.listdir(m.path("payload", "bob", "to", "moved", "c"))
        expect(bob, "EACCES", "read", m.path("bob", "to", "moved", "c", k1 + ".kvc"))
        expect(bob, "EACCES", "read", m.path("payload", "bob", "to", "moved", "c", k1))
        expect(bob, "EACCES", "ls", m.path("bob", "to", "moved", "c"))
        expect(bob, "EACCES", "ls", m.path("payload", "bob", "to", "moved", "c"))
        shutil.rmtree(m.path("bob"))
    assert os.listdir(root) == []


def test_directories_have_their_own_permissions(ws):
    directories_have_their_own_permissions(ws, [])


def test_directories_checked_by_kvcfs_itself(ws):
    directories_have_their_own_permissions(ws, ["no_default_permissions"])


def test_group_member_publishes(ws):
    with users("op", "out", group_members=("op",)) as (u, gid):
        root = shared_workspace(ws, 0o755)
        os.chown(root, 0, gid)
        os.chmod(root, 0o2775)
        m = ws.mount(root, options=["allow_other"])
        st = os.stat(m.mnt)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2775, 0, gid), st
        key, data = slab(3)
        expect(u["op"], "OK", "publish", m.path("in.part"), m.path(key + ".kvc"), data=data)
        assert verify_slabs(root) == [key + ".kvc"]
        # Root runs the daemon: the slab is its publisher's, in the group
        # of the set-group-ID root, in the backing root and in stat.
        real = os.stat(os.path.join(root, key + ".kvc"))
        assert (real.st_uid, real.st_gid) == (u["op"][0], gid), real
        shown = os.stat(m.path(key + ".kvc"))
        assert (shown.st_uid, shown.st_gid, stat.S_IMODE(shown.st_mode)) == \
            (u["op"][0], gid, 0o444), shown
        # The member may remove it; an outsider may not publish.
        other_key, other = slab(4)
        expect(u["out"], "EACCES", "publish", m.path("x.part"), m.path(other_key + ".kvc"),
               data=other)
        expect(u["op"], "OK", "rm", m.path(key + ".kvc"))
        assert not os.path.exists(os.path.join(root, key + ".kvc"))
        # The mount follows a chmod of the backing root (within the root's
        # one-second attribute timeout).
        os.chmod(root, 0o2755)
        time.sleep(1.2)
        assert stat.S_IMODE(os.stat(m.mnt).st_mode) == 0o2755
        expect(u["op"], "EACCES", "publish", m.path("in.part"), m.path(key + ".kvc"), data=data)
        assert verify_slabs(root) == []


def sticky(ws, options):
    with users("a", "b", group_members=("a", "b")) as (u, gid):
        root = shared_workspace(ws, 0o755)
        os.chown(root, 0, gid)
        os.chmod(root, 0o3775)
        m = ws.mount(root, options=["allow_other"] + options)
        expect(u["a"], "OK", "create", m.path("a.part"), data=b"a's bytes")
        st = os.stat(m.path("a.part"))
        assert (st.st_uid, st.st_gid) == (u["a"][0], gid), st
        before = backing_state(root)
        expect(u["b"], "EPERM", "rm", m.path("a.part"))
        expect(u["b"], "EPERM", "rename", m.path("a.part"), m.path("b.part"))
        expect(u["b"], "EACCES", "overwrite", m.path("a.part"), data=b"b's bytes")
        assert backing_state(root) == before
        # b's own files are b's to remove; a's are a's.
        expect(u["b"], "OK", "create", m.path("b.part"), data=b"b's bytes")
        expect(u["b"], "OK", "rm", m.path("b.part"))
        expect(u["a"], "OK", "rm", m.path("a.part"))
        assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"]


def test_publish_of_an_open_file_is_its_publishers(ws):
    """A rename while the writer still holds the file open publishes a
    copy (passthrough): the slab is still its publisher's, so in a sticky
    root they can remove it and publish the key again."""
    with users("op") as (u, _):
        root = shared_workspace(ws, 0o1777)
        m = ws.mount(root, options=["allow_other"])
        key, data = slab(5)
        op = u["op"]
        expect(op, "OK", "publish_open", m.path("held.part"), m.path(key + ".kvc"), data=data)
        st = os.stat(os.path.join(root, key + ".kvc"))
        assert (st.st_uid, st.st_gid) == op, (st.st_uid, st.st_gid, op)
        # Theirs, but not theirs to rewrite in place in the backing root.
        assert stat.S_IMODE(st.st_mode) == 0o444, oct(st.st_mode)
        expect(op, "EACCES", "overwrite", os.path.join(root, key + ".kvc"), data=b"x")
        expect(op, "OK", "rm", m.path(key + ".kvc"))
        expect(op, "OK", "publish", m.path("again.part"), m.path(key + ".kvc"), data=data)


def test_published_slab_is_read_only_for_its_publisher(ws):
    """A slab published by rename is chowned to its publisher (root
    daemon): mode 0444, so they cannot rewrite it in place in the backing
    root behind the mount's back. Hit counts still persist (root's)."""
    with users("pub") as (u, _):
        root = shared_workspace(ws, 0o1777)
        m = ws.mount(root, options=["allow_other"])
        key, data = slab(8)
        expect(u["pub"], "OK", "publish", m.path("p.part"), m.path(key + ".kvc"), data=data)
        real = os.path.join(root, key + ".kvc")
        st = os.stat(real)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (u["pub"][0], 0o444), st
        expect(u["pub"], "EACCES", "overwrite", real, data=b"x" * len(data))
        assert same_slab(as_user(u["pub"], "read", m.path(key + ".kvc"))[0], data)
        with open(real, "rb") as f:
            assert struct.unpack_from("<I", f.read(16), 12)[0] == 1  # the hit persisted


def test_each_user_sees_their_own_refusals(ws):
    """.kvcfs/refusals shows each reader the refusals of its own uid (the
    names and reasons of others' files are not theirs to read); root sees
    all."""
    root = shared_workspace(ws, 0o1777)
    m = ws.mount(root, options=["allow_other"])
    with users("ra", "rb") as (u, _):
        for who, i in (("ra", 10), ("rb", 11)):
            key, data = slab(i)
            bad = data[:-1] + bytes([data[-1] ^ 1])
            expect(u[who], "EBADMSG", "publish", m.path(who + ".part"), m.path(key + ".kvc"),
                   data=bad)
        for who in ("ra", "rb"):
            seen = bytes.fromhex(as_user(u[who], "read", m.path(".kvcfs", "refusals"))[0])
            lines = seen.decode().splitlines()
            assert len(lines) == 1 and "uid=%d name=%s.part" % (u[who][0], who) in lines[0], \
                (who, lines)
        with open(m.path(".kvcfs", "refusals")) as f:
            assert len(f.read().splitlines()) == 2


def test_open_slabs_bounded_per_user(ws):
    """Each open slab holds one of the daemon's descriptors: one user may
    hold opens_per_user of them (EMFILE beyond), and another user still
    reads, lists and publishes. (Two users holding 15,000 opens each left
    the daemon no descriptor for anyone.)"""
    root = shared_workspace(ws, 0o1777)
    m = ws.mount(root, options=["allow_other", "opens_per_user=30"])
    key, data = slab(12)
    with users("hog", "other") as (u, _):
        expect(u["other"], "OK", "publish", m.path("o.part"), m.path(key + ".kvc"), data=data)
        got = as_user(u["hog"], "hold", m.path(key + ".kvc"), 200)
        assert got[:2] == ["30", "EMFILE"], got
        got = as_user(u["hog"], "hold", m.path("payload", key), 200)
        assert got[:2] == ["30", "EMFILE"], got
        assert metric(m, "opens_refused_total") == 2
        assert same_slab(as_user(u["other"], "read", m.path(key + ".kvc"))[0], data)
        assert as_user(u["other"], "ls", m.mnt)[-1] == "OK"
        # All closed: the whole share is there again.
        got = as_user(u["hog"], "hold", m.path(key + ".kvc"), 30)
        assert got[:2] == ["30", "none"], got


def holder(ids, paths):
    """A process of that user holding paths open until its stdin closes."""
    code = ("import os, sys\nfds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]\n"
            "print('held', flush=True)\nsys.stdin.read()\n")
    p = subprocess.Popen(["setpriv", "--reuid=%d" % ids[0], "--regid=%d" % ids[1],
                          "--init-groups", sys.executable, "-c", code] + paths,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_shares_follow_who_keeps_a_file(ws):
    """Another user holding my staging files open once I removed them
    costs my share nothing (it cost me EDQUOT until they closed): a
    nameless staging file is charged to the handles that keep it, in
    their openers' shares. A refusal is its renamer's, not the file's
    owner's. Listings and .kvcfs/ files count as handles too."""
    root = shared_workspace(ws, 0o777)
    m = ws.mount(root, options=["allow_other", "staging_per_user=3", "opens_per_user=6"])
    with users("mine", "keeper") as (u, _):
        mine, keeper = u["mine"], u["keeper"]
        names = [m.path("f%d.part" % i) for i in range(3)]
        for n in names:
            expect(mine, "OK", "create", n, data=b"x")
        h = holder(keeper, names)
        try:
            for n in names:
                expect(mine, "OK", "rm", n)
            expect(mine, "OK", "create", m.path("again.part"), data=b"x")
            assert metric(m, "staging_files") == 1
            # keeper holds 3 handles: 3 more, then EMFILE.
            got = as_user(keeper, "hold", m.path(".kvcfs", "metrics"), 10)
            assert got[:2] == ["3", "EMFILE"], got
        finally:
            h.stdin.close()
            h.wait(timeout=30)
        key, data = slab(13)
        bad = data[:-1] + bytes([data[-1] ^ 1])
        expect(mine, "OK", "create", m.path("bad.part"), data=bad)
        expect(keeper, "EBADMSG", "rename", m.path("bad.part"), m.path(key + ".kvc"))
        seen = {}
        for who in ("mine", "keeper"):
            out = as_user(u[who], "read", m.path(".kvcfs", "refusals"))
            seen[who] = bytes.fromhex(out[0]) if len(out) == 2 else b""
        assert b"name=bad.part" in seen["keeper"] and b"name=bad.part" not in seen["mine"], seen


def test_staging_files_bounded_per_user(ws):
    """Each staging file holds one of the daemon's descriptors: one user
    may have only staging_per_user of them (EDQUOT beyond, for a named
    staging file and a <key>.kvc create alike), and another user can still
    create, publish, read and list meanwhile. Removing one gives its place
    back."""
    root = shared_workspace(ws, 0o1777)
    m = ws.mount(root, options=["allow_other", "staging_per_user=25"])
    with users("hog", "other") as (u, _):
        hog, other = u["hog"], u["other"]
        got = as_user(hog, "fill", m.path("hog.part"), 200)
        assert got[:2] == ["25", "EDQUOT"], got
        key, data = slab(7)
        expect(hog, "EDQUOT", "create", m.path(key + ".kvc"), data=data)
        assert metric(m, "staging_files") == 25
        assert metric(m, "staging_refused_total") >= 2
        expect(other, "OK", "publish", m.path("mine.part"), m.path(key + ".kvc"), data=data)
        assert same_slab(as_user(other, "read", m.path(key + ".kvc"))[0], data)
        listed = as_user(other, "ls", m.mnt)[0].split(",")
        assert len([n for n in listed if n.startswith("hog.part.")]) == 25, listed
        expect(hog, "OK", "rm", m.path("hog.part.3"))
        expect(hog, "OK", "create", m.path("hog.part.3"), data=b"again")
        expect(hog, "EDQUOT", "create", m.path("hog.part.x"), data=b"")
        for i in range(25):
            expect(hog, "OK", "rm", m.path("hog.part.%d" % i))
        assert metric(m, "staging_files") == 0, metric(m, "staging_files")
        got = as_user(hog, "fill", m.path("hog2.part"), 3)
        assert got[:2] == ["3", "none"], got


def test_sticky_bit_protects_staging_files(ws):
    sticky(ws, [])


def test_sticky_bit_without_default_permissions(ws):
    sticky(ws, ["no_default_permissions"])


class UserMount(Mount):
    """kvcfs started by a user (fusermount3 mounts it)."""

    def __init__(self, ids, *a, **kw):
        super().__init__(*a, **kw)
        self.ids = ids

    def launcher(self):
        uid, gid = self.ids
        return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--init-groups"]

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        os.chown(self.mnt, *self.ids)
        return super().start()

    def stop(self):
        if self.proc is not None and self.proc.poll() is not None and not mounted(self.mnt):
            self.proc = None  # never mounted: start() said why
            self.err.close()
            return
        super().stop()


@contextlib.contextmanager
def dev_fuse_open_to_all():
    """/dev/fuse may be 0600 (root only) on a CI machine: open it to users
    for the test, and put its mode back whatever happens."""
    # One test run at a time changes it (and /etc/fuse.conf): a second one
    # would otherwise save the first one's 0666 and leave it behind.
    with open("/run/kvcfs-test-permissions.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
        try:
            os.chmod("/dev/fuse", mode | 0o666)
            yield
        finally:
            os.chmod("/dev/fuse", mode)


def test_non_root_daemon(ws):
    with users("svc") as (u, _), dev_fuse_open_to_all():
        svc = u["svc"]
        root = shared_workspace(ws, 0o755)
        os.chown(root, *svc)
        m = UserMount(svc, root, os.path.join(ws.dir, "mnt"))
        try:
            m.start()
            non_root_daemon_serves(m, svc, root)
        finally:
            m.stop()  # before its user goes


def non_root_daemon_serves(m, svc, root):
    assert "publisher ownership: off" in m.stderr(), m.stderr()
    assert "allow_other: off" in m.stderr(), m.stderr()
    with open("/proc/self/mounts") as f:
        entry = [line.split() for line in f if line.split()[1] == m.mnt]
    assert entry and "user_id=%d" % svc[0] in entry[0][3], entry
    key, data = slab(5)
    expect(svc, "OK", "publish", m.path("in.part"), m.path(key + ".kvc"), data=data)
    assert same_slab(as_user(svc, "read", m.path(key + ".kvc"))[0], data)
    assert as_user(svc, "read", m.path("payload", key))[-1] == "OK"
    assert as_user(svc, "ls", m.mnt)[0] == ".kvcfs,%s.kvc,payload" % key
    assert verify_slabs(root) == [key + ".kvc"]
    assert os.stat(os.path.join(root, key + ".kvc")).st_uid == svc[0]
    expect(svc, "OK", "rm", m.path(key + ".kvc"))
    assert verify_slabs(root) == []
    # The user unmounts it, as fusermount3 lets the one who mounted.
    subprocess.run(["setpriv", "--reuid=%d" % svc[0], "--regid=%d" % svc[1],
                    "--init-groups", "fusermount3", "-u", m.mnt], check=True,
                   capture_output=True)
    assert not mounted(m.mnt)


@contextlib.contextmanager
def fuse_conf_allowing_other(allow):
    """/etc/fuse.conf with or without user_allow_other for the test, put
    back as it was whatever happens."""
    path = "/etc/fuse.conf"
    with open(path, "rb") as f:
        saved = f.read()
    lines = [line for line in saved.decode().splitlines()
             if line.strip() != "user_allow_other"]
    try:
        with open(path, "w") as f:
            f.write("\n".join(lines + (["user_allow_other"] if allow else [])) + "\n")
        yield
    finally:
        with open(path, "wb") as f:
            f.write(saved)


def unit_options():
    """The -o options of examples/systemd/kvcfs.service's ExecStart, and its
    User= (which must not be root)."""
    unit = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "systemd", "kvcfs.service")
    with open(unit) as f:
        fields = dict(line.strip().split("=", 1) for line in f
                      if "=" in line and not line.startswith("#"))
    argv = fields["ExecStart"].split()
    return argv[argv.index("-o") + 1].split(","), fields["User"]


def test_recommended_set_up(ws):
    """docs/guide.md's "Several users": a non-root daemon (as the systemd
    example runs it) on a 2775 backing root of a group, with allow_other."""
    options, unit_user = unit_options()
    assert unit_user != "root" and "allow_other" in options, (unit_user, options)
    with users("svc", "srv", "out", group_members=("svc", "srv")) as (u, gid), \
            dev_fuse_open_to_all():
        root = shared_workspace(ws, 0o755)
        os.chown(root, u["svc"][0], gid)
        os.chmod(root, 0o2775)
        # Without user_allow_other, fusermount3 refuses, and kvcfs said why.
        with fuse_conf_allowing_other(False):
            m = UserMount(u["svc"], root, os.path.join(ws.dir, "refused"), options)
            try:
                m.start()
            except AssertionError as e:
                refusal = str(e)
            else:
                refusal = None
            finally:
                m.stop()
            assert refusal is not None and "exited 1 before mounting" in refusal, refusal
            assert "kvcfs: allow_other: off: /etc/fuse.conf has no user_allow_other" in refusal
        with fuse_conf_allowing_other(True):
            m = UserMount(u["svc"], root, os.path.join(ws.dir, "mnt"), options)
            try:
                m.start()
                assert "publisher ownership: off" in m.stderr()
                assert "allow_other: off" not in m.stderr(), m.stderr()
                key, data = slab(6)
                # The model server's account publishes; an outsider reads
                # but cannot remove.
                expect(u["srv"], "OK", "publish", m.path("in.part"), m.path(key + ".kvc"),
                       data=data)
                assert same_slab(as_user(u["out"], "read", m.path(key + ".kvc"))[0], data)
                expect(u["out"], "EACCES", "rm", m.path(key + ".kvc"))
                real = os.stat(os.path.join(root, key + ".kvc"))
                assert (real.st_uid, real.st_gid) == (u["svc"][0], gid), real
                assert verify_slabs(root) == [key + ".kvc"]
            finally:
                m.stop()


if __name__ == "__main__":
    main()
