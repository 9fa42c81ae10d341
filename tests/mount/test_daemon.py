#!/usr/bin/env python3
"""kvcfs as a program: its options, its refusals, and what it does at start."""
import ctypes
import errno
import os
import signal
import socket
import subprocess
import time

from harness import (KVCFS, expect_errno, main, mounted, payload_of, valid_vectors, vector_bytes,
                     vectors)


def kvcfs(*args, timeout=20):
    return subprocess.run([KVCFS, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(p):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode != 0, "exit status %d" % p.returncode
    assert len(lines) >= 1, "no message"
    return lines[0]


def test_help_and_version(ws):
    p = kvcfs("--help")
    assert p.returncode == 0 and "BACKING_ROOT MOUNTPOINT" in p.stdout, p.stdout
    for opt in ("max_size", "host_id", "sweep_grace", "threads", "ro"):
        assert opt in p.stdout, opt
    p = kvcfs("--version")
    assert p.returncode == 0 and p.stdout.startswith("kvcfs "), p.stdout


def test_bad_invocations(ws):
    root, mnt = ws.root(), ws.root("mnt")
    line = one_line_error(kvcfs("-o", "no_such_option", root, mnt))
    assert "no_such_option" in line, line
    line = one_line_error(kvcfs("-o", "max_size=12Q", root, mnt))
    assert "max_size" in line, line
    # A number must parse whole: 1.5 seconds is not taken as 1, 8x not as 8.
    for bad in ("sweep_grace=1.5", "threads=8x", "rescan=-1", "entry_timeout=ten",
                "hit_credit=", "recheck_delay=99999999999", "threads=0"):
        p = kvcfs("-o", bad, root, mnt)
        if mounted(mnt):  # taken: leave nothing mounted behind the failure
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            raise AssertionError("-o %s was taken and mounted" % bad)
        line = one_line_error(p)
        assert p.returncode == 1 and bad.split("=")[0] in line, (bad, line)
    line = one_line_error(kvcfs(os.path.join(ws.dir, "missing"), mnt))
    assert "missing" in line and "No such file" in line, line
    afile = os.path.join(ws.dir, "afile")
    open(afile, "w").close()
    line = one_line_error(kvcfs(afile, mnt))
    assert "afile" in line, line
    line = one_line_error(kvcfs(root))
    assert "usage" in line, line
    line = one_line_error(kvcfs(root, mnt, "extra"))
    assert "extra" in line, line
    assert not os.path.ismount(mnt)


def test_unwritable_backing_root(ws):
    if os.geteuid() != 0:
        return  # needs a read-only tmpfs; a root-only check
    ro = ws.root("rofs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro], check=True)
    try:
        line = one_line_error(kvcfs(ro, ws.root("mnt")))
        assert "not writable" in line, line
        m = ws.mount(ro, name="romnt", options=["ro"])  # fine when asked read-only
        assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"]
        m.stop()
    finally:
        subprocess.run(["umount", ro], check=True)


def test_mountpoint_in_use(ws):
    m = ws.mount()
    line = one_line_error(kvcfs(ws.root("other"), m.mnt))
    assert "already in use" in line, line
    assert os.path.ismount(m.mnt)
    assert sorted(os.listdir(m.mnt)) == [".kvcfs", "payload"], "the first mount still serves"


def test_max_size_accepted(ws):
    m = ws.mount(options=["max_size=64M"])
    text = open(m.path(".kvcfs", "metrics")).read()
    assert "kvcfs_budget_bytes 67108864\n" in text, text


def test_size_suffixes_one_rule(ws):
    """K, M, G, T are powers of 1024 in any case, alone or with B, i or
    iB; anything else is one line naming the forms."""
    root, mnt = ws.root(), ws.root("mnt")
    for text in ("3g", "3G", "3gb", "3GB", "3Gi", "3GiB", "3gib", "3072M", "3145728k"):
        m = ws.mount(root, "m-" + text, options=["max_size=" + text])
        assert "kvcfs_budget_bytes %d\n" % (3 << 30) in open(m.path(".kvcfs", "metrics")).read()
        m.stop()
    for text in ("3 G", "3GG", "3Gx", "G", "3.5G", "-3G", "3iB"):
        p = kvcfs("-o", "max_size=" + text, root, mnt)
        line = one_line_error(p)
        assert p.returncode == 1 and "max_size" in line and "100GiB" in line, (text, line)
        assert not os.path.ismount(mnt)


def test_mountpoint_must_be_a_directory(ws):
    """A regular file as mountpoint: one line, exit 1, nothing mounted (the
    kernel would mount on it, and every stat would then be EIO)."""
    root = ws.root()
    afile = os.path.join(ws.dir, "a-file")
    open(afile, "w").close()
    p = kvcfs(root, afile)
    line = one_line_error(p)
    assert p.returncode == 1 and "not a directory" in line, line
    assert not mounted(afile)
    assert len([l for l in p.stderr.splitlines() if l.strip()]) == 1, p.stderr


def test_backing_root_and_mountpoint_apart(ws):
    root = ws.root()
    inner = os.path.join(root, "inner")
    os.mkdir(inner)
    for r, mnt in ((root, root), (root, inner)):
        p = kvcfs(r, mnt)
        line = one_line_error(p)
        assert p.returncode == 1 and "must be apart" in line, line
        assert not mounted(mnt)


def test_non_empty_mountpoint_is_warned_about(ws):
    root, mnt = ws.root(), ws.root("full")
    open(os.path.join(mnt, "hidden-file"), "w").close()
    m = ws.mount(root, "full")
    assert "mountpoint %s is not empty" % mnt in m.stderr(), m.stderr()
    m.stop()
    assert os.path.exists(os.path.join(mnt, "hidden-file"))


def test_mount_table_names_the_absolute_backing_root(ws):
    """A relative backing root is recorded resolved: `mount` from any
    directory shows where the slabs are."""
    root = ws.root("rel-root")
    mnt = ws.root("rel-mnt")
    p = subprocess.Popen([KVCFS, "-f", os.path.basename(root), mnt], cwd=os.path.dirname(root),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        while not mounted(mnt):
            assert p.poll() is None and time.time() < deadline, "did not mount"
            time.sleep(0.02)
        with open("/proc/self/mounts") as f:
            line = next(l for l in f if l.split()[1] == mnt)
        assert line.split()[0] == root, line
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        p.wait(timeout=30)


def test_startup_sweeps_and_indexes(ws):
    root = ws.root()
    good = [v for v in vectors() if v["valid"]][:3]
    for e in good[:2]:
        with open(os.path.join(root, e["key"] + ".kvc"), "wb") as f:
            f.write(vector_bytes(e))
    # a valid slab copied in under a wrong name is re-published
    with open(os.path.join(root, "copied.kvc"), "wb") as f:
        f.write(vector_bytes(good[2]))
    # a corrupt slab (prefix parse fails) is removed
    bad = next(v for v in vectors() if v["kind"] == "truncated_trailer")
    with open(os.path.join(root, bad["key"] + ".kvc"), "wb") as f:
        f.write(vector_bytes(bad))
    # a newer format version is left alone and not served
    v2 = next(v for v in vectors() if v["kind"] == "version_2")
    with open(os.path.join(root, v2["key"] + ".kvc"), "wb") as f:
        f.write(vector_bytes(v2))
    # temps: of this host and a dead process (removed), of another host (kept)
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = "%064x.kvc.testhost.%d.0.tmp" % (7, dead.pid)  # the old form, a label of ours
    theirs = "%064x.kvc.otherhost.1.0.tmp" % 7
    for n in (mine, theirs):
        open(os.path.join(root, n), "w").close()
    m = ws.mount(root, options=["host_id=testhost"])
    names = set(os.listdir(root))
    assert mine not in names and theirs in names, names
    assert "copied.kvc" not in names and good[2]["key"] + ".kvc" in names, names
    assert bad["key"] + ".kvc" not in names, names
    assert v2["key"] + ".kvc" in names, names
    for e in good:
        with open(m.path("payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(vector_bytes(e))
    metrics = open(m.path(".kvcfs", "metrics")).read()
    assert "kvcfs_slabs 3\n" in metrics, metrics


def all_threads_stopped(pid):
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                return False
    return True


def test_releases_lost_at_unmount_are_done_at_exit(ws):
    """close(2) returns before its RELEASE reaches the daemon, and the kernel
    drops RELEASEs still queued when the mount goes (CI: LeakSanitizer found
    the handle of a file closed right before the unmount). Made certain
    here: the daemon is stopped while the last references go, the mount is
    unmounted meanwhile. Whatever was open is released at exit: a refused
    cp onto a slab leaves no temp in the backing root, and nothing leaks
    (sanitized builds)."""
    m = ws.mount()
    e = valid_vectors()[0]
    data = vector_bytes(e)
    name = m.path(e["key"] + ".kvc")
    with open(m.path("in.part"), "wb") as f:
        f.write(data)
    os.rename(m.path("in.part"), name)
    writer = os.open(name, os.O_WRONLY | os.O_TRUNC)  # cp of garbage onto the slab
    os.write(writer, b"not a slab" * 100)
    directory = os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY)
    # Descriptors in flight in a socket are references without a
    # descriptor: dropping them sends RELEASE without a FLUSH first (a
    # FLUSH would wait for the stopped daemon).
    a, b = socket.socketpair(socket.AF_UNIX)
    socket.send_fds(a, [b"x"], [writer, directory])
    # The cp's close: refused, but not for good (a dup of the descriptor
    # may write on): the temp stays until the RELEASE.
    expect_errno(errno.EBADMSG, os.close, writer)
    os.close(directory)
    assert len(os.listdir(m.root)) == 2, os.listdir(m.root)
    os.kill(m.proc.pid, signal.SIGSTOP)
    try:
        while not all_threads_stopped(m.proc.pid):
            time.sleep(0.001)
        a.close()
        b.close()  # the last references: two RELEASEs queued
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.umount2(m.mnt.encode(), 0) == 0, os.strerror(ctypes.get_errno())
    finally:
        os.kill(m.proc.pid, signal.SIGCONT)
    assert not mounted(m.mnt)
    m.stop()  # exits 0, and no sanitizer report
    assert os.listdir(m.root) == [e["key"] + ".kvc"], os.listdir(m.root)


def test_stopped_by_a_signal_with_files_open_exits_0(ws):
    """SIGTERM (systemctl stop) or SIGINT with files open in every state:
    the daemon unmounts, releases them, removes their temps and exits 0
    (libfuse reports the signal as the loop's result: it exited 1, and the
    service looked failed after every stop)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        m = ws.mount(name="mnt%d" % sig)
        e = valid_vectors()[0]
        data = vector_bytes(e)
        name = m.path(e["key"] + ".kvc")
        with open(m.path("in.part"), "wb") as f:
            f.write(data)
        os.rename(m.path("in.part"), name)
        fds = [os.open(name, os.O_RDONLY)]                                  # reader
        fds.append(os.open(m.path("named.part"), os.O_RDWR | os.O_CREAT))  # staging writer
        os.write(fds[-1], data[:50])
        fds.append(os.open(m.path("ab" * 32 + ".kvc"), os.O_WRONLY | os.O_CREAT))  # in flight
        os.write(fds[-1], b"not a slab")
        fds.append(os.open(m.mnt, os.O_RDONLY | os.O_DIRECTORY))
        os.kill(m.proc.pid, sig)
        code = m.proc.wait(timeout=20)
        for fd in fds:
            try:
                os.close(fd)
            except OSError as err:
                assert err.errno == errno.ENOTCONN, err
        m.err.close()
        m.proc = None
        assert code == 0, "kvcfs exited %d after signal %d: %s" % (code, sig, m.stderr())
        assert not mounted(m.mnt)
        assert os.listdir(m.root) == [e["key"] + ".kvc"], os.listdir(m.root)
        m.check_stderr()


if __name__ == "__main__":
    main()
