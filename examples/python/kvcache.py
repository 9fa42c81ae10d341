"""Use a kvcfs mount from Python with the standard library only.

Frames a KV-cache state blob as a KVC v1 slab (CRC-32C in pure Python),
computes cache keys, saves by write + os.rename (or, without computing the
CRC, asks kvcfs to seal the slab: save_sealed), restores through
payload/<key>, and finds the longest cached prefix of a token list by
probing names with os.stat.

Every function takes the mount and, as directory=, the cache directory in
it ("" for the root; "llama-8b/node-1" for MOUNT/llama-8b/node-1): each
directory of a mount is a cache of its own, under the mount's one budget.
"""
import hashlib
import os
import socket
import struct
import time

QUANTS = ["f32", "f16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k_m", "q4_k_s",
          "q5_k_m", "q5_k_s", "q6_k", "q8_k", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l",
          "iq2_xxs", "iq2_xs", "iq2_s", "iq2_m", "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m",
          "iq1_s", "iq1_m", "iq4_nl", "iq4_xs", "bf16"]
SAVE_REASONS = ["unknown", "cold", "continued", "evict", "shutdown", "finish"]
FINGERPRINT_MODES = ["safe", "gguf_chunked", "fast_unsafe"]


def _crc32c_table():
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli); crc32c(b"123456789") == 0xE3069283."""
    crc ^= 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def tokens_le32(tokens):
    return struct.pack("<%dI" % len(tokens), *tokens)


def cache_key(fingerprint, quant, ctx_params_hash, tokens):
    """The 64-hex key: SHA-256(fingerprint || quant byte || ctx hash || tokens u32 LE)."""
    h = hashlib.sha256()
    h.update(fingerprint)
    h.update(bytes([QUANTS.index(quant)]))
    h.update(ctx_params_hash)
    h.update(tokens_le32(tokens))
    return h.hexdigest()


def slab_prefix(fingerprint, quant, ctx_params_hash, tokens, payload_length, payload_crc, *,
                quant_bits=16, save_reason="cold", fingerprint_mode="safe", context_size=0,
                prompt=b"", created=None, last_used=None, hits=0, hostname=None,
                writer_version=b"kvcache.py", detail=b""):
    """The bytes of a KVC v1 file before its payload, laid out as the
    reference writer does. payload_crc 0 and save_sealed: kvcfs fills it in."""
    now = int(time.time())
    created = now if created is None else created
    last_used = created if last_used is None else last_used
    if hostname is None:
        hostname = socket.gethostname().encode()
    tlvs = [(1, fingerprint), (2, bytes([FINGERPRINT_MODES.index(fingerprint_mode)])),
            (3, bytes([QUANTS.index(quant)])), (4, ctx_params_hash),
            (8, struct.pack("<I", len(tokens))), (9, tokens_le32(tokens))]
    tlvs += [(t, v) for t, v in ((5, hostname), (6, writer_version), (7, detail)) if v]
    tlv = b"".join(struct.pack("<BI", t, len(v)) + v for t, v in tlvs)
    prompt_section = struct.pack("<I", len(prompt)) + prompt
    tlv_section = struct.pack("<I", len(tlv)) + tlv
    offset = 48 + 24 + len(prompt_section) + len(tlv_section)
    header = b"KVC" + struct.pack("<BBBxxIII4xQQQ", 1, quant_bits,
                                  SAVE_REASONS.index(save_reason), len(tokens), hits,
                                  context_size, created, last_used, payload_length)
    trailer = struct.pack("<QQI4x", offset, payload_length, payload_crc)
    return header + trailer + prompt_section + tlv_section


def build_slab(fingerprint, quant, ctx_params_hash, tokens, payload, *, compute_crc=True,
               **fields):
    """The bytes of a KVC v1 file. compute_crc=False leaves payload_crc32c 0
    for save_sealed (the pure-Python CRC runs at a few MB/s)."""
    crc = crc32c(payload) if compute_crc else 0
    return slab_prefix(fingerprint, quant, ctx_params_hash, tokens, len(payload), crc,
                       **fields) + payload


def save(mount, key, slab, directory=""):
    """Publish a slab: write a staging file, then rename it to its key name
    (in the same directory: a rename across directories is EXDEV). Raises
    OSError(EBADMSG) if kvcfs refuses the content."""
    where = os.path.join(mount, directory)
    staging = os.path.join(where, ".save-%d-%s" % (os.getpid(), key[:16]))
    with open(staging, "wb") as f:
        f.write(slab)
    try:
        os.rename(staging, os.path.join(where, key + ".kvc"))
    except OSError:
        os.unlink(staging)
        raise


def save_sealed(mount, key, *parts, directory=""):
    """Publish a slab whose payload_crc32c the writer left 0: write the
    parts (e.g. slab_prefix(...) and the payload) to a staging file, ask
    kvcfs to seal it (setxattr user.kvcfs.seal), then rename it. kvcfs
    fills in the CRC from the bytes it received and validates the rest;
    see "Sealed slabs" in docs/format.md for what that does not protect."""
    where = os.path.join(mount, directory)
    staging = os.path.join(where, ".save-%d-%s" % (os.getpid(), key[:16]))
    with open(staging, "wb") as f:
        for part in parts:
            f.write(part)
    try:
        os.setxattr(staging, "user.kvcfs.seal", b"1")
        os.rename(staging, os.path.join(where, key + ".kvc"))
    except OSError:
        os.unlink(staging)
        raise


def restore(mount, key, directory=""):
    """The validated payload of a slab, or None on a miss: through
    payload/<directory>/<key>, the payload view of the mount's root."""
    try:
        with open(os.path.join(mount, "payload", directory, key), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def longest_prefix(mount, fingerprint, quant, ctx_params_hash, tokens, stride=1, min_len=1,
                   directory=""):
    """(length, key) of the longest cached prefix of tokens, or None.
    The hash state is copied at each stride boundary: one pass over the
    tokens for every candidate length, then a stat per probe."""
    h = hashlib.sha256()
    h.update(fingerprint)
    h.update(bytes([QUANTS.index(quant)]))
    h.update(ctx_params_hash)
    candidates = []
    done = 0
    while done < len(tokens):
        nxt = min(done + stride, len(tokens))
        h.update(tokens_le32(tokens[done:nxt]))
        done = nxt
        if done >= min_len and (done % stride == 0 or done == len(tokens)):
            candidates.append((done, h.copy().hexdigest()))
    for length, key in reversed(candidates):
        if os.path.exists(os.path.join(mount, directory, key + ".kvc")):
            return length, key
    return None
