#!/usr/bin/env python3
"""Every example, run against a real mount: shell, Python, C (built against
an installed libkvc found with pkg-config), the mount helper, the fstab line
and the systemd unit."""
import configparser
import glob
import os
import re
import shutil
import subprocess
import sys

from harness import KVC, main, run

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(TOP, "examples")
BUILD = os.environ.get("KVC_BUILD_ROOT")
HELPER = os.environ.get("KVCFS_TEST_HELPER")


def built_slab(ws):
    out = os.path.join(ws.dir, "slabs")
    os.makedirs(out, exist_ok=True)
    payload = os.path.join(ws.dir, "state.bin")
    with open(payload, "wb") as f:
        f.write(os.urandom(200_000))
    p = run([KVC, "build", "--fingerprint", "ab" * 32, "--quant", "q4_k_m", "--ctx", "cd" * 32,
             "--tokens", "1,2,3,4,5", "--payload", payload, "-o", out])
    return p.stdout.split()[0]


def test_readme_demo(ws):
    """The README's first command, against this build."""
    p = run(["bash", os.path.join(EXAMPLES, "demo.sh")],
            env=dict(os.environ, KVCFS_BUILD_DIR=BUILD, KVCFS_DEMO_DIR=os.path.join(ws.dir, "demo")))
    assert "restored payload is identical" in p.stdout, p.stdout
    assert "Bad message" in p.stderr + p.stdout, p.stderr
    assert re.search(r"^kvcfs_publishes_total +1$", p.stdout, re.M), p.stdout
    assert "refused, as expected" in p.stdout and "errno=EBADMSG" in p.stdout, p.stdout
    assert "\033" not in p.stdout, "colour codes written to a pipe"
    assert not os.path.ismount(os.path.join(ws.dir, "demo", "mnt"))


def test_readme_demo_rejects_unknown_arguments(ws):
    for bad in (["--kep"], ["--keep", "x"], ["help"]):
        p = subprocess.run(["bash", os.path.join(EXAMPLES, "demo.sh")] + bad,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and p.stderr.startswith("usage:") and p.stdout == "", (bad, p)


def test_readme_session_runs_as_written(ws):
    """The README's session block, run by bash -e as it stands, with this
    build's binaries in place of build/."""
    with open(os.path.join(EXAMPLES, "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("## A session", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert "$PWD/build/" in block, block
    script = block.replace("$PWD/build/", BUILD.rstrip("/") + "/")
    tmp = os.path.join(ws.dir, "session")
    os.makedirs(tmp)
    try:
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ws.dir,
                           env=dict(os.environ, TMPDIR=tmp), capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert re.search(r"^4 [0-9a-f]{64}$", p.stdout, re.M), p.stdout
        assert re.search(r"^kvcfs_publishes_total +1$", p.stdout, re.M), p.stdout
    finally:
        for d, _, _ in os.walk(tmp):
            if os.path.ismount(d):
                subprocess.run(["fusermount3", "-u", d], capture_output=True)


def test_shell_example(ws):
    m = ws.mount()
    slab = built_slab(ws)
    p = run(["bash", os.path.join(EXAMPLES, "shell", "save-and-restore.sh"), m.mnt, slab])
    assert "identical" in p.stdout and "user.kvc.fingerprint" in p.stdout, p.stdout
    assert [n for n in os.listdir(m.root) if n.endswith(".kvc")] == []


def test_python_example(ws):
    m = ws.mount()
    p = run([sys.executable, os.path.join(EXAMPLES, "python", "example.py"), m.mnt])
    assert "longest cached prefix: 512 of 600 tokens" in p.stdout, p.stdout
    assert "corrupt save refused" in p.stdout, p.stdout
    assert "sealed save of 8388608 bytes published" in p.stdout, p.stdout


def test_c_example_against_installed_libkvc(ws):
    dest = os.path.join(ws.dir, "dest")
    run(["meson", "install", "-C", BUILD, "--no-rebuild", "--quiet", "--destdir", dest])
    pcs = glob.glob(os.path.join(dest, "**", "libkvc.pc"), recursive=True)
    assert len(pcs) == 1, pcs
    assert glob.glob(os.path.join(dest, "**", "include", "kvc", "kvc.h"), recursive=True)
    for page in ("man1/kvcfs.1", "man1/kvc.1", "man5/kvc.5"):
        assert glob.glob(os.path.join(dest, "**", page), recursive=True), page
    assert glob.glob(os.path.join(dest, "**", "mount.fuse.kvcfs"), recursive=True)
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]), PKG_CONFIG_SYSROOT_DIR=dest)
    flags = run(["pkg-config", "--cflags", "--libs", "libkvc"], env=env).stdout.split()
    exe = os.path.join(ws.dir, "example")
    sanitize = os.environ.get("KVC_SANITIZE", "none")
    if sanitize != "none":  # the installed library is instrumented too
        flags = ["-fsanitize=" + sanitize] + flags
    run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
         os.path.join(EXAMPLES, "c", "example.c")] + flags, env=env)
    libdir = next(f[2:] for f in flags if f.startswith("-L"))
    m = ws.mount()
    p = run([exe, m.mnt], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
    assert "longest cached prefix: 512 of 600 tokens" in p.stdout, p.stdout
    assert "restored 131072 bytes, identical" in p.stdout, p.stdout


def test_c_example_from_the_build_tree(ws):
    """docs/library.md's command: the example as built with the tree."""
    m = ws.mount()
    p = run([os.path.join(BUILD, "examples", "kvc-example"), m.mnt])
    assert "restored 131072 bytes, identical" in p.stdout, p.stdout


def fstab_fields():
    with open(os.path.join(EXAMPLES, "fstab")) as f:
        line = next(l for l in f if l.strip() and not l.startswith("#"))
    return line.split()


def test_mount_helper_with_fstab_options(ws):
    """What mount(8) runs for the fstab line: HELPER ROOT MNT -o OPTIONS."""
    what, where, fstype, options = fstab_fields()[:4]
    assert fstype == "fuse.kvcfs"
    root, mnt = ws.root(), ws.root("mnt")
    # mount(8) adds rw and passes the fstab options through.
    run(["sh", HELPER, root, mnt, "-o", "rw," + options])
    try:
        assert os.path.ismount(mnt)
        with open("/proc/mounts") as f:
            line = next(l for l in f if l.split()[1] == mnt)
        assert line.split()[0] == root and line.split()[2] == "fuse.kvcfs", line
        metrics = open(os.path.join(mnt, ".kvcfs", "metrics")).read()
        assert "kvcfs_budget_bytes %d\n" % (100 << 30) in metrics
    finally:
        subprocess.run(["fusermount3", "-u", mnt])
    # The systemd unit says the same thing as the fstab line.
    unit = configparser.ConfigParser()
    unit.optionxform = str
    unit.read(os.path.join(EXAMPLES, "systemd", "mnt-kvc.mount"))
    assert unit["Mount"]["What"] == what and unit["Mount"]["Where"] == where
    assert unit["Mount"]["Type"] == fstype
    assert "max_size=100G" in unit["Mount"]["Options"]
    esc = run(["systemd-escape", "-p", "--suffix=mount", where]).stdout.strip() \
        if shutil.which("systemd-escape") else "mnt-kvc.mount"
    assert esc == "mnt-kvc.mount", esc


def test_mount_t_fuse_kvcfs(ws):
    """mount -t fuse.kvcfs, through a helper where mount(8) looks for it.
    Root only, and only where no real helper is installed."""
    target = "/sbin/mount.fuse.kvcfs"
    if os.geteuid() != 0 or os.path.exists(target):
        print("    (skipped: needs root and no installed helper)")
        return
    root, mnt = ws.root(), ws.root("mnt")
    shutil.copy(HELPER, target)
    os.chmod(target, 0o755)
    try:
        run(["mount", "-t", "fuse.kvcfs", root, mnt, "-o", "max_size=1G,nofail"])
        try:
            assert os.path.ismount(mnt)
            assert "kvcfs_budget_bytes 1073741824" in open(os.path.join(mnt, ".kvcfs", "metrics")).read()
        finally:
            run(["umount", mnt])
    finally:
        os.unlink(target)


if __name__ == "__main__":
    main()
