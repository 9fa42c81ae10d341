#!/usr/bin/env python3
"""Operators' and programs' everyday tools against a real mount."""
import errno
import os
import shutil
import stat
import subprocess

from harness import (expect_errno, main, payload_of, run, valid_vectors, vector_bytes,
                     vectors, without_mutable_header)


def source_dir(ws, entries):
    """A local directory of slab files named by key, as users keep them."""
    d = os.path.join(ws.dir, "src")
    os.makedirs(d, exist_ok=True)
    for e in entries:
        with open(os.path.join(d, e["key"] + ".kvc"), "wb") as f:
            f.write(vector_bytes(e))
    return d


def assert_published(m, e):
    name = e["key"] + ".kvc"
    assert os.path.isfile(os.path.join(m.root, name)), "not in backing root: " + name
    with open(m.path(name), "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(vector_bytes(e))


def test_cp_then_mv(ws):
    m = ws.mount()
    src = source_dir(ws, valid_vectors()[:3])
    for e in valid_vectors()[:3]:
        run(["cp", os.path.join(src, e["key"] + ".kvc"), m.path("upload.part")])
        assert "upload.part" in os.listdir(m.mnt)
        assert stat.S_IMODE(os.stat(m.path("upload.part")).st_mode) & 0o200
        run(["mv", m.path("upload.part"), m.path(e["key"] + ".kvc")])
        assert "upload.part" not in os.listdir(m.mnt)
        assert_published(m, e)
    assert sorted(os.listdir(m.root)) == sorted(e["key"] + ".kvc" for e in valid_vectors()[:3])


def test_cp_direct_and_onto_existing(ws):
    m = ws.mount()
    e = valid_vectors()[2]
    src = source_dir(ws, [e])
    name = e["key"] + ".kvc"
    run(["cp", os.path.join(src, name), m.path(name)])
    assert_published(m, e)
    ino = os.stat(os.path.join(m.root, name)).st_ino
    # Copying onto an existing valid slab succeeds and keeps the existing one.
    run(["cp", os.path.join(src, name), m.path(name)])
    assert os.stat(os.path.join(m.root, name)).st_ino == ino
    # An invalid copy under a key name fails at close; nothing appears.
    bad = next(v for v in vectors() if v["kind"] == "payload_byte_changed")
    bad_src = os.path.join(ws.dir, "bad.kvc")
    with open(bad_src, "wb") as f:
        f.write(vector_bytes(bad))
    p = subprocess.run(["cp", bad_src, m.path(bad["key"] + ".kvc")], capture_output=True, text=True)
    assert p.returncode != 0 and "Bad message" in p.stderr, p.stderr
    assert not os.path.exists(m.path(bad["key"] + ".kvc"))
    # (the refused bytes' temp may linger until the kernel's release arrives)
    assert sorted(n for n in os.listdir(m.root) if not n.endswith((".tmp", ".kvcpart"))) == [name]


def test_mv_from_another_filesystem(ws):
    m = ws.mount()
    e = valid_vectors()[4]
    src = source_dir(ws, [e])
    run(["mv", os.path.join(src, e["key"] + ".kvc"), m.path(e["key"] + ".kvc")])
    assert_published(m, e)


def test_dd(ws):
    m = ws.mount()
    e = next(v for v in valid_vectors() if v["kind"] == "large_payload")
    src = source_dir(ws, [e])
    run(["dd", "if=" + os.path.join(src, e["key"] + ".kvc"), "of=" + m.path(e["key"] + ".kvc"),
         "bs=64k", "conv=fsync", "status=none"])
    assert_published(m, e)
    run(["dd", "if=" + m.path("payload", e["key"]), "of=" + os.path.join(ws.dir, "out"),
         "bs=1M", "status=none"])
    with open(os.path.join(ws.dir, "out"), "rb") as f:
        assert f.read() == payload_of(vector_bytes(e))


def test_rsync_in_and_out(ws):
    m = ws.mount()
    src = source_dir(ws, valid_vectors())
    # rsync writes a dot-temp, sets its attributes, then renames it.
    run(["rsync", "-a", src + "/", m.mnt + "/"])
    for e in valid_vectors():
        assert_published(m, e)
    run(["rsync", "-a", src + "/", m.mnt + "/"])  # again: nothing to do, no error
    out = os.path.join(ws.dir, "out")
    run(["rsync", "-a", "--exclude", ".kvcfs", m.mnt + "/", out + "/"])
    for e in valid_vectors():
        with open(os.path.join(out, e["key"] + ".kvc"), "rb") as f:
            assert without_mutable_header(f.read()) == without_mutable_header(vector_bytes(e))
        with open(os.path.join(out, "payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(vector_bytes(e))
    run([KVC, "verify"] + [os.path.join(out, e["key"] + ".kvc") for e in valid_vectors()])


def test_cp_archive_in_and_out(ws):
    m = ws.mount()
    src = source_dir(ws, valid_vectors()[:5])
    run(["cp", "-a", src + "/.", m.mnt + "/"])
    for e in valid_vectors()[:5]:
        assert_published(m, e)
    out = os.path.join(ws.dir, "out")
    os.mkdir(out)
    run(["cp", "-a"] + [m.path(e["key"] + ".kvc") for e in valid_vectors()[:5]] + [out])
    run([KVC, "verify"] + [os.path.join(out, e["key"] + ".kvc") for e in valid_vectors()[:5]])


def test_ls_stat_getfattr_find_du_rm(ws):
    m = ws.mount()
    entries = valid_vectors()[:4]
    src = source_dir(ws, entries)
    run(["cp", "-a", src + "/.", m.mnt + "/"])
    ls = run(["ls", "-l", m.mnt]).stdout
    for e in entries:
        line = next(l for l in ls.splitlines() if l.endswith(e["key"] + ".kvc"))
        assert line.startswith("-r--r--r--"), line
        assert " %d " % e["file_size"] in line, line
    e = entries[0]
    name = m.path(e["key"] + ".kvc")
    out = run(["stat", "-c", "%s %Y %a %F", name]).stdout.split()
    assert out == [str(e["file_size"]), str(e["creation_time"]), "444", "regular"] or \
        out[:3] == [str(e["file_size"]), str(e["creation_time"]), "444"], out
    dump = run(["getfattr", "-d", name]).stdout
    assert 'user.kvc.fingerprint="%s"' % e["fingerprint"] in dump, dump
    assert 'user.kvc.quant_type="%s"' % e["quant_type"] in dump, dump
    found = run(["find", m.mnt, "-name", "*.kvc"]).stdout.split()
    assert sorted(found) == sorted(m.path(x["key"] + ".kvc") for x in entries), found
    du = run(["du", "-b", name]).stdout.split()[0]
    assert int(du) == e["file_size"], du
    run(["du", "-sh", m.mnt])
    run(["rm", name])
    assert not os.path.exists(name)
    assert not os.path.exists(os.path.join(m.root, e["key"] + ".kvc"))
    expect_errno(errno.ENOENT, os.stat, m.path("payload", e["key"]))


def test_python_standard_library(ws):
    m = ws.mount()
    e = valid_vectors()[5]
    data = vector_bytes(e)
    # open/write/os.rename, the way a model server in Python would save
    tmp = m.path("save.%d.tmp" % os.getpid())
    with open(tmp, "wb") as f:
        f.write(data[:100])
        f.write(data[100:])
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, m.path(e["key"] + ".kvc"))
    assert_published(m, e)
    # shutil.copy of a file straight to its key name
    e2 = valid_vectors()[6]
    src = source_dir(ws, [e2])
    shutil.copy(os.path.join(src, e2["key"] + ".kvc"), m.path(e2["key"] + ".kvc"))
    assert_published(m, e2)


KVC = os.environ.get("KVC_BIN")

if __name__ == "__main__":
    main()
