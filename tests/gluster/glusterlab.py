"""A GlusterFS lab on loopback for tests: glusterd bound to 127.0.0.1, volumes
whose bricks live in a temporary directory, FUSE mounts of them, and a
teardown that leaves no daemon and no mount behind.

The gluster CLI refuses 127.0.0.1 and localhost as brick hosts, so an
/etc/hosts alias names the loopback address."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mount"))
from harness import run as run_argv  # noqa: E402

ALIAS = "kvcfs-gluster-lab"


def run(*cmd, check=True):
    return run_argv(list(cmd), check=check)


def gluster_pids():
    out = run("pgrep", "-f", "gluster", check=False).stdout.split()
    return {int(p) for p in out if int(p) != os.getpid()}


class Lab:
    RECOMMENDED = {
        # After a failed link(2) a client may see the winner's file with
        # size 0 for about a second: do not cache stat results.
        "performance.stat-prefetch": "off",
        # Reads of an open file must not fail after a remote unlink.
        "performance.open-behind": "off",
        # Never serve file contents from a client-side cache.
        "performance.quick-read": "off",
        "performance.io-cache": "off",
        "performance.read-ahead": "off",
    }

    def __init__(self, base):
        self.base = base
        self.work = os.path.join(base, "glusterd")
        self.volumes, self.mounts = [], []
        self.before = gluster_pids()
        self.hosts_line = None  # the /etc/hosts line this lab added, if any

    def start(self):
        os.makedirs(os.path.join(self.work, "state"), exist_ok=True)
        with open("/etc/hosts") as f:
            hosts = f.read()
        if ALIAS not in hosts:
            self.hosts_line = "127.0.0.1 %s  # kvcfs tests, removed when they end\n" % ALIAS
            with open("/etc/hosts", "a") as f:
                f.write(("" if hosts.endswith("\n") or not hosts else "\n") + self.hosts_line)
        vol = os.path.join(self.work, "glusterd.vol")
        with open(vol, "w") as f:
            f.write("volume management\n"
                    "    type mgmt/glusterd\n"
                    "    option working-directory %s\n"
                    "    option transport-type socket\n"
                    "    option transport.socket.bind-address 127.0.0.1\n"
                    "    option transport.socket.listen-port 24007\n"
                    "    option ping-timeout 0\n"
                    "    option event-threads 1\n"
                    "end-volume\n" % os.path.join(self.work, "state"))
        run("glusterd", "-f", vol, "-p", os.path.join(self.work, "glusterd.pid"),
            "--log-file=" + os.path.join(self.work, "glusterd.log"))
        for _ in range(100):
            if run("gluster", "--mode=script", "pool", "list", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("glusterd did not answer")

    def volume(self, name, bricks, replica=None, options=None):
        paths = []
        for i in range(bricks):
            p = os.path.join(self.base, "bricks", "%s-%d" % (name, i))
            os.makedirs(p, exist_ok=True)
            paths.append(p)
        cmd = ["gluster", "--mode=script", "volume", "create", name]
        if replica:
            cmd += ["replica", str(replica)]
        cmd += ["%s:%s" % (ALIAS, p) for p in paths] + ["force"]
        run(*cmd)
        for k, v in (options or {}).items():
            run("gluster", "--mode=script", "volume", "set", name, k, v)
        run("gluster", "--mode=script", "volume", "start", name)
        self.volumes.append(name)
        return paths

    def mount(self, name, where):
        os.makedirs(where, exist_ok=True)
        run("mount", "-t", "glusterfs", "%s:/%s" % (ALIAS, name), where)
        self.mounts.append(where)
        return where

    def stop(self):
        for m in reversed(self.mounts):
            if run("umount", m, check=False).returncode != 0:
                run("umount", "-l", m, check=False)
        for v in self.volumes:
            run("gluster", "--mode=script", "volume", "stop", v, "force", check=False)
            run("gluster", "--mode=script", "volume", "delete", v, check=False)
        # Every gluster process this lab started: glusterd, bricks,
        # self-heal daemons, clients.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = gluster_pids() - self.before
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + 5
            while gluster_pids() - self.before and time.time() < deadline:
                time.sleep(0.1)
        self.restore_hosts()
        left = gluster_pids() - self.before
        if left:
            raise RuntimeError("gluster processes left behind: %s" % sorted(left))

    def restore_hosts(self):
        """Take out the /etc/hosts line start() added: the machine is left
        as it was found. Rewritten in place (it may be a bind mount)."""
        if self.hosts_line is None:
            return
        with open("/etc/hosts") as f:
            lines = f.readlines()
        kept = [l for l in lines if l != self.hosts_line]
        with open("/etc/hosts", "w") as f:
            f.writelines(kept)
        self.hosts_line = None
