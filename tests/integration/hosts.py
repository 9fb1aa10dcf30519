"""Two real hosts on this machine: network namespaces, each with its own sshd and hostname.

`cheap` and `fast` each get a private veth link (10.201.0.0/30 and 10.201.0.4/30, reachable
from this machine only), a generated host key, key-only login for a test user made for the
run, and their own hostname (unshare --uts). The cheap host's sshd, and so every session and
job under it, sits in a cgroup v1 cpu cgroup capped at 25% of a core. Everything made here is
removed on teardown, pass or fail: daemons, control masters, namespaces, veths, cgroups, user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

USER = "routerjob"
CGROUP = Path("/sys/fs/cgroup/cpu/router-test-cheap")
HOSTS = {"cheap": ("10.201.0.1", "10.201.0.2"), "fast": ("10.201.0.5", "10.201.0.6")}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


@dataclass
class Hosts:
    tmp: Path
    key: Path
    sshd: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return HOSTS[name][1]

    def ssh_options(self) -> list[str]:
        return [f"IdentityFile={self.key}", f"UserKnownHostsFile={self.tmp / 'known_hosts'}",
                "StrictHostKeyChecking=accept-new", "KexAlgorithms=curve25519-sha256",
                "IdentitiesOnly=yes"]

    def kill_sshd(self, name: str) -> None:
        """The listener, every session under it and what runs there: the host is gone. (`ip netns exec`
        forks, so the listener is found by its config file, not by our child's pid.)"""
        proc = self.sshd.pop(name, None)
        if proc is None:
            return
        tree = [pid for top in listeners(self.tmp / name / "sshd_config") for pid in _tree(top)]
        for pid in tree:
            _kill(pid)                   # orphans re-parent to us (subreaper)...
        time.sleep(0.2)
        for pid in tree:
            _reap(pid)                   # ...so we can reap them: no zombies left behind
        proc.kill()
        proc.wait()


def listeners(conf: Path) -> list[int]:
    """sshd processes started with this config file."""
    out = sh("pgrep", "-f", f"sshd.* -f {conf}", check=False).stdout.split()
    return [int(p) for p in out]


def _tree(pid: int) -> list[int]:
    """A process and all its descendants: the host's sessions and what runs in them."""
    children = [int(p) for p in sh("pgrep", "-P", str(pid), check=False).stdout.split()]
    return [pid] + [d for child in children for d in _tree(child)]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _subreaper() -> None:
    """Orphans of the hosts' sshd re-parent to this process instead of to pid 1."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER


def _wait_port(ns: str, address: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = sh("ip", "netns", "exec", ns, "bash", "-c", f"exec 3<>/dev/tcp/{address}/22",
               check=False)
        if r.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd on {address} did not come up")


def _user(tmp: Path) -> Path:
    sh("userdel", "-r", USER, check=False)
    sh("useradd", "-m", "-s", "/bin/sh", USER)
    sh("usermod", "-p", "*", USER)   # "!" (locked) would be refused by sshd without PAM
    home = Path(pwd.getpwnam(USER).pw_dir)
    key = tmp / "id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(f"{key}.pub", ssh_dir / "authorized_keys")
    uid = pwd.getpwnam(USER).pw_uid
    for p in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(p, uid, uid)
    return key


def _namespace(name: str) -> None:
    ns, host_if, ns_if = f"rt-{name}", f"rt-{name}-h", f"rt-{name}-n"
    outer, inner = HOSTS[name]
    sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", host_if, check=False)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    sh("ip", "link", "set", ns_if, "netns", ns)
    sh("ip", "addr", "add", f"{outer}/30", "dev", host_if)
    sh("ip", "link", "set", host_if, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{inner}/30", "dev", ns_if)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")


def start_sshd(hosts: Hosts, name: str) -> None:
    conf_dir = hosts.tmp / name
    conf_dir.mkdir(exist_ok=True)
    host_key = conf_dir / "host_key"
    if not host_key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    conf = conf_dir / "sshd_config"
    conf.write_text(
        f"ListenAddress {HOSTS[name][1]}\nPort 22\nHostKey {host_key}\n"
        f"PidFile {conf_dir / 'sshd.pid'}\nStrictModes no\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"AllowUsers {USER}\nMaxSessions 100\nMaxStartups 100\n"
        "KexAlgorithms curve25519-sha256\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["ip", "netns", "exec", f"rt-{name}", "unshare", "--uts", "sh", "-c",
                             f'hostname {name} && exec /usr/sbin/sshd -D -e -f "$0"', str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(conf_dir / "sshd.log", "ab"))
    hosts.sshd[name] = proc
    _wait_port(f"rt-{name}", HOSTS[name][1])
    if name == "cheap":   # the listener, so every session and job it starts is capped
        for pid in listeners(conf):
            try:
                (CGROUP / "cgroup.procs").write_text(str(pid))
            except ProcessLookupError:   # a pre-auth child of the listener, already gone
                pass


def _cgroup() -> None:
    CGROUP.mkdir(exist_ok=True)
    (CGROUP / "cpu.cfs_period_us").write_text("100000")
    (CGROUP / "cpu.cfs_quota_us").write_text("25000")


def teardown(hosts: Hosts | None) -> None:
    if hosts is not None:
        for name in list(hosts.sshd):
            hosts.kill_sshd(name)
    for path in Path("/tmp").glob("router-ssh-*/*"):    # control masters of this run
        sh("ssh", "-o", f"ControlPath={path}", "-O", "exit", "x", check=False)
    sh("pkill", "-KILL", "-u", USER, check=False)
    time.sleep(0.2)
    for pid in sh("pgrep", "-u", USER, check=False).stdout.split():
        _reap(int(pid))                  # killed jobs whose parents died: now ours to reap
    for name in HOSTS:
        sh("ip", "netns", "del", f"rt-{name}", check=False)
        sh("ip", "link", "del", f"rt-{name}-h", check=False)
    if CGROUP.exists():
        deadline = time.monotonic() + 10
        while (CGROUP / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            CGROUP.rmdir()
        except OSError:
            pass
    sh("userdel", "-r", USER, check=False)


def setup() -> Hosts:
    _subreaper()
    tmp = Path(tempfile.mkdtemp(prefix="router-hosts-"))
    os.chmod(tmp, 0o755)
    hosts = Hosts(tmp, _user(tmp))
    _cgroup()
    for name in HOSTS:
        _namespace(name)
        start_sshd(hosts, name)
    return hosts

