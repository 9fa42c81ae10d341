#!/usr/bin/env python3
"""How long an unrelated request waits on kvcfs while another program
publishes in the same mount.

    request_latency.py KVCFS KVC WORKDIR [--quick] [CASE...]

A *probe* (a separate process) creates a small staging file
(`probe-<n>.tmp`: open O_CREAT|O_EXCL, write a few bytes, close), then
unlinks it, every 10 ms, timing the create+close and the unlink separately
with time.monotonic(). It runs for a warm-up second, then an *aggressor*
does one of the cases below in the same mount, each on a fresh mount of a
fresh backing root under WORKDIR:

  open_rename_512M  write a valid 512 MiB slab to big.part and rename it to
                    <key>.kvc while the writer still holds it open
  same_directory    write it to a/big.part, close, rename (the publish runs
                    inside the rename, under the kernel's lock of a/), the
                    probe in a/ too: the baseline of the next
  two_directories   the same with the probe in b/: the kernel locks one
                    directory per rename, and nothing in the daemon is
                    shared between the two, so the probe should not wait
  evict_at_budget   -o max_size= that 16 slabs of 32 MiB just fit; publish
                    16 of them, sync + drop caches, publish one 1 MiB slab
  sparse_8G         a slab header claiming an 8 GiB payload (CRC-32C of 8 GiB
                    of zeros), extended sparse by truncate(2), renamed
  rename_storm      30 threads, 5 s: a small valid slab of one shared key to
                    storm-<t>-<i>.part, dup the fd (kept open), close, rename

Reports per case the number of probe operations, the median and the longest
wait, and whether the longest wait meets the goal (<= 100 ms); every wait
over 50 ms is printed with its offset from the aggressor's start. It is a
benchmark that reports: exit status 0 unless a case could not run.

Mount options: passthrough as kvcfs defaults (on); KVC_LATENCY_OPTIONS adds
-o options, comma-separated (e.g. passthrough=off or threads=32)."""
import errno
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mount"))
# The test suite's extra daemon options are not this benchmark's: it takes
# its own from KVC_LATENCY_OPTIONS.
os.environ.pop("KVCFS_TEST_OPTIONS", None)
os.environ.pop("KVCFS_TEST_FLAGS", None)
import harness  # noqa: E402
import kvcache  # noqa: E402  (harness put examples/python on the path)

if len(sys.argv) < 4:
    sys.exit(__doc__)
KVCFS, KVC, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
harness.KVCFS = KVCFS
QUICK = "--quick" in sys.argv[4:]
ONLY = [a for a in sys.argv[4:] if a != "--quick"]
EXTRA_OPTIONS = [o for o in os.environ.get("KVC_LATENCY_OPTIONS", "").split(",") if o]

PERIOD = 0.010          # one probe every 10 ms
WARMUP = 1.0            # probe alone before the aggressor starts
TAIL = 0.3              # probe on after the aggressor (and after a rename window)
GOAL_MS = 100.0
SHOW_MS = 50.0          # print every wait longer than this
STORM_SECONDS = 2.0 if QUICK else 5.0
STORM_THREADS = 30
# A case still running this long after its mount has a hung request: the
# watchdog then kills the daemon, which fails every blocked call
# (ENOTCONN/ECONNABORTED) so that the case can report and clean up.
CASE_TIMEOUT = float(os.environ.get("KVC_LATENCY_CASE_TIMEOUT", "90"))
MiB, GiB = 1 << 20, 1 << 30
FP, CTX = bytes(range(100, 132)), bytes(range(140, 172))
results = []            # (case, probes, median_ms, max_ms, worst, ok)
watchdog = None         # the running case's Watchdog


# ---------------------------------------------------------------- the probe

def probe_main(mnt, stop, wfd):
    """In its own process: one create+close and one unlink of a staging
    name every PERIOD, each line written to the pipe wfd:
      S n t0                         op n started at t0
      D n t0 create_s unlink_s err   op n done (unlink_s -1: not run)"""
    n = 0
    next_t = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < next_t:
            time.sleep(next_t - now)
        path = os.path.join(mnt, "probe-%d.tmp" % n)
        t0 = time.monotonic()
        next_t = t0 + PERIOD
        os.write(wfd, b"S %d %.6f\n" % (n, t0))
        err = "-"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"probe\n")
            finally:
                os.close(fd)
        except OSError as e:
            err = "create:" + errno.errorcode.get(e.errno, str(e.errno))
        t1 = time.monotonic()
        unlink_s = -1.0
        if err == "-":
            try:
                os.unlink(path)
            except OSError as e:
                err = "unlink:" + errno.errorcode.get(e.errno, str(e.errno))
            unlink_s = time.monotonic() - t1
        os.write(wfd, b"D %d %.6f %.6f %.6f %s\n" % (n, t0, t1 - t0, unlink_s, err.encode()))
        n += 1
    os.close(wfd)


class Probe:
    """The probe process, and a thread here collecting what it reports (so
    the pipe never fills and the probe never waits on us)."""

    def __init__(self, mnt):
        ctx = multiprocessing.get_context("fork")
        self.stop_event = ctx.Event()
        rfd, wfd = os.pipe()
        # Started before the aggressor opens anything in the mount: the
        # fork inherits no descriptor of a file under test.
        self.proc = ctx.Process(target=probe_main, args=(mnt, self.stop_event, wfd), daemon=True)
        self.proc.start()
        os.close(wfd)
        self.rfile = os.fdopen(rfd, "rb")
        self.started, self.done = {}, []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.in_flight = None   # (n, t0, when) of an op still blocked when killed
        self.finished = False

    def _read(self):
        for line in self.rfile:
            f = line.split()
            if f[0] == b"S":
                self.started[int(f[1])] = float(f[2])
            elif f[0] == b"D":
                n, t0, cc, ul = int(f[1]), float(f[2]), float(f[3]), float(f[4])
                self.started.pop(n, None)
                self.done.append((t0, cc, None if ul < 0 else ul, f[5].decode()))

    def finish(self, timeout=60.0):
        """Stops the probe; waits for the op in progress (up to timeout,
        then kills the probe and keeps that op as still waiting)."""
        if self.finished:
            return self.done
        self.finished = True
        self.stop_event.set()
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(10)
        self.reader.join(10)
        self.rfile.close()
        if self.started:
            n, t0 = max(self.started.items())
            self.in_flight = (n, t0, time.monotonic())
        return self.done


def waits_in(probe, a, b):
    """The probe's waits that overlap [a, b], as (start, seconds, kind,
    error or None); kind: create+close, unlink, or blocked (an op still
    waiting when the probe was killed)."""
    out = []
    for t0, cc, ul, err in probe.done:
        if t0 <= b and t0 + cc >= a:
            out.append((t0, cc, "create+close", err if err.startswith("create") else None))
        if ul is not None and t0 + cc <= b and t0 + cc + ul >= a:
            out.append((t0 + cc, ul, "unlink", err if err.startswith("unlink") else None))
    if probe.in_flight and probe.in_flight[1] <= b:
        n, t0, gave_up = probe.in_flight
        out.append((t0, gave_up - t0, "blocked", "still waiting, probe killed"))
    return out


def phase_at(marks, t):
    label = "warm-up"
    for mt, ml in marks:
        if mt <= t:
            label = ml
    return label


def ms_stats(waits):
    """(median, max) in ms, NaN when there are none."""
    if not waits:
        return float("nan"), float("nan")
    v = [w[1] * 1000.0 for w in waits]
    return statistics.median(v), max(v)


def report(case, probe, marks, a, b, window):
    """Summarises the waits in [a, b] and records one result row: probes
    (create+close operations), the median of those that succeeded, and the
    longest wait of any kind (create+close or unlink, failed or not)."""
    waits = waits_in(probe, a, b)
    creates = [w for w in waits if w[2] != "unlink"]
    unlinks = [w for w in waits if w[2] == "unlink"]
    errors = [w for w in waits if w[3]]
    t_agg = marks[0][0]
    c_med, c_max = ms_stats([w for w in creates if not w[3]])[0], ms_stats(creates)[1]
    u_med, u_max = ms_stats([w for w in unlinks if not w[3]])[0], ms_stats(unlinks)[1]
    worst = max(waits, key=lambda w: w[1]) if waits else None
    mx = worst[1] * 1000.0 if worst else float("nan")
    ok = worst is not None and mx <= GOAL_MS
    print("  [%s] %s: %d probes; create+close median %.2f ms, max %.1f ms; "
          "unlink median %.2f ms, max %.1f ms" % (case, window, len(creates), c_med, c_max,
                                                    u_med, u_max))
    if errors:
        print("  [%s] %s: %d probe operations failed: %s" % (
            case, window, len(errors), ", ".join(sorted(set("%s %s" % (w[2], w[3]) for w in errors)))))
    if worst:
        print("  [%s] %s: longest wait %.1f ms (%s at %+.3f s, during %s) -> goal <= %.0f ms %s"
              % (case, window, mx, worst[2], worst[0] - t_agg, phase_at(marks, worst[0]),
                 GOAL_MS, "met" if ok else "NOT MET"))
    sys.stdout.flush()
    if watchdog is not None and watchdog.fired:
        window += ", HUNG: daemon killed after %.0f s" % CASE_TIMEOUT
    results.append(("%s [%s]" % (case, window), len(creates), c_med, mx,
                    "%s %+.2fs" % (worst[2], worst[0] - t_agg) if worst else "-", ok))


def show_slow(case, probe, marks):
    """The aggressor's timeline, then every wait over SHOW_MS during the
    whole case, with its offset from the aggressor's start and the
    aggressor's phase then."""
    t_agg = marks[0][0]
    print("  [%s] aggressor: %s" % (case, "; ".join("%+.3f s %s" % (t - t_agg, l) for t, l in marks)))
    slow = [w for w in waits_in(probe, 0, float("inf")) if w[1] * 1000 > SHOW_MS]
    print("  [%s] probe waits over %.0f ms: %d" % (case, SHOW_MS, len(slow)))
    for t0, s, kind, err in sorted(slow):
        print("      %+8.3f s  %9.1f ms  %-12s%s (during %s)" % (
            t0 - t_agg, s * 1000, kind, " " + err if err else "", phase_at(marks, t0)))
    sys.stdout.flush()


# ------------------------------------------------------------ mounting etc.

class BenchMount(harness.Mount):
    """harness.Mount, but the daemon's stderr is shown, not judged: a
    benchmark pushing kvcfs hard may make it warn."""

    def check_stderr(self):
        for line in self.stderr().splitlines():
            if harness.BAD_STDERR.search(line):
                print("  kvcfs stderr: " + line)


class Watchdog:
    """Kills the daemon if the case outlives CASE_TIMEOUT."""

    def __init__(self, m):
        self.m, self.fired = m, False
        self.timer = threading.Timer(CASE_TIMEOUT, self.fire)
        self.timer.daemon = True
        self.timer.start()

    def fire(self):
        proc = self.m.proc
        if proc is not None and proc.poll() is None:
            self.fired = True
            print("  WATCHDOG: case still running %.0f s after its mount (a request hangs); "
                  "killing kvcfs (pid %d)" % (CASE_TIMEOUT, proc.pid), flush=True)
            proc.kill()


def mount(base, options=()):
    global watchdog
    root, mnt = os.path.join(base, "root"), os.path.join(base, "mnt")
    os.makedirs(root, exist_ok=True)
    m = BenchMount(root, mnt, list(options) + EXTRA_OPTIONS)
    try:
        m.start()
    except BaseException:
        teardown(m)
        raise
    watchdog = Watchdog(m)
    print("  mounted %s (-o %s), passthrough %s" % (
        mnt, ",".join(m.options) or "(defaults)", "on" if metric(m, "passthrough") == 1 else "off"),
        flush=True)
    return m


def teardown(m):
    """Unmounts (fusermount3 -u; lazily if it stays busy) and makes sure
    the daemon is gone, whatever state the case left."""
    if m is None:
        return
    if watchdog is not None:
        watchdog.timer.cancel()
    try:
        m.stop()
    except Exception as e:  # a non-zero exit or a stuck daemon: say so, go on
        print("  teardown: %s" % e)
    if m.proc is not None and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait()
    if harness.mounted(m.mnt):
        subprocess.run(["fusermount3", "-u", "-z", m.mnt], capture_output=True)


def metric(m, name):
    try:
        return harness.metric(m, name)
    except (AssertionError, OSError):
        return -1


def kvc_build(out_dir, payload, tokens):
    """Frames a payload file as a valid slab with kvc build; returns (key, path)."""
    p = subprocess.run([KVC, "build", "--fingerprint", FP.hex(), "--quant", "f16",
                        "--ctx", CTX.hex(), "--tokens", ",".join(map(str, tokens)),
                        "--payload", payload, "--hostname", "bench", "-o", out_dir],
                       check=True, capture_output=True, text=True)
    path = p.stdout.split()[0]
    return os.path.basename(path)[:-4], path


def payload_file(path, size, seed):
    with open(path, "wb") as f:
        chunk = os.urandom(MiB)
        for i in range(size // MiB):
            r = (i + seed) % 251
            f.write(chunk[r:] + chunk[:r])
    return path


def copy_into(src, f):
    with open(src, "rb", buffering=0) as s:
        while True:
            b = s.read(MiB)
            if not b:
                return
            f.write(b)


def attempt(fn, *args):
    """(ok-or-errno-name, seconds) of fn(*args)."""
    t = time.monotonic()
    try:
        fn(*args)
        r = "ok"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    return r, time.monotonic() - t


def crc32c_zeros(n):
    """CRC-32C of n zero bytes, in O(log n) 32x32 GF(2) matrix products
    (zlib's crc32_combine method): feeding zeros to the CRC register is
    linear, so n bytes of them are one matrix power applied to ~0."""
    def times(mat, vec):
        s, i = 0, 0
        while vec:
            if vec & 1:
                s ^= mat[i]
            vec >>= 1
            i += 1
        return s

    def square(mat):
        return [times(mat, mat[i]) for i in range(32)]
    op = [0x82F63B78] + [1 << (i - 1) for i in range(1, 32)]   # one zero bit
    for _ in range(3):
        op = square(op)                                          # one zero byte
    reg = 0xFFFFFFFF
    while n:
        if n & 1:
            reg = times(op, reg)
        op = square(op)
        n >>= 1
    return reg ^ 0xFFFFFFFF


# ------------------------------------------------------------------- cases

def case_open_rename_512M(base):
    open_rename(base, "open_rename_512M", "", "", True)


def case_same_directory(base):
    open_rename(base, "same_directory", "a", "a", False)


def case_two_directories(base):
    open_rename(base, "two_directories", "a", "b", False)


def open_rename(base, case, here, probe_in, keep_open):
    """The 512 MiB publish in directory here while the probe works in
    probe_in (both "": the root); keep_open: rename while the writer
    holds the file open, else after its close (the publish then runs
    inside the rename, under the kernel's lock of the directory)."""
    size = 512 * MiB
    src_dir = os.path.join(base, "src")
    os.makedirs(src_dir)
    key, src = kvc_build(src_dir, payload_file(os.path.join(src_dir, "payload"), size, 1), [512, 1])
    os.unlink(os.path.join(src_dir, "payload"))
    print("  slab %s.kvc, %d bytes (512 MiB payload)" % (key[:16] + "...", os.path.getsize(src)))
    m = probe = f = None
    try:
        m = mount(base)
        for d in (here, probe_in):
            os.makedirs(m.path(d), exist_ok=True)
        probe = Probe(m.path(probe_in))
        time.sleep(WARMUP)
        marks = [(time.monotonic(), "write big.part")]
        f = open(m.path(here, "big.part"), "wb", buffering=0)
        copy_into(src, f)
        if not keep_open:
            f.close()
            f = open(os.devnull, "rb")
        marks.append((time.monotonic(), "rename (big.part %s)"
                      % ("still open" if keep_open else "closed")))
        r, dt = attempt(os.rename, m.path(here, "big.part"), m.path(here, key + ".kvc"))
        marks.append((time.monotonic(), "rename returned; close"))
        t_rename = (marks[1][0], marks[2][0])
        r_close, dt_close = attempt(f.close)
        f = None
        marks.append((time.monotonic(), "closed; tail"))
        time.sleep(TAIL)
        end = time.monotonic()
        probe.finish()
        print("  rename while open: %s in %.3f s; close: %s in %.3f s; published copies %d; %s"
              % (r, dt, r_close, dt_close, metric(m, "publish_copies_total"),
                 "slab present" if os.path.exists(m.path(here, key + ".kvc")) else "no slab"))
        show_slow(case, probe, marks)
        report(case, probe, marks, t_rename[0], t_rename[1] + TAIL,
               "rename window, rename %s" % r)
        report(case, probe, marks, marks[0][0], end, "overall")
    finally:
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        if probe is not None:
            probe.finish()
        teardown(m)


def case_evict_at_budget(base):
    src_dir = os.path.join(base, "src")
    os.makedirs(src_dir)
    payload = payload_file(os.path.join(src_dir, "payload32"), 32 * MiB, 2)
    slabs = [kvc_build(src_dir, payload, [32, i]) for i in range(16)]
    small = kvc_build(src_dir, payload_file(os.path.join(src_dir, "payload1"), MiB, 3), [1, 1])
    slab_size = os.path.getsize(slabs[0][1])
    max_size = 16 * slab_size + 64 * 1024     # the 16 fit; the 1 MiB slab does not
    m = probe = None
    try:
        m = mount(base, ["max_size=%d" % max_size])
        print("  budget %d bytes (16 x %d + 64 KiB), low watermark %d"
              % (metric(m, "budget_bytes"), slab_size, metric(m, "low_watermark_bytes")))
        t = time.monotonic()
        for key, path in slabs:
            with open(m.path("fill.part"), "wb", buffering=0) as f:
                copy_into(path, f)
            os.rename(m.path("fill.part"), m.path(key + ".kvc"))
        print("  published 16 x 32 MiB in %.2f s: %d slabs, %d bytes, %d evictions"
              % (time.monotonic() - t, metric(m, "slabs"), metric(m, "bytes"),
                 metric(m, "evictions_total")))
        os.sync()
        harness.drop_caches(3)
        probe = Probe(m.mnt)
        time.sleep(WARMUP)
        marks = [(time.monotonic(), "write small.part (1 MiB slab)")]
        with open(m.path("small.part"), "wb", buffering=0) as f:
            copy_into(small[1], f)
        marks.append((time.monotonic(), "rename (evicts)"))
        r, dt = attempt(os.rename, m.path("small.part"), m.path(small[0] + ".kvc"))
        marks.append((time.monotonic(), "rename returned; wait for the eviction"))
        # Eviction may run after the rename returns (in the background):
        # keep probing until the slabs fit the budget again (10 s at most).
        t = time.monotonic()
        while r == "ok" and metric(m, "bytes") > max_size and time.monotonic() < t + 10:
            time.sleep(0.02)
        evicted = time.monotonic()
        marks.append((evicted, "within budget; tail" if metric(m, "bytes") <= max_size
                      else "STILL OVER BUDGET; tail"))
        time.sleep(TAIL)
        end = time.monotonic()
        probe.finish()
        print("  publish of the 1 MiB slab: rename %s in %.3f s; within budget %.3f s after the "
              "rename returned; evictions %d; %d slabs, %d bytes left"
              % (r, dt, evicted - marks[2][0], metric(m, "evictions_total"), metric(m, "slabs"),
                 metric(m, "bytes")))
        show_slow("evict_at_budget", probe, marks)
        report("evict_at_budget", probe, marks, marks[0][0], end,
               "publish of 1 MiB, rename %s" % r)
    finally:
        if probe is not None:
            probe.finish()
        teardown(m)


def case_sparse_8G(base):
    plen = 8 * GiB
    tokens = [8, 8, 8]
    key = kvcache.cache_key(FP, "f16", CTX, tokens)
    t = time.monotonic()
    crc = crc32c_zeros(plen)
    assert crc32c_zeros(1000) == kvcache.crc32c(bytes(1000))
    prefix = kvcache.slab_prefix(FP, "f16", CTX, tokens, plen, crc, hostname=b"bench")
    print("  header %d bytes claiming an 8 GiB payload, CRC-32C of the zeros %08x (%.2f s)"
          % (len(prefix), crc, time.monotonic() - t))
    m = probe = None
    try:
        m = mount(base)
        probe = Probe(m.mnt)
        time.sleep(WARMUP)
        staging = m.path("sparse.part")
        marks = [(time.monotonic(), "write header to sparse.part, close")]
        with open(staging, "wb", buffering=0) as f:
            f.write(prefix)
        marks.append((time.monotonic(), "truncate to %d" % (len(prefix) + plen)))
        r_trunc, dt_trunc = attempt(os.truncate, staging, len(prefix) + plen)
        marks.append((time.monotonic(), "rename"))
        r, dt = attempt(os.rename, staging, m.path(key + ".kvc"))
        marks.append((time.monotonic(), "rename returned; tail"))
        time.sleep(TAIL)
        end = time.monotonic()
        probe.finish()
        print("  truncate: %s in %.3f s; rename: %s in %.3f s; %s"
              % (r_trunc, dt_trunc, r, dt,
                 "slab present" if os.path.exists(m.path(key + ".kvc")) else "no slab"))
        show_slow("sparse_8G", probe, marks)
        report("sparse_8G", probe, marks, marks[2][0], marks[3][0] + TAIL,
               "rename window, rename %s" % r)
        report("sparse_8G", probe, marks, marks[0][0], end, "overall")
    finally:
        if probe is not None:
            probe.finish()
        teardown(m)


def case_rename_storm(base):
    tokens = [4, 4, 4, 4]
    key = kvcache.cache_key(FP, "f16", CTX, tokens)
    slab = kvcache.build_slab(FP, "f16", CTX, tokens, os.urandom(4096), hostname=b"bench")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    dups, lock = [], threading.Lock()
    outcome = {}          # "rename ok" / "rename EXXX" / "create EXXX" -> count
    m = probe = None

    def count(what):
        with lock:
            outcome[what] = outcome.get(what, 0) + 1

    def worker(t, deadline):
        i = 0
        while time.monotonic() < deadline:
            staging = m.path("storm-%d-%d.part" % (t, i))
            i += 1
            try:
                fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, slab)
                    d = os.dup(fd)
                    with lock:
                        dups.append(d)
                finally:
                    os.close(fd)
            except OSError as e:
                count("create/write " + errno.errorcode.get(e.errno, str(e.errno)))
                if e.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                    return  # the daemon is gone (the watchdog)
                continue
            r, _ = attempt(os.rename, staging, m.path(key + ".kvc"))
            count("rename " + r)
            if r in ("ENOTCONN", "ECONNABORTED"):
                return

    try:
        m = mount(base)
        probe = Probe(m.mnt)
        time.sleep(WARMUP)
        marks = [(time.monotonic(), "storm: %d threads" % STORM_THREADS)]
        deadline = marks[0][0] + STORM_SECONDS
        threads = [threading.Thread(target=worker, args=(t, deadline), daemon=True)
                   for t in range(STORM_THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(max(0.1, deadline + 45 - time.monotonic()))
        stuck = sum(th.is_alive() for th in threads)
        marks.append((time.monotonic(), "threads done%s; close %d dups"
                      % (" (%d STILL STUCK)" % stuck if stuck else "", len(dups))))
        storm_end = marks[-1][0]
        n_dups = len(dups)
        close_all(dups, lock)
        marks.append((time.monotonic(), "dups closed; tail"))
        time.sleep(TAIL)
        end = time.monotonic()
        probe.finish()
        print("  %d threads for %.1f s: %s; %d dup descriptors held; published copies %d"
              % (STORM_THREADS, STORM_SECONDS,
                 ", ".join("%s %d" % kv for kv in sorted(outcome.items())) or "nothing done",
                 n_dups, metric(m, "publish_copies_total")))
        show_slow("rename_storm", probe, marks)
        report("rename_storm", probe, marks, marks[0][0], storm_end + TAIL,
               "storm, %d renames" % sum(v for k, v in outcome.items() if k.startswith("rename")))
        report("rename_storm", probe, marks, marks[0][0], end, "overall")
    finally:
        close_all(dups, lock)
        if probe is not None:
            probe.finish()
        teardown(m)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def close_all(fds, lock):
    """Closes every descriptor in fds (a close may fail, e.g. ENOTCONN
    once the daemon is gone: the descriptor is closed all the same)."""
    with lock:
        while fds:
            try:
                os.close(fds.pop())
            except OSError:
                pass


CASES = (("open_rename_512M", case_open_rename_512M),
         ("same_directory", case_same_directory),
         ("two_directories", case_two_directories),
         ("evict_at_budget", case_evict_at_budget),
         ("sparse_8G", case_sparse_8G),
         ("rename_storm", case_rename_storm))


def main():
    why = harness.fuse_usable()
    if why is not None:
        print("skipped: " + why)
        return 0
    unknown = set(ONLY) - {n for n, _ in CASES}
    if unknown:
        sys.exit("no such case: %s (cases: %s)" % (", ".join(sorted(unknown)),
                                                    ", ".join(n for n, _ in CASES)))
    os.makedirs(WORK, exist_ok=True)
    print("probe: create+close and unlink of a staging name every %d ms in a separate process; "
          "goal: longest wait <= %.0f ms" % (PERIOD * 1000, GOAL_MS), flush=True)
    crashed = []
    for name, fn in CASES:
        if ONLY and name not in ONLY:
            continue
        base = os.path.join(WORK, name)
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(base)
        print("== %s" % name, flush=True)
        started = time.monotonic()
        try:
            fn(base)
        except Exception:
            traceback.print_exc()
            crashed.append(name)
            results.append((name, 0, float("nan"), float("nan"), "case failed to run", False))
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print("  (case took %.1f s)" % (time.monotonic() - started), flush=True)
    w = max([len(r[0]) for r in results] + [4])
    print()
    print("%-*s | %6s | %9s | %9s | %-24s | %s" % (w, "case", "probes", "median ms", "max ms",
                                                   "longest (op, offset)", "goal <=100 ms met"))
    print("-" * (w + 80))
    for case, probes, med, mx, worst, ok in results:
        print("%-*s | %6d | %9.2f | %9.1f | %-24s | %s" % (w, case, probes, med, mx, worst,
                                                            "yes" if ok else "NO"))
    met = sum(r[5] for r in results)
    print("%d of %d met the goal" % (met, len(results)), flush=True)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
