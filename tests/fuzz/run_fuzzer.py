#!/usr/bin/env python3
"""Run a libFuzzer target for a fixed number of executions on a scratch
copy of the seed corpus; print its totals; fail on any crash or leak.

    run_fuzzer.py FUZZER RUNS SEED_DIR...
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

fuzzer, runs, seeds = sys.argv[1], sys.argv[2], sys.argv[3:]
with tempfile.TemporaryDirectory(prefix="kvc-fuzz-") as work:
    corpus = os.path.join(work, "corpus")
    os.mkdir(corpus)
    for d in seeds:
        for name in os.listdir(d):
            shutil.copy(os.path.join(d, name), corpus)
    p = subprocess.run([fuzzer, "-runs=" + runs, "-max_len=65536", "-rss_limit_mb=1024",
                        "-artifact_prefix=" + work + "/", "-print_final_stats=1", corpus],
                       capture_output=True, text=True, errors="replace")
    out = p.stderr
    done = re.findall(r"^#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", out, re.M)
    if p.returncode != 0 or not done:
        sys.stdout.write(out[-4000:])
        print("0 passed, 1 failed")
        sys.exit(1)
    execs, cov, ft, corp = done[-1]
    print("%s: %s executions, coverage %s edges, %s features, corpus %s"
          % (os.path.basename(fuzzer), execs, cov, ft, corp))
    print("1 passed, 0 failed")
