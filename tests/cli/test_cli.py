#!/usr/bin/env python3
"""The kvc tool against the golden vectors' manifest, and its round trips.

Usage: test_cli.py KVC_BINARY VECTORS_DIR
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

KVC, VECTORS = sys.argv[1], sys.argv[2]
failures = []
passed = 0


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def kvc(*args, ok=(0,)):
    p = subprocess.run([KVC, *args], capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit("kvc %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def load_manifest():
    with open(os.path.join(VECTORS, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)["entries"]


def test_verify(entries):
    for e in entries:
        path = os.path.join(VECTORS, e["file"])
        p = kvc("verify", path, ok=(0, 1))
        if e["valid"]:
            check(p.returncode == 0 and p.stdout.strip() == path + ": ok",
                  "verify accepts " + e["file"])
        else:
            check(p.returncode == 1 and p.stdout.startswith("%s: %s: " % (path, e["error_tag"])),
                  "verify rejects %s with %s (got %r)" % (e["file"], e["error_tag"], p.stdout))


SKIP = {"file", "valid", "kind", "description", "crafted", "parse_meta"}


def test_inspect_json(entries):
    valid = [e for e in entries if e["valid"]]
    paths = [os.path.join(VECTORS, e["file"]) for e in valid]
    out = kvc("inspect", "--json", *paths).stdout.splitlines()
    check(len(out) == len(valid), "one JSON line per file")
    for e, line in zip(valid, out):
        got = json.loads(line)
        for field, want in e.items():
            if field in SKIP:
                continue
            check(field in got and got[field] == want,
                  "%s: %s = %r, want %r" % (e["kind"], field, got.get(field), want))
        check(got["writer_version"] == e["erllama_version"], e["kind"] + ": writer_version")
    bad = [e for e in entries if not e["valid"]]
    p = kvc("inspect", "--json", *[os.path.join(VECTORS, e["file"]) for e in bad], ok=(1,))
    for e, line in zip(bad, p.stdout.splitlines()):
        got = json.loads(line)
        check(got["valid"] is False and got["error_tag"] == e["error_tag"],
              "inspect --json error tag of " + e["kind"])


def test_key_build_lookup(entries):
    e = next(x for x in entries if x["kind"] == "one_byte_payload")
    # The vector's tokens are not in the manifest beyond first/last, so take
    # them from the file through inspect and rebuild the key from options.
    path = os.path.join(VECTORS, e["file"])
    with open(path, "rb") as f:
        data = f.read()
    tlv_off = 72 + 4 + struct.unpack_from("<I", data, 72)[0]
    pos, end, tokens = tlv_off + 4, tlv_off + 4 + struct.unpack_from("<I", data, tlv_off)[0], None
    while pos < end:
        tag, ln = struct.unpack_from("<BI", data, pos)
        if tag == 9:
            tokens = list(struct.unpack_from("<%dI" % (ln // 4), data, pos + 5))
        pos += 5 + ln
    opts = ["--fingerprint", e["fingerprint"], "--quant", e["quant_type"],
            "--ctx", e["ctx_params_hash"], "--tokens", ",".join(map(str, tokens))]
    check(kvc("key", *opts).stdout.strip() == e["key"], "kvc key reproduces a vector's key")

    with tempfile.TemporaryDirectory() as d:
        tf = os.path.join(d, "tokens.bin")
        with open(tf, "wb") as f:
            f.write(struct.pack("<%dI" % len(tokens), *tokens))
        fopts = opts[:-2] + ["--tokens-file", tf]
        check(kvc("key", *fopts).stdout.strip() == e["key"], "kvc key --tokens-file")

        # Rebuild the vector byte for byte from its fields.
        payload = os.path.join(d, "payload")
        with open(payload, "wb") as f:
            f.write(data[e["payload_offset"]:])
        out_dir = os.path.join(d, "out")
        os.mkdir(out_dir)
        kvc("build", *opts, "--payload", payload, "--save-reason", e["save_reason"],
            "--quant-bits", str(e["quant_bits"]), "--context-size", str(e["context_size"]),
            "--prompt", e["prompt_text"], "--hostname", e["hostname"],
            "--writer-version", e["erllama_version"],
            "--fingerprint-mode", e["fingerprint_mode"], "--created", str(e["creation_time"]),
            "--last-used", str(e["last_used_time"]), "--hits", str(e["hit_count"]),
            "-o", out_dir)
        built = os.path.join(out_dir, e["key"] + ".kvc")
        with open(built, "rb") as f:
            check(f.read() == data, "kvc build reproduces the reference's bytes")
        check(os.listdir(out_dir) == [e["key"] + ".kvc"], "kvc build leaves no temp")

        # Longest-prefix lookup: publish prefixes of 8 and 16 of a 20-token list.
        long_tokens = list(range(100, 120))
        base = ["--fingerprint", "ab" * 32, "--quant", "q8_0", "--ctx", "cd" * 32]
        lk = os.path.join(d, "lk")
        os.mkdir(lk)
        for n in (8, 16):
            kvc("build", *base, "--tokens", ",".join(map(str, long_tokens[:n])), "-o", lk)
        with open(tf, "wb") as f:
            f.write(struct.pack("<20I", *long_tokens))
        p = kvc("lookup", *base, "--tokens-file", tf, "--stride", "4", lk)
        k16 = kvc("key", *base, "--tokens", ",".join(map(str, long_tokens[:16]))).stdout.strip()
        check(p.stdout.strip() == "16 " + k16, "lookup finds the longest prefix (%r)" % p.stdout)
        p = kvc("lookup", *base, "--tokens-file", tf, "--stride", "4", "--min", "17", lk, ok=(1,))
        check(p.returncode == 1 and p.stdout == "", "lookup misses below --min")
        p = kvc("lookup", *base, "--tokens-file", tf, "--stride", "3", lk, ok=(0, 1))
        k8 = kvc("key", *base, "--tokens", ",".join(map(str, long_tokens[:8]))).stdout.strip()
        check(p.returncode == 1 or p.stdout.strip() != "8 " + k8,
              "lookup probes only stride-aligned lengths")


def test_bad_input():
    for args in (["key", "--fingerprint", "zz", "--quant", "f16", "--ctx", "00" * 32, "--tokens", "1"],
                 ["key", "--fingerprint", "00" * 32, "--quant", "nope", "--ctx", "00" * 32, "--tokens", "1"],
                 ["key", "--fingerprint", "00" * 32, "--quant", "f16", "--ctx", "00" * 32, "--tokens", "1,-2"],
                 ["key", "--fingerprint", "00" * 32, "--quant", "f16", "--ctx", "00" * 32, "--tokens", "4294967296"],
                 ["key", "--fingerprint", "00" * 32, "--quant", "f16", "--ctx", "00" * 32],
                 ["nosuchcommand"], ["verify"], ["inspect", "--bogus"]):
        p = subprocess.run([KVC, *args], capture_output=True, text=True)
        check(p.returncode == 2 and p.stderr.count("\n") >= 1 and "kvc" in p.stderr,
              "clear usage error for %s" % args)
    for cmd in ("key", "build", "inspect", "verify", "lookup", "stats"):
        p = subprocess.run([KVC, cmd, "--help"], capture_output=True, text=True)
        check(p.returncode == 0 and "Usage" in p.stdout, cmd + " --help")


KEY_OPTS = ["--fingerprint", "00" * 32, "--quant", "f16", "--ctx", "00" * 32]


def test_choices_and_outputs():
    """A wrong choice lists the right ones; -o has one rule (a directory,
    or a path ending in /, gets DIR/<key>.kvc; anything else is the file)
    with one mode; lookup on a missing directory is an error, not a miss."""
    p = subprocess.run([KVC, "key", "--fingerprint", "00" * 32, "--quant", "nope", "--ctx",
                        "00" * 32, "--tokens", "1"], capture_output=True, text=True)
    check(p.returncode == 2 and "q4_k_m" in p.stderr and "bf16" in p.stderr,
          "an unknown quant lists the quant names: %r" % p.stderr)
    with tempfile.TemporaryDirectory() as d:
        payload = os.path.join(d, "state.bin")
        with open(payload, "wb") as f:
            f.write(os.urandom(999))
        build = [KVC, "build", *KEY_OPTS, "--tokens", "1,2", "--payload", payload, "-o"]
        p = subprocess.run(build[:-1] + ["--save-reason", "nope", "-o", d], capture_output=True,
                           text=True)
        check(p.returncode == 2 and "cold" in p.stderr and "shutdown" in p.stderr,
              "an unknown save reason lists the reasons: %r" % p.stderr)
        p = subprocess.run(build + [os.path.join(d, "missing") + "/"], capture_output=True,
                           text=True)
        check(p.returncode == 2 and "not a directory" in p.stderr and
              not os.path.exists(os.path.join(d, "missing")), "-o DIR/ that does not exist")
        as_file = os.path.join(d, "as-file.kvc")
        p = subprocess.run(build + [as_file], capture_output=True, text=True)
        check(p.returncode == 0 and p.stdout.strip() == as_file, "-o FILE: %r" % p.stdout)
        sub = os.path.join(d, "sub")
        os.mkdir(sub)
        for target in (sub, sub + "/"):
            p = subprocess.run(build + [target], capture_output=True, text=True)
            check(p.returncode == 0 and os.path.dirname(p.stdout.split()[0]) == sub,
                  "-o %s: %r" % (target, p.stdout))
        in_dir = os.path.join(sub, os.listdir(sub)[0])
        modes = {oct(os.stat(f).st_mode & 0o777) for f in (as_file, in_dir)}
        check(modes == {"0o644"}, "-o FILE and -o DIR make the same mode: %s" % modes)
        p = subprocess.run([KVC, "lookup", *KEY_OPTS, "--tokens", "1", os.path.join(d, "nodir")],
                           capture_output=True, text=True)
        check(p.returncode == 2 and "not a directory" in p.stderr,
              "lookup on a missing directory: exit %d %r" % (p.returncode, p.stderr))
        p = subprocess.run([KVC, "lookup", *KEY_OPTS, "--tokens", "7", d], capture_output=True,
                           text=True)
        check(p.returncode == 1 and p.stderr == "", "a miss is exit 1, silent")


def run_bounded(args, timeout=10):
    """Run kvc with a deadline; returns (exit code or None if it had to be
    killed, stdout, stderr, peak RSS in KiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen([KVC, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                code = None
                break
            time.sleep(0.01)
        p.returncode = code if code is not None else -9  # reaped here
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(), err.read().decode(), usage.ru_maxrss


def test_hostile_files():
    """Every file the tool reads: a FIFO must be refused at once, not block."""
    with tempfile.TemporaryDirectory() as d:
        fifo = os.path.join(d, "fifo")
        os.mkfifo(fifo)
        mnt = os.path.join(d, "mnt")
        os.makedirs(os.path.join(mnt, ".kvcfs"))
        os.mkfifo(os.path.join(mnt, ".kvcfs", "metrics"))
        out = os.path.join(d, "out")
        os.mkdir(out)
        for args in (["verify", fifo], ["inspect", fifo], ["inspect", "--json", fifo],
                     ["build", *KEY_OPTS, "--tokens", "1", "--payload", fifo, "-o", out],
                     ["key", *KEY_OPTS, "--tokens-file", fifo],
                     ["build", *KEY_OPTS, "--tokens-file", fifo, "-o", out],
                     ["lookup", *KEY_OPTS, "--tokens-file", fifo, out],
                     ["stats", mnt]):
            code, so, se, _ = run_bounded(args, timeout=5)
            text = so + se
            check(code is not None and code != 0 and "FIFO" in text and "regular file" in text
                  and text.count("\n") == 1,
                  "%s refuses a FIFO in one line, without blocking (exit %r, %r)"
                  % (args[0], code, text))
        check(os.listdir(out) == [], "no slab built from a FIFO")


def test_token_file_cap():
    """Token files are read whole, so they are capped; the cap is in --help."""
    help_text = kvc("key", "--help").stdout
    limit = next((int(w) for w in help_text.split() if w.isdigit() and int(w) > 1 << 20), None)
    check(limit == 67108800 * 4, "key --help states the token file cap (%r)" % limit)
    code, so, se, rss = run_bounded(["key", *KEY_OPTS, "--tokens-file", "/dev/zero"])
    check(code == 2 and "character device" in se and so == "",
          "/dev/zero as --tokens-file is refused at once (exit %r, %r)" % (code, se))
    check(rss < 200 * 1024, "/dev/zero as --tokens-file costs bounded memory (%d KiB)" % rss)
    with tempfile.TemporaryDirectory() as d:
        big = os.path.join(d, "big.tok")
        with open(big, "wb") as f:
            f.truncate((limit or 67108800 * 4) + 4)  # sparse: no disk used
        code, so, se, rss = run_bounded(["key", *KEY_OPTS, "--tokens-file", big])
        check(code == 2 and "larger than the limit of %s bytes" % limit in se and so == "",
              "a token file over the cap is refused with the cap error (exit %r, %r)" % (code, se))
        check(rss < 200 * 1024, "an oversized token file costs bounded memory (%d KiB)" % rss)


def test_help_plain_ascii():
    """Help must read right in any locale: no '?' stand-ins for UTF-8."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    for cmd in ("key", "build", "inspect", "verify", "lookup", "stats"):
        p = subprocess.run([KVC, cmd, "--help"], capture_output=True, env=env)
        check(p.returncode == 0 and p.stdout.isascii() and b"?" not in p.stdout
              and b"Usage" in p.stdout,
              "%s --help is plain ASCII under LC_ALL=C (%r)" % (cmd, p.stdout[:80]))
    out = subprocess.run([KVC, "build", "--help"], capture_output=True, env=env).stdout.decode()
    where = [out.find(o + "=") for o in
             ("--fingerprint", "--quant", "--ctx", "--tokens", "--tokens-file", "--payload")]
    check(all(w >= 0 for w in where) and where[:5] == sorted(where[:5]) and max(where[:5]) < where[5],
          "build --help lists the required options first (%r)" % where)


def test_version():
    """kvc --version says the version meson.build's project() declares."""
    top = os.path.join(VECTORS, "..", "..", "..", "meson.build")
    with open(top, encoding="utf-8") as f:
        text = f.read()
    declared = text.split("version", 1)[1].split("'")[1]
    check(kvc("--version").stdout.strip() == "kvc " + declared,
          "kvc --version is the project version %s" % declared)


def main():
    entries = load_manifest()
    test_verify(entries)
    test_inspect_json(entries)
    test_key_build_lookup(entries)
    test_bad_input()
    test_choices_and_outputs()
    test_hostile_files()
    test_token_file_cap()
    test_help_plain_ascii()
    test_version()
    print("%d passed, %d failed" % (passed, len(failures)))
    sys.exit(1 if failures else 0)


main()
