#!/usr/bin/env python3
"""Each man page renders with man -l and no warning from groff, holds no
control character in its source (a stray form feed renders as garbage and
groff does not warn), has an EXIT STATUS section, and kvcfs(1) names every
metric and extended attribute the daemon's source defines."""
import os
import re
import subprocess
import sys

d = sys.argv[1]
src = os.path.normpath(os.path.join(d, "..", ".."))
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what)
    passed += ok
    failed += not ok


def names_in_source():
    """Metric names (kvcfs_...) and xattr names (user.kvc...) in fs/*.c."""
    metrics, xattrs = set(), set()
    for f in sorted(os.listdir(os.path.join(src, "fs"))):
        if not f.endswith(".c"):
            continue
        text = open(os.path.join(src, "fs", f), encoding="utf-8").read()
        for m in re.finditer(r'(?:counter|gauge)\(s, "([a-z_]+)"', text):
            metrics.add("kvcfs_" + m.group(1))
        for m in re.finditer(r'seconds\(s, "([a-z_]+)"', text):
            metrics.update(("kvcfs_%s_sum" % m.group(1), "kvcfs_%s_count" % m.group(1)))
        metrics.update(re.findall(r"# TYPE (kvcfs_[a-z_]+) ", text))
        xattrs.update(re.findall(r'"(user\.kvcf?s?\.[a-z_0-9]+)"', text))
    return metrics, xattrs


for page in ("kvcfs.1", "kvc.1", "kvc.5"):
    path = os.path.join(d, page)
    raw = open(path, "rb").read()
    bad = [(i, b) for i, b in enumerate(raw) if b < 0x20 and b not in (0x0A, 0x09) or b == 0x7F]
    check(not bad, "%s: no control characters%s" % (
        page, "" if not bad else " (byte 0x%02x at offset %d)" % (bad[0][1], bad[0][0])))
    p = subprocess.run(["man", "--warnings", "-l", path], capture_output=True,
                       text=True, env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
    ok = p.returncode == 0 and p.stderr.strip() == "" and "NAME" in p.stdout and len(p.stdout) > 500
    check(ok, page + " renders" + ("" if ok else ": " + p.stderr.strip()))
    if page.endswith(".1"):
        check(re.search(rb"^\.SH EXIT STATUS", raw, re.M) is not None, page + ": EXIT STATUS")

page = open(os.path.join(d, "kvcfs.1"), encoding="utf-8").read().replace("\\-", "-")
metrics, xattrs = names_in_source()
check(len(metrics) > 20 and len(xattrs) > 15, "the source's names found (%d metrics, %d xattrs)"
      % (len(metrics), len(xattrs)))
for name in sorted(metrics | xattrs):
    check(re.search(re.escape(name) + r"\b", page) is not None, "kvcfs.1 names " + name)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
