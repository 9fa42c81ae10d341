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


def main():
    entries = load_manifest()
    test_verify(entries)
    test_inspect_json(entries)
    test_key_build_lookup(entries)
    test_bad_input()
    print("%d passed, %d failed" % (passed, len(failures)))
    sys.exit(1 if failures else 0)


main()
