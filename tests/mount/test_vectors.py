#!/usr/bin/env python3
"""Every golden vector through a real mount: valid ones publish and read
back, invalid ones are refused with EBADMSG and nothing appears."""
import errno
import os
import shutil
import struct

from harness import (expect_errno, main, payload_of, vector_bytes, vectors,
                     without_mutable_header)

# One vocabulary: each attribute is user.kvc.<the manifest's field name>,
# its value as `kvc inspect` prints it (the CRC in hex, as 0x%08x).
XATTR_FIELDS = {"user.kvc." + f: f for f in (
    "fingerprint", "ctx_params_hash", "quant_type", "quant_byte", "fingerprint_mode",
    "save_reason", "quant_bits", "context_size", "creation_time", "token_count",
    "cached_token_count", "payload_length", "payload_offset", "payload_crc32c", "key")}
OPTIONAL = {"user.kvc.hostname": "hostname", "user.kvc.writer_version": "erllama_version",
            "user.kvc.save_reason_detail": "save_reason_detail"}


def publish_by_rename(m, name, data):
    staging = m.path("incoming-" + name)
    with open(staging, "wb") as f:
        f.write(data)
    os.rename(staging, m.path(name))


def test_valid_vectors_publish_and_read_back(ws):
    m = ws.mount()
    for e in (v for v in vectors() if v["valid"]):
        name = e["key"] + ".kvc"
        data = vector_bytes(e)
        publish_by_rename(m, name, data)
        st = os.stat(m.path(name))
        assert st.st_size == len(data), e["kind"]
        assert st.st_mode == 0o100444, oct(st.st_mode)
        assert st.st_mtime == min(e["creation_time"], 2**63 - 1), e["kind"]
        with open(m.path(name), "rb") as f:
            got = f.read()
        assert without_mutable_header(got) == without_mutable_header(data), e["kind"]
        hits = struct.unpack_from("<I", got, 12)[0]
        assert hits == min(e["hit_count"] + 1, 2**32 - 1), (e["kind"], hits)
        with open(m.path("payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(data), e["kind"]
        assert os.stat(m.path("payload", e["key"])).st_size == e["payload_length"]
        for attr, field in XATTR_FIELDS.items():
            value = os.getxattr(m.path(name), attr).decode()
            want = "0x%08x" % e[field] if field == "payload_crc32c" else str(e[field])
            assert value == want, (e["kind"], attr, value, want)
        for attr, field in OPTIONAL.items():
            if e[field] is None:
                expect_errno(errno.ENODATA, os.getxattr, m.path(name), attr)
                assert attr not in os.listxattr(m.path(name))
            else:
                assert os.getxattr(m.path(name), attr) == e[field].encode(), (e["kind"], attr)
        hit_attr = int(os.getxattr(m.path(name), "user.kvc.hit_count"))
        assert hit_attr == min(e["hit_count"] + 2, 2**32 - 1), (e["kind"], hit_attr)
    listed = sorted(n for n in os.listdir(m.mnt) if n.endswith(".kvc"))
    assert listed == sorted(v["key"] + ".kvc" for v in vectors() if v["valid"])
    assert sorted(os.listdir(m.root)) == listed, "backing root holds exactly the slabs"


def test_invalid_vectors_refused_on_rename(ws):
    m = ws.mount()
    for e in (v for v in vectors() if not v["valid"]):
        name = e["key"] + ".kvc"
        staging = m.path("staged-" + e["kind"])
        with open(staging, "wb") as f:
            f.write(vector_bytes(e))
        expect_errno(errno.EBADMSG, os.rename, staging, m.path(name))
        assert os.path.exists(staging), "the staging file stays"
        why = os.getxattr(staging, "user.kvcfs.error").decode()
        assert why.startswith(e["error_tag"] + ":"), (e["kind"], why)
        assert not os.path.exists(m.path(name)), e["kind"]
        assert not os.path.exists(m.path("payload", e["key"]))
        os.unlink(staging)
    assert [n for n in os.listdir(m.mnt) if n not in ("payload", ".kvcfs")] == []
    assert [n for n in os.listdir(m.root) if n.endswith(".kvc")] == [], os.listdir(m.root)
    metrics = open(m.path(".kvcfs", "metrics")).read()
    rejected = sum(1 for v in vectors() if not v["valid"])
    assert "kvcfs_rejected_total %d\n" % rejected in metrics, metrics


def test_invalid_vectors_refused_on_close(ws):
    m = ws.mount()
    for e in (v for v in vectors() if not v["valid"]):
        name = e["key"] + ".kvc"
        src = os.path.join(ws.dir, "src-" + name)
        with open(src, "wb") as f:
            f.write(vector_bytes(e))
        err = expect_errno(errno.EBADMSG, shutil.copyfile, src, m.path(name))
        assert err is not None
        assert not os.path.exists(m.path(name)), e["kind"]
    assert [n for n in os.listdir(m.root) if n.endswith(".kvc")] == [], os.listdir(m.root)


def test_valid_vectors_publish_on_close(ws):
    m = ws.mount()
    for e in (v for v in vectors() if v["valid"]):
        src = os.path.join(VECTORS_DIR, e["file"])
        shutil.copyfile(src, m.path(e["key"] + ".kvc"))
        assert os.path.exists(os.path.join(m.root, e["key"] + ".kvc")), e["kind"]
        with open(m.path("payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(vector_bytes(e))


VECTORS_DIR = os.environ.get("KVC_VECTORS", "")

if __name__ == "__main__":
    main()
