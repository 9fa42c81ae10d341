#!/usr/bin/env python3
"""Each man page renders with man -l and no warning from groff."""
import os
import subprocess
import sys

d = sys.argv[1]
passed = failed = 0
for page in ("kvcfs.1", "kvc.1", "kvc.5"):
    p = subprocess.run(["man", "--warnings", "-l", os.path.join(d, page)], capture_output=True,
                       text=True, env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
    ok = p.returncode == 0 and p.stderr.strip() == "" and "NAME" in p.stdout and len(p.stdout) > 500
    print(("ok   " if ok else "FAIL ") + page + ("" if ok else ": " + p.stderr.strip()))
    passed += ok
    failed += not ok
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
