#!/usr/bin/env python3
"""A refused publish is explained wherever its user looks: by the errno, in
.kvcfs/refusals (each reader sees the refusals of its own uid), and in the
daemon's log (stderr with -f, syslog once detached), rate-limited."""
import errno
import os
import subprocess
import time

from harness import KVCFS, expect_errno, main, mounted, valid_vectors, vector_bytes

ERROR = "user.kvcfs.error"


def refusals(m_or_mnt):
    mnt = getattr(m_or_mnt, "mnt", m_or_mnt)
    with open(os.path.join(mnt, ".kvcfs", "refusals")) as f:
        return f.read().splitlines()


def garbage_for(e):
    """A slab of e's key whose payload no longer matches its CRC."""
    data = bytearray(vector_bytes(e))
    data[-1] ^= 0xFF
    return bytes(data)


def entry():
    return next(v for v in valid_vectors() if v["payload_length"] > 0)


def test_every_publish_path_is_explained(ws):
    m = ws.mount()
    e = entry()
    slab = m.path(e["key"] + ".kvc")
    bad = garbage_for(e)

    # cp garbage <key>.kvc: close fails, no staging file is left to ask.
    fd = os.open(slab, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bad)
    expect_errno(errno.EBADMSG, os.close, fd)
    # rename and link of a staging file.
    for way, name in (("rename", "r.part"), ("link", "l.part")):
        with open(m.path(name), "wb") as f:
            f.write(bad)
        expect_errno(errno.EBADMSG, getattr(os, way), m.path(name), slab)
        os.unlink(m.path(name))
    lines = refusals(m)
    assert len(lines) == 3, lines
    for line, name in zip(lines, (e["key"] + ".kvc", "r.part", "l.part")):
        fields = line.split(" ", 5)
        assert int(fields[0]) > time.time() - 60, line
        assert fields[1:5] == ["uid=%d" % os.getuid(), "name=" + name, "key=" + e["key"],
                               "errno=EBADMSG"], line
        assert "crc" in fields[5].lower(), line
    # The same, one line each, in the foreground daemon's stderr.
    logged = [l for l in m.stderr().splitlines() if "refused" in l]
    assert len(logged) == 3, logged
    assert all(e["key"] in l and "EBADMSG" in l for l in logged), logged


def test_names_cannot_forge_lines(ws):
    """A staging name cannot end its line (a newline, or U+2028, which
    some readers take for one) nor fake a field: names are percent-encoded
    (space, '=', '%' and every byte that is not printable ASCII)."""
    m = ws.mount()
    e = entry()
    for i, name in enumerate(("evil\n1 uid=0 name=x key=y errno=EOK fine.part",
                              "ok\u2028" + "1 uid=0 name=srv errno=EIO forged.part",
                              "x key=%s errno=EPERM.part" % ("00" * 32))):
        with open(m.path(name), "wb") as f:
            f.write(garbage_for(e))
        expect_errno(errno.EBADMSG, os.rename, m.path(name), m.path(e["key"] + ".kvc"))
        os.unlink(m.path(name))
        lines = refusals(m)
        assert len(lines) == i + 1, lines
        fields = lines[-1].split(" ")
        assert [f.split("=")[0] for f in fields[1:5]] == ["uid", "name", "key", "errno"], lines
        assert fields[2].count("=") == 1 and fields[3] == "key=" + e["key"], lines
    assert "evil%0A1%20uid%3D0" in lines[0] and "ok%E2%80%A81%20uid%3D0" in lines[1], lines
    assert all(l.isascii() for l in lines)


def test_log_is_rate_limited(ws):
    """A loop of refusals cannot flood the log: a burst gets through, the
    rest is counted in one line; .kvcfs/refusals keeps the latest 256."""
    m = ws.mount()
    e = entry()
    bad = garbage_for(e)
    for i in range(300):
        fd = os.open(m.path(e["key"] + ".kvc"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, bad)
        expect_errno(errno.EBADMSG, os.close, fd)
    logged = [l for l in m.stderr().splitlines() if "refused" in l]
    assert 10 <= len(logged) <= 60, len(logged)
    assert len(refusals(m)) == 256
    # The next line after the window says how many were left out.
    time.sleep(10.5)
    fd = os.open(m.path(e["key"] + ".kvc"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bad)
    expect_errno(errno.EBADMSG, os.close, fd)
    assert any("were left out" in l for l in m.stderr().splitlines()), m.stderr()[-500:]


def test_detached_daemon_explains_through_the_mount(ws):
    """Started as the README starts it (no -f): stderr is gone, and the
    reason is still there for whoever made the refusal."""
    root, mnt = ws.root(), ws.root("detached")
    p = subprocess.run([KVCFS, root, mnt], capture_output=True, text=True, timeout=30)
    try:
        assert p.returncode == 0, p.stderr
        deadline = time.time() + 20
        while not mounted(mnt):
            assert time.time() < deadline, "not mounted"
            time.sleep(0.02)
        e = entry()
        fd = os.open(os.path.join(mnt, e["key"] + ".kvc"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, garbage_for(e))
        expect_errno(errno.EBADMSG, os.close, fd)
        lines = refusals(mnt)
        assert len(lines) == 1 and "errno=EBADMSG" in lines[0], lines
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        deadline = time.time() + 20
        while subprocess.run(["pgrep", "-f", "kvcfs %s %s" % (root, mnt)],
                             capture_output=True).returncode == 0:
            if time.time() > deadline:
                subprocess.run(["pkill", "-9", "-f", "kvcfs %s %s" % (root, mnt)])
                raise AssertionError("the detached kvcfs did not exit after unmount")
            time.sleep(0.05)


if __name__ == "__main__":
    main()
