"""The one harness of the tests that mount kvcfs (tests/mount, tests/gluster):
mounting kvcfs for real and unmounting it whatever happens, the helpers the
test files share, and main(), which runs a file's test_* functions.

Each test gets a fresh backing root and mountpoint under a temporary
directory. The daemon runs in the foreground (-f) as a child; its stderr
goes to a file that is checked after unmount: a sanitizer report or an
unexpected warning fails the test.
"""
import errno
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
# The examples' standard-library client, which the tests use to build and
# save slabs: test files take it from here.
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
import kvcache  # noqa: E402

EXAMPLES_CLIENT = kvcache  # re-exported: test files import kvcache from here

KVCFS = os.environ.get("KVCFS_BIN")
KVC = os.environ.get("KVC_BIN")
VECTORS = os.environ.get("KVC_VECTORS")
SKIP = 77

BAD_STDERR = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error|"
                        r"UndefinedBehavior|"
                        r"GLib-CRITICAL|GLib-WARNING|fuse: |kvcfs: .*(failed|error)",
                        re.IGNORECASE)
# libfuse's perror when a read of /dev/fuse fails ECONNABORTED: an ordinary
# unmount gives it when a read takes a request off the kernel's queue at the
# moment the unmount shuts the connection (fs/fuse/dev.c, fuse_dev_do_read).
# kvcfs then stops as after any unmount (fs/main.c); an abort the harness
# makes of a hung mount is reported on its own.
UNMOUNT_RACE = re.compile(r"^fuse: reading device: Software caused connection abort$")


def fuse_usable():
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return "/dev/fuse: %s" % e.strerror
    return None


def mounted(path):
    """Is path a mount point? (os.path.ismount cannot tell when the mount
    is a user's without allow_other: root may not stat it.)"""
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


FUSECTL = "/sys/fs/fuse/connections"


def fuse_connection(path):
    """The name of the FUSE connection of the mount at path in fusectl
    (/sys/fs/fuse/connections/<name>): its device number as the kernel
    writes it, major << 20 | minor. Read from /proc/self/mountinfo, as
    stat() would wait on the daemon. None if nothing is mounted there."""
    conn = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                major, minor = (int(x) for x in fields[2].split(":"))
                conn = (major << 20) | minor  # the last one: the mount on top
    return conn


def fusermount(*args):
    """fusermount3's exit status, or None if it did not return in 10 s."""
    try:
        return subprocess.run(["fusermount3"] + list(args), capture_output=True,
                              timeout=10).returncode
    except subprocess.TimeoutExpired:
        return None


class Mount:
    def __init__(self, root, mnt, options=(), allowed_stderr=(), flags=()):
        self.root, self.mnt = root, mnt
        self.options = list(options)
        # KVCFS_TEST_OPTIONS (e.g. passthrough=off): the suite runs the
        # data-path tests again with these, unless a test chose itself.
        for o in filter(None, os.environ.get("KVCFS_TEST_OPTIONS", "").split(",")):
            if not any(x.split("=")[0] == o.split("=")[0] for x in self.options):
                self.options.append(o)
        # KVCFS_TEST_FLAGS (e.g. -s): more of the daemon's command line,
        # before the -o options; the suite runs the concurrent tests again
        # with the daemon single-threaded.
        self.flags = list(flags)
        for f in shlex.split(os.environ.get("KVCFS_TEST_FLAGS", "")):
            if f not in self.flags:
                self.flags.append(f)
        self.allowed = [re.compile(a) for a in allowed_stderr]
        self.proc = None
        self.conn = None
        self.stderr_path = mnt.rstrip("/") + ".stderr"

    def launcher(self):
        """What starts the daemon: nothing but kvcfs itself here; a
        subclass runs it as another user (setpriv)."""
        return []

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        args = self.launcher() + [KVCFS, "-f"] + self.flags
        for o in self.options:
            args += ["-o", o]
        args += [self.root, self.mnt]
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.time() + 20
        while not mounted(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError("kvcfs exited %d before mounting: %s"
                                     % (self.proc.returncode, self.stderr()))
            if time.time() > deadline:
                raise AssertionError("kvcfs did not mount within 20 s")
            time.sleep(0.02)
        self.conn = fuse_connection(self.mnt)
        return self

    def unmount(self, patience=10):
        """fusermount3 -u. A test that failed may have just killed its
        clients: their open files keep the mount busy for a moment. Then
        lazily, as the last resort: the daemon exits once they are gone.
        None of it waits on the daemon: it returns on a hung mount too."""
        deadline = time.time() + patience
        while mounted(self.mnt):
            if fusermount("-u", self.mnt) == 0:
                break
            if time.time() > deadline:
                fusermount("-u", "-z", self.mnt)
                break
            time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        self.unmount()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            how = self.force_stop()
            raise AssertionError("kvcfs did not exit after unmount; " + how)
        finally:
            self.err.close()
        code = self.proc.returncode
        self.proc = None
        if code != 0:
            raise AssertionError("kvcfs exited %d: %s" % (code, self.stderr()))
        self.check_stderr()

    def force_stop(self):
        """Ends a daemon that does not exit, and its mount; says how. A
        daemon stuck in the kernel (a request thread waiting for a lock
        that a request queued to it holds: a deadlock) dies neither of an
        unmount nor of SIGKILL: then its FUSE connection is aborted, which
        fails every request it has not answered and lets it go."""
        how = "killed it"
        self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stuck = self.kernel_stacks()
            if not self.abort():
                raise AssertionError("kvcfs (pid %d) is stuck in the kernel and its FUSE "
                                     "connection could not be aborted: %s" % (self.proc.pid, stuck))
            how = "it was stuck in the kernel (%s): aborted its FUSE connection" % stuck
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("kvcfs (pid %d) still runs after its connection was "
                                     "aborted" % self.proc.pid)
        self.proc = None
        self.unmount(patience=5)
        return how

    def abort(self):
        """Aborts the mount's FUSE connection, as `echo 1 >
        /sys/fs/fuse/connections/<N>/abort` does: every request to the
        daemon fails (ECONNABORTED, ENOTCONN after), the daemon's reads
        fail and it exits, leaving the mount to unmount(). The way out of
        a deadlocked mount. If fusectl is not mounted, it is mounted for
        the moment in a mount namespace of its own. Only while the daemon
        runs (its connection, so the name, is still this mount's). Returns
        whether the connection was aborted."""
        if self.conn is None or self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with open(os.path.join(FUSECTL, str(self.conn), "abort"), "w") as f:
                f.write("1")
            return True
        except OSError:
            pass
        try:
            p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                'mount -t fusectl fusectl "$1" && echo 1 > "$1/$2/abort"',
                                "sh", FUSECTL, str(self.conn)], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return p.returncode == 0

    def kernel_stacks(self):
        """Where the daemon's threads wait in the kernel: each thread's
        innermost frame from /proc/<pid>/task/<tid>/stack (wchan where
        that cannot be read), counted, e.g. "1 in fuse_reverse_inval_entry,
        2 in futex_do_wait"."""
        where = {}
        task = "/proc/%d/task" % self.proc.pid
        try:
            tids = os.listdir(task)
        except OSError:
            return "no threads"
        for tid in tids:
            frame = "?"
            try:
                with open(os.path.join(task, tid, "stack")) as f:
                    first = f.readline().split()
                if len(first) > 1:
                    frame = first[1].split("+")[0]
            except OSError:
                try:
                    with open(os.path.join(task, tid, "wchan")) as f:
                        frame = f.read().strip() or "?"
                except OSError:
                    pass
            where[frame] = where.get(frame, 0) + 1
        return ", ".join("%d in %s" % (n, f) for f, n in sorted(where.items()))

    def kill(self):
        """SIGKILL, as a crash would; the mount is then torn down lazily."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.err.close()
        self.proc = None
        fusermount("-u", "-z", self.mnt)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_stderr(self):
        for line in self.stderr().splitlines():
            if UNMOUNT_RACE.search(line):
                continue
            if BAD_STDERR.search(line) and not any(a.search(line) for a in self.allowed):
                raise AssertionError("kvcfs stderr: " + line)

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)


def reap(procs, mount=None, patience=10):
    """Kills client processes and waits for them, so that none still holds
    a file of the mount when the test unmounts it. A client whose request
    the daemon has read but never answers cannot die, not even of SIGKILL
    (the kernel waits for the answer): if some are left after patience
    seconds, the mount is hung, and its FUSE connection is aborted, which
    ends their requests. Returns None, or what it had to do."""
    for q in procs:
        if q.poll() is None:
            q.kill()
    deadline = time.time() + patience
    stuck = []
    for q in procs:
        try:
            q.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            stuck.append(q)
    if not stuck:
        return None
    note = "%d clients would not die, the mount is hung" % len(stuck)
    if mount is not None and mount.proc is not None:
        note += " (kvcfs threads: %s)" % mount.kernel_stacks()
    if mount is None or not mount.abort():
        raise AssertionError(note + "; its FUSE connection could not be aborted")
    for q in stuck:
        q.wait(timeout=30)
    return note + ": aborted its FUSE connection"


class Workspace:
    """A temporary directory holding backing roots and mountpoints."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kvcfs-test-")
        self.mounts = []

    def root(self, name="root"):
        p = os.path.join(self.dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def mount(self, root=None, name="mnt", options=(), allowed_stderr=(), flags=()):
        m = Mount(root or self.root(), os.path.join(self.dir, name), options, allowed_stderr,
                  flags)
        self.mounts.append(m)
        return m.start()

    def close(self):
        problems = []
        for m in self.mounts:
            try:
                m.stop()
            except AssertionError as e:
                problems.append(str(e))
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))


def vectors():
    with open(os.path.join(VECTORS, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)["entries"]


def valid_vectors():
    return [v for v in vectors() if v["valid"]]


def vector_bytes(entry):
    with open(os.path.join(VECTORS, entry["file"]), "rb") as f:
        return f.read()


def payload_of(data):
    offset = struct.unpack_from("<Q", data, 48)[0]
    return data[offset:]


def without_mutable_header(data):
    """The bytes of a slab except hit_count (12..15) and last_used (32..39),
    which every open updates in place."""
    return data[:12] + data[16:32] + data[40:]


def expect_errno(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except OSError as e:
        if e.errno != code:
            raise AssertionError("%s: errno %s, want %s" % (
                fn.__name__, errno.errorcode.get(e.errno), errno.errorcode[code]))
        return e
    raise AssertionError("%s%r succeeded, want %s" % (fn.__name__, args, errno.errorcode[code]))


def run(cmd, check=True, **kw):
    """Runs cmd capturing its output; with check, a non-zero exit fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def settle(m, timeout=30):
    """Wait until the daemon's background worker has done what was asked
    of it (eviction after a publish, a rescan): a publish that takes the
    cache over its budget returns before the worker evicts."""
    deadline = time.monotonic() + timeout
    while metric(m, "maintenance_pending") != 0:
        assert time.monotonic() < deadline, "the maintenance worker did not finish"
        time.sleep(0.005)


def metric(m, name):
    """The value of kvcfs_<name> in the mount's .kvcfs/metrics: an int for
    counters and gauges, a float for the summaries' sums."""
    with open(m.path(".kvcfs", "metrics")) as f:
        for line in f:
            if line.startswith("kvcfs_" + name + " "):
                text = line.split()[1]
                try:
                    return int(text)
                except ValueError:
                    return float(text)
    raise AssertionError("no metric kvcfs_" + name)


def leftovers(root, wait=2.0):
    """Everything in the backing root that is not a published slab, once it
    settles. The kernel sends a file's RELEASE right after its last close()
    returns, not before, and a temp of a file closed just now may go only
    then: allow it a moment to arrive."""
    deadline = time.time() + wait
    while True:
        left = sorted(n for n in os.listdir(root) if not n.endswith(".kvc"))
        if not left or time.time() > deadline:
            return left
        time.sleep(0.01)


def verify_slabs(root):
    """`kvc verify` on every *.kvc in a backing root (fails the test if one
    does not verify); returns their names, sorted."""
    names = sorted(n for n in os.listdir(root) if n.endswith(".kvc"))
    if names:
        run([KVC, "verify"] + [os.path.join(root, n) for n in names])
    return names


def drop_caches(what=3):
    """Empties the kernel's caches (1: the page cache; 3: also dentries and
    inodes), so the next read comes from the disk (or the network
    filesystem) again. Needs root."""
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("%d\n" % what)


def collected_tests():
    """The test_* functions of the running script, in the order it defines
    them."""
    module = sys.modules["__main__"]
    return [f for name, f in vars(module).items()
            if name.startswith("test_") and callable(f)
            and getattr(f, "__module__", None) == module.__name__]


def main(tests=None):
    """Runs the script's test_* functions (each takes a Workspace), or the
    ones named on the command line; SKIP without FUSE."""
    why = fuse_usable()
    if why is not None:
        print("SKIP: " + why)
        sys.exit(SKIP)
    if tests is None:
        tests = collected_tests()
    if not tests:
        print("no test_* functions found")
        sys.exit(1)
    only = sys.argv[1:]
    unknown = set(only) - {t.__name__ for t in tests}
    if unknown:
        print("no such test: " + ", ".join(sorted(unknown)))
        sys.exit(1)
    passed = failed = 0
    for t in tests:
        if only and t.__name__ not in only:
            continue
        ws = Workspace()
        started = time.time()
        try:
            try:
                t(ws)
            finally:
                ws.close()
            passed += 1
            print("ok   %s (%.2fs)" % (t.__name__, time.time() - started))
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
