#!/usr/bin/env python3
"""A stdlib-only Python writer that asks kvcfs to seal its slab (payload
CRC left 0, setxattr user.kvcfs.seal, rename: examples/python/kvcache.py's
save_sealed) against `kvc build -o MOUNT` writing the same slab into the
same mount (C, hardware CRC-32C, publishing by link(2)), in one run.
Prints the median time of each and their ratio (goal: sealed Python at
least 0.80 of kvc build's throughput).

    seal_bench.py KVCFS KVC WORKDIR [--quick]
"""
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
import kvcache  # noqa: E402

KVCFS, KVC, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = "--quick" in sys.argv
ROUNDS = 3
SIZE = (256 << 20) if QUICK else (1 << 30)
FP, CTX = bytes(range(32)), bytes(range(32, 64))
TOKENS = list(range(1000))


def mount(root, mnt):
    os.makedirs(root, exist_ok=True)
    os.makedirs(mnt, exist_ok=True)
    proc = subprocess.Popen([KVCFS, "-f", root, mnt], stderr=subprocess.DEVNULL)
    for _ in range(2000):
        if os.path.ismount(mnt):
            return proc
        time.sleep(0.005)
    proc.kill()
    raise SystemExit("kvcfs did not mount")


def unmount(proc, mnt):
    subprocess.run(["fusermount3", "-u", mnt], check=False)
    proc.wait()


def python_sealed(mnt, key, payload):
    prefix = kvcache.slab_prefix(FP, "f16", CTX, TOKENS, len(payload), 0)
    started = time.perf_counter()
    kvcache.save_sealed(mnt, key, prefix, payload)
    return time.perf_counter() - started


def kvc_build(mnt, payload_path):
    started = time.perf_counter()
    subprocess.run([KVC, "build", "--fingerprint=" + FP.hex(), "--quant=f16",
                    "--ctx=" + CTX.hex(), "--tokens=" + ",".join(map(str, TOKENS)),
                    "--payload=" + payload_path, "-o", mnt], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    os.makedirs(WORK, exist_ok=True)
    root, mnt = os.path.join(WORK, "root"), os.path.join(WORK, "mnt")
    payload = os.urandom(SIZE)
    payload_path = os.path.join(WORK, "payload.bin")
    with open(payload_path, "wb") as f:  # kvc build reads it (page cache)
        f.write(payload)
    key = kvcache.cache_key(FP, "f16", CTX, TOKENS)
    slab = os.path.join(mnt, key + ".kvc")
    proc = mount(root, mnt)
    times = {"python sealed": [], "kvc build": []}
    try:
        for r in range(ROUNDS):
            # Alternate which goes first, so neither always gets the cooler disk.
            order = ["python sealed", "kvc build"] if r % 2 == 0 else ["kvc build", "python sealed"]
            for name in order:
                if name == "python sealed":
                    t = python_sealed(mnt, key, payload)
                else:
                    t = kvc_build(mnt, payload_path)
                subprocess.run([KVC, "verify", os.path.join(root, key + ".kvc")], check=True,
                               stdout=subprocess.DEVNULL)
                os.unlink(slab)
                times[name].append(t)
    finally:
        unmount(proc, mnt)
        os.unlink(payload_path)
    mib = SIZE / (1 << 20)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print("%-14s %6.0f MiB: median %.2f s (%.0f MiB/s); rounds %s" % (
            k, mib, med[k], mib / med[k], ", ".join("%.2f" % t for t in v)))
    ratio = med["kvc build"] / med["python sealed"]
    print("ratio (python sealed throughput / kvc build throughput): %.2f (goal >= 0.80)" % ratio)


if __name__ == "__main__":
    main()
