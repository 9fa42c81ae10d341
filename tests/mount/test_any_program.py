#!/usr/bin/env python3
"""Programs that were not written for kvcfs: the format's reference server
saving its cache directory one syscall at a time (link(2) publishes, EEXIST
adopts, an O_RDWR open writes the hit count), `kvc build -o MOUNT`, and a
writer that cannot compute CRC-32C and asks kvcfs to seal its slab."""
import errno
import os
import struct

from harness import (KVC, expect_errno, kvcache, leftovers, main, metric, payload_of, run,
                     valid_vectors, vector_bytes, verify_slabs, without_mutable_header)

SEAL = "user.kvcfs.seal"
ERROR = "user.kvcfs.error"
_counter = [0]


def entry_with_payload():
    return next(e for e in valid_vectors() if e["payload_length"] > 0)


def reference_tmp_name(key):
    _counter[0] += 1
    return "%s.kvc.%d.%d.tmp" % (key, os.getpid(), _counter[0])


def check_existing(path, key):
    """What the reference server does on EEXIST: read the file under the
    name and judge it (here: it must be a slab of the key)."""
    with open(path, "rb") as f:
        data = f.read()
    return data[:4] == b"KVC\x01" and len(data) >= 72


def reference_save(mnt, key, data, log=None):
    """The reference server's save, step by step: O_EXCL temp, writev,
    fdatasync, close; link to <key>.kvc (EEXIST: check and adopt); unlink
    the temp; fsync the directory. Returns "published" or "adopted"; raises
    what link raised otherwise (the temp is then left to the caller)."""
    tmp = os.path.join(mnt, reference_tmp_name(key))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o644)
    try:
        offset = struct.unpack_from("<Q", data, 48)[0]
        assert os.writev(fd, [data[:offset], data[offset:]]) == len(data)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    slab = os.path.join(mnt, key + ".kvc")
    outcome = "published"
    try:
        os.link(tmp, slab)
    except FileExistsError:
        assert check_existing(slab, key), "the existing file is not a slab"
        outcome = "adopted"
    if log is not None:
        log.append(sorted(os.listdir(mnt)))
    os.unlink(tmp)
    dfd = os.open(mnt, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return outcome


def reference_count_hit(mnt, key, hits, now):
    """Step 4: open the slab read-write and write the hit count (offset 12)
    and last-used time (offset 32); the reference ignores errors here."""
    fd = os.open(os.path.join(mnt, key + ".kvc"), os.O_RDWR)
    try:
        os.pwrite(fd, struct.pack("<I", hits), 12)
        os.pwrite(fd, struct.pack("<Q", now), 32)
    finally:
        os.close(fd)


def header_fields(data):
    return struct.unpack_from("<I", data, 12)[0], struct.unpack_from("<Q", data, 32)[0]


def backing_bytes(m, key):
    with open(os.path.join(m.root, key + ".kvc"), "rb") as f:
        return f.read()


def listing(m):
    return sorted(set(os.listdir(m.mnt)) - {"payload", ".kvcfs"})


def test_reference_save_publishes_counts_hits_and_reloads(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    log = []
    assert reference_save(m.mnt, e["key"], data, log) == "published"
    tmp_names = [n for n in log[0] if n.endswith(".tmp")]
    assert len(tmp_names) == 1 and e["key"] + ".kvc" in log[0], \
        "after link(2) both names exist: %r" % log[0]
    assert listing(m) == [e["key"] + ".kvc"], "unlink removed only the temp's name"
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]
    assert leftovers(m.root) == [], "nothing of the save is left in the backing root"
    assert without_mutable_header(backing_bytes(m, e["key"])) == without_mutable_header(data)
    assert metric(m, "publishes_total") == 1

    reference_count_hit(m.mnt, e["key"], 41, 1_700_000_123)
    assert header_fields(backing_bytes(m, e["key"])) == (41, 1_700_000_123)
    assert os.getxattr(m.path(e["key"] + ".kvc"), "user.kvc.hit_count") == b"41"
    assert os.getxattr(m.path(e["key"] + ".kvc"), "user.kvc.last_used_time") == b"1700000123"

    m.stop()
    m.start()
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        reloaded = f.read()
    assert without_mutable_header(reloaded) == without_mutable_header(data)
    assert header_fields(reloaded)[0] == 42, "the program's count, plus this open's hit"
    with open(m.path("payload", e["key"]), "rb") as f:
        assert f.read() == payload_of(data)


def test_reference_save_adopts_an_existing_slab(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    assert reference_save(m.mnt, e["key"], data) == "published"
    first = os.stat(os.path.join(m.root, e["key"] + ".kvc"))
    # The kernel knows the name: EEXIST before the daemon is asked.
    assert reference_save(m.mnt, e["key"], data) == "adopted"
    # Published behind the mount's back, after the mount saw a miss: the
    # kernel looks a link's target up afresh, and it is EEXIST as well.
    other = valid_vectors()[-1]
    expect_errno(errno.ENOENT, os.stat, m.path(other["key"] + ".kvc"))
    with open(os.path.join(m.root, other["key"] + ".kvc"), "wb") as f:
        f.write(vector_bytes(other))
    tmp = m.path(reference_tmp_name(other["key"]))
    with open(tmp, "wb") as f:
        f.write(vector_bytes(other))
    expect_errno(errno.EEXIST, os.link, tmp, m.path(other["key"] + ".kvc"))
    assert os.path.exists(tmp), "EEXIST keeps the temp, as link(2) does"
    os.unlink(tmp)
    assert os.stat(os.path.join(m.root, e["key"] + ".kvc")).st_ino == first.st_ino
    assert verify_slabs(m.root) == sorted([e["key"] + ".kvc", other["key"] + ".kvc"])
    assert leftovers(m.root) == []
    assert listing(m) == sorted([e["key"] + ".kvc", other["key"] + ".kvc"])


def test_reference_save_of_invalid_content_fails_cleanly(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = bytearray(vector_bytes(e))
    data[-1] ^= 0xFF  # the payload no longer matches its CRC
    tmp = m.path(reference_tmp_name(e["key"]))
    with open(tmp, "wb") as f:
        f.write(data)
    expect_errno(errno.EBADMSG, os.link, tmp, m.path(e["key"] + ".kvc"))
    assert os.path.exists(tmp), "the temp stays, with the reason"
    assert os.getxattr(tmp, ERROR).startswith(b"crc_mismatch")
    expect_errno(errno.ENOENT, os.stat, m.path(e["key"] + ".kvc"))
    assert not any(n.endswith(".kvc") for n in os.listdir(m.root))
    with open(tmp, "rb") as f:
        assert f.read() == bytes(data), "the refused bytes are untouched"
    os.unlink(tmp)
    assert listing(m) == [], listing(m)
    assert leftovers(m.root) == [], leftovers(m.root)
    assert metric(m, "rejected_total") == 1


def test_staging_name_after_link(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    tmp = m.path("incoming")
    with open(tmp, "wb") as f:
        f.write(data)
    held = os.open(tmp, os.O_RDWR)
    on = metric(m, "passthrough") == 1
    if on:
        # The kernel writes a passthrough file itself, so a link while a
        # writer holds it publishes a copy (test_passthrough); the names
        # are the same file only when the writer closed first.
        os.close(held)
        held = os.open(tmp, os.O_RDONLY)
    os.link(tmp, m.path(e["key"] + ".kvc"))
    slab_st = os.stat(m.path(e["key"] + ".kvc"))
    backing_ino = os.stat(os.path.join(m.root, e["key"] + ".kvc")).st_ino
    # Two names of one file, as link(2) makes anywhere: the NFS-safe
    # lock-file idiom checks stat(tmp).st_nlink == 2, find -samefile and
    # rsync -H compare st_ino.
    tmp_st = os.stat(tmp)
    assert (tmp_st.st_ino, tmp_st.st_nlink) == (slab_st.st_ino, 2), (tmp_st, slab_st)
    assert slab_st.st_nlink == 2, slab_st
    assert os.path.samefile(tmp, m.path(e["key"] + ".kvc"))
    # Reads through the staging name: the published bytes; writes: EPERM.
    with open(tmp, "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(data)
    if not on:
        expect_errno(errno.EPERM, os.pwrite, held, b"x", 100)
    assert os.pread(held, 3, 0) == b"KVC"
    os.close(held)
    expect_errno(errno.EPERM, os.open, tmp, os.O_WRONLY)
    expect_errno(errno.EPERM, os.open, tmp, os.O_RDWR)
    # The name is taken now, whatever the kernel remembers.
    expect_errno(errno.EEXIST, os.link, tmp, m.path(e["key"] + ".kvc"))
    # mv of the linked name onto its slab: the moved name goes, the slab
    # stays; unlink of the staging name would have done the same.
    os.rename(tmp, m.path(e["key"] + ".kvc"))
    expect_errno(errno.ENOENT, os.stat, tmp)
    assert os.stat(m.path(e["key"] + ".kvc")).st_nlink == 1
    assert os.stat(os.path.join(m.root, e["key"] + ".kvc")).st_ino == backing_ino
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]
    with open(m.path(e["key"] + ".kvc"), "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(data)
    assert leftovers(m.root) == []


def test_staging_name_after_its_slab_is_removed(ws):
    """link(incoming, <key>.kvc), then the slab's name goes (rm, eviction):
    the staging name still names the file, as any hard link does. It was
    listed but stat and rm said ENOENT, and a create of the name EEXIST:
    the name was stuck until the kernel forgot the node."""
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    tmp = m.path("incoming")
    with open(tmp, "wb") as f:
        f.write(data)
    os.link(tmp, m.path(e["key"] + ".kvc"))
    assert os.stat(tmp).st_nlink == 2
    os.unlink(m.path(e["key"] + ".kvc"))
    assert "incoming" in os.listdir(m.mnt)
    assert os.stat(tmp).st_size == len(data)
    assert os.stat(tmp).st_nlink == 1
    with open(tmp, "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(data)
    os.unlink(tmp)
    assert "incoming" not in os.listdir(m.mnt)
    with open(tmp, "wb") as f:  # the name is free again
        f.write(data)
    os.rename(tmp, m.path(e["key"] + ".kvc"))
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]
    assert leftovers(m.root) == []


def test_lock_file_idiom_after_unlink_of_the_temp(ws):
    """link(tmp, key), unlink(tmp): the slab is left with one name again."""
    m = ws.mount()
    e = entry_with_payload()
    tmp = m.path("lockish")
    with open(tmp, "wb") as f:
        f.write(vector_bytes(e))
    slab = m.path(e["key"] + ".kvc")
    os.link(tmp, slab)
    assert os.stat(tmp).st_nlink == 2 and os.stat(slab).st_nlink == 2
    os.unlink(tmp)
    assert os.stat(slab).st_nlink == 1
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]


def test_linked_name_after_its_slab_went(ws):
    """link(s, K); rm K; then rename(s, K) said 0 and published nothing
    (the bytes were lost), a second link(s, K) said EEXIST for a free name,
    and stat and reads of s followed whatever slab K held next."""
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    slab = m.path(e["key"] + ".kvc")
    for finish in ("rename", "link"):
        s = m.path("s-" + finish)
        with open(s, "wb") as f:
            f.write(data)
        os.link(s, slab)
        os.unlink(slab)
        assert os.stat(s).st_size == len(data)
        getattr(os, finish)(s, slab)
        with open(slab, "rb") as f:
            assert without_mutable_header(f.read()) == without_mutable_header(data), finish
        assert os.path.exists(s) == (finish == "link"), finish
        if finish == "link":
            os.unlink(s)
        os.unlink(slab)
    assert metric(m, "staging_files") == 0
    # Linked, the slab removed, the key published again with other (fewer)
    # bytes: the staging name is still its own file, its size and bytes.
    fp, ctx, tokens = bytes(range(32)), bytes(range(32, 64)), [9, 9, 9]
    key = kvcache.cache_key(fp, "f16", ctx, tokens)
    big = kvcache.build_slab(fp, "f16", ctx, tokens, b"L" * 100000, hostname=b"t")
    small = kvcache.build_slab(fp, "f16", ctx, tokens, b"S" * 1000, hostname=b"t")
    b = m.path("b.part")
    with open(b, "wb") as f:
        f.write(big)
    os.link(b, m.path(key + ".kvc"))
    os.unlink(m.path(key + ".kvc"))
    kvcache.save(m.mnt, key, small)
    st = os.stat(b)
    assert (st.st_size, st.st_nlink) == (len(big), 1), st
    with open(b, "rb") as f:
        assert without_mutable_header(f.read()) == without_mutable_header(big)
    os.unlink(b)
    assert leftovers(m.root) == []


def test_link_then_rename_gives_the_descriptor_back(ws):
    """link(s, K) then rename(s, K.kvc): s is gone and nobody reads it, so
    the daemon keeps no descriptor of it (each one counted against its
    user until the kernel forgot the inode)."""
    m = ws.mount(options=["staging_per_user=5"])
    for i, e in enumerate(valid_vectors()[:8]):
        s = m.path("c%d.part" % i)
        with open(s, "wb") as f:
            f.write(vector_bytes(e))
        os.link(s, m.path(e["key"] + ".kvc"))
        os.rename(s, m.path(e["key"] + ".kvc"))
    assert metric(m, "staging_files") == 0


def test_other_links_stay_eperm(ws):
    m = ws.mount()
    e, other = valid_vectors()[0], valid_vectors()[1]
    kvcache_save(m, e)
    slab = m.path(e["key"] + ".kvc")
    expect_errno(errno.EPERM, os.link, slab, m.path("copy"))
    expect_errno(errno.EPERM, os.link, slab, m.path(other["key"] + ".kvc"))
    expect_errno(errno.EPERM, os.link, m.path("payload", e["key"]), m.path("p"))
    with open(m.path("staging"), "wb") as f:
        f.write(vector_bytes(other))
    expect_errno(errno.EPERM, os.link, m.path("staging"), m.path("another-name"))
    expect_errno(errno.EPERM, os.link, m.path("staging"), m.path("payload", other["key"]))
    expect_errno(errno.EPERM, os.link, m.path(".kvcfs", "metrics"), m.path("m"))
    # The key must be the content's: same as rename.
    expect_errno(errno.EBADMSG, os.link, m.path("staging"), slab.replace(e["key"], "0" * 64))
    assert listing(m) == sorted([e["key"] + ".kvc", "staging"])
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]


def kvcache_save(m, e):
    kvcache.save(m.mnt, e["key"], vector_bytes(e))


def test_kvc_build_publishes_into_the_mount(ws):
    m = ws.mount()
    payload = os.path.join(ws.dir, "payload.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(3 << 20))
    fp, ctx = "ab" * 32, "cd" * 32
    run([KVC, "build", "--fingerprint=" + fp, "--quant=f16", "--ctx=" + ctx,
         "--tokens=1,2,3,4", "--payload=" + payload, "-o", m.mnt])
    key = kvcache.cache_key(bytes.fromhex(fp), "f16", bytes.fromhex(ctx), [1, 2, 3, 4])
    assert verify_slabs(m.root) == [key + ".kvc"]
    assert listing(m) == [key + ".kvc"]
    with open(m.path("payload", key), "rb") as f, open(payload, "rb") as g:
        assert f.read() == g.read()
    assert leftovers(m.root) == []


def test_hit_count_writes_touch_only_the_two_fields(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    kvcache_save(m, e)
    p = m.path(e["key"] + ".kvc")
    fd = os.open(p, os.O_RDWR)
    try:
        assert os.pwrite(fd, struct.pack("<I", 7), 12) == 4
        assert os.pwrite(fd, struct.pack("<Q", 1234), 32) == 8
        assert os.pwrite(fd, b"\x09", 12) == 1  # part of a field
        for off, what in ((0, b"X"), (16, b"\0" * 4), (11, b"\0\0"), (12, b"\0" * 5),
                          (39, b"\0\0"), (64, b"\0" * 4), (len(data) - 1, b"\0"),
                          (len(data), b"\0")):
            expect_errno(errno.EPERM, os.pwrite, fd, what, off)
        assert header_fields(os.pread(fd, 40, 0)) == (9, 1234), "the writer sees its write"
    finally:
        os.close(fd)
    stored = backing_bytes(m, e["key"])
    assert header_fields(stored) == (9, 1234)
    assert without_mutable_header(stored) == without_mutable_header(data)
    assert os.getxattr(p, "user.kvc.hit_count") == b"9"
    with open(p, "rb") as f:  # a later reader: its own hit on top
        assert header_fields(f.read(40))[0] == 10
    expect_errno(errno.EPERM, os.open, p, os.O_RDWR | os.O_TRUNC)
    expect_errno(errno.EPERM, os.open, p, os.O_RDWR | os.O_APPEND)
    expect_errno(errno.EPERM, os.open, m.path("payload", e["key"]), os.O_RDWR)
    verify_slabs(m.root)


def test_header_read_through_the_mount_is_the_persisted_one(ws):
    m = ws.mount()
    e = entry_with_payload()
    kvcache_save(m, e)
    p = m.path(e["key"] + ".kvc")
    for _ in range(4):
        with open(p, "rb") as f:
            f.read()
    with open(p, "rb") as f:
        head = f.read(40)
    hits, used = header_fields(head)
    assert hits == header_fields(vector_bytes(e))[0] + 5, "five opens, five hits"
    assert os.getxattr(p, "user.kvc.hit_count") == str(hits).encode()
    assert os.getxattr(p, "user.kvc.last_used_time") == str(used).encode()
    assert header_fields(backing_bytes(m, e["key"])) == (hits, used)


def zero_crc(data):
    return data[:64] + b"\0\0\0\0" + data[68:]


def test_sealed_slabs_match_the_vectors(ws):
    m = ws.mount()
    entries = [e for e in valid_vectors() if e["payload_length"] > 0]
    assert entries
    for i, e in enumerate(entries):
        data = vector_bytes(e)
        unsealed = zero_crc(data)
        assert unsealed != data
        slab = m.path(e["key"] + ".kvc")
        staging = m.path("sealed-%d" % i)
        with open(staging, "wb") as f:
            f.write(unsealed)
        expect_errno(errno.EBADMSG, os.rename, staging, slab)  # not asked: refused
        assert os.getxattr(staging, ERROR).startswith(b"crc_mismatch")
        os.setxattr(staging, SEAL, b"1")
        assert os.getxattr(staging, SEAL) == b"1"
        if i % 3 == 0:
            os.rename(staging, slab)
        elif i % 3 == 1:
            os.link(staging, slab)
            os.unlink(staging)
        else:  # created under its key name, sealed through the descriptor
            os.unlink(staging)
            fd = os.open(slab, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, unsealed)
            os.setxattr(fd, SEAL, b"")
            os.close(fd)
        stored = backing_bytes(m, e["key"])
        assert without_mutable_header(stored) == without_mutable_header(data), e["file"]
        with open(m.path("payload", e["key"]), "rb") as f:
            assert f.read() == payload_of(data)
    verify_slabs(m.root)
    assert leftovers(m.root) == []
    # Sealing is a request on a file not yet published.
    expect_errno(errno.EPERM, os.setxattr, m.path(entries[0]["key"] + ".kvc"), SEAL, b"1")


def test_seal_validates_everything_else(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = bytearray(zero_crc(vector_bytes(e)))
    staging = m.path("wrong-key")
    with open(staging, "wb") as f:
        f.write(data)
    os.setxattr(staging, SEAL, b"1")
    other = "0" * 64
    expect_errno(errno.EBADMSG, os.rename, staging, m.path(other + ".kvc"))
    assert os.getxattr(staging, ERROR).startswith(b"key_mismatch")
    os.removexattr(staging, SEAL)
    expect_errno(errno.ENODATA, os.getxattr, staging, SEAL)
    truncated = m.path("truncated")
    with open(truncated, "wb") as f:
        f.write(bytes(data[:-1]))
    os.setxattr(truncated, SEAL, b"1")
    expect_errno(errno.EBADMSG, os.rename, truncated, m.path(e["key"] + ".kvc"))
    assert not any(n.endswith(".kvc") for n in os.listdir(m.root))


def test_python_example_saves_sealed(ws):
    m = ws.mount()
    fp, ctx = os.urandom(32), os.urandom(32)
    tokens = list(range(100))
    payload = os.urandom(1 << 20)
    key = kvcache.cache_key(fp, "q8_0", ctx, tokens)
    slab = kvcache.build_slab(fp, "q8_0", ctx, tokens, payload, compute_crc=False)
    assert struct.unpack_from("<I", slab, 64)[0] == 0
    kvcache.save_sealed(m.mnt, key, slab)
    assert verify_slabs(m.root) == [key + ".kvc"]
    assert kvcache.restore(m.mnt, key) == payload
    assert struct.unpack_from("<I", backing_bytes(m, key), 64)[0] == kvcache.crc32c(payload)


def test_tmp_sweeper_does_not_lose_a_write_in_flight(ws):
    m = ws.mount()
    e = entry_with_payload()
    data = vector_bytes(e)
    with open(m.path("in-flight"), "wb") as f:
        f.write(data[:100])
        f.flush()
        for n in os.listdir(m.root):  # a program sweeping its own *.tmp
            if n.endswith(".tmp") or n.endswith(".kvc"):
                os.unlink(os.path.join(m.root, n))
        f.write(data[100:])
    os.rename(m.path("in-flight"), m.path(e["key"] + ".kvc"))
    assert verify_slabs(m.root) == [e["key"] + ".kvc"]


if __name__ == "__main__":
    main()
