"""Jobs run outside the daemon's sandbox when the spawner is socket-activated as its own unit
(deploy/systemd/router-spawner.socket + router-spawner@.service).

systemd is not PID 1 here, so the two halves are stood in for by real parts: systemd's own
`systemd-socket-activate` does what the socket unit does (accept, start one spawner per
connection on fd 3), and the daemon runs in a private mount namespace where a directory is
read-only (as ProtectSystem= makes /usr and /etc) under the unit's capability bounding set
and no_new_privs (setpriv). A job must write there, open a netlink socket and keep the full
bounding set; with the daemon's own child spawner (the old way) the same job cannot write.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROUTER, need_program, need_root
from daemon_fixture import POLICY, RunningDaemon, wait_for

from router.exec.spawner import BOOT

ROOT = Path(__file__).resolve().parents[2]
UNIT_CAPS = "-all,+chown,+dac_read_search"      # router.service's CapabilityBoundingSet
JOB = ("echo written > {ro}/by-job && /usr/bin/python3 -c 'import socket; "
       "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)' && grep CapBnd /proc/self/status")


def sandboxed_daemon(d: RunningDaemon, ro: Path) -> RunningDaemon:
    """The daemon as router.service runs it, near enough: ro is read-only for it."""
    script = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
              f'exec setpriv --no-new-privs --bounding-set {UNIT_CAPS} "$@"')
    d.sock.unlink(missing_ok=True)
    d.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                               "sh", *ROUTER, "daemon"], env=d.env, cwd=d.tmp,
                              stdout=open(d.log, "ab"), stderr=subprocess.STDOUT)
    wait_for(d.answers, what="daemon socket")
    return d


def cap_bounding(pid: int | str) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd"))


@pytest.mark.parametrize("outside", [True, False], ids=["spawner-unit", "child-spawner"])
def test_a_job_does_not_inherit_the_daemons_sandbox(tmp_path, outside):
    need_root()
    need_program("systemd-socket-activate")
    need_program("setpriv")
    ro = tmp_path / "usr-like"
    ro.mkdir()
    env = {}
    activator = None
    if outside:
        sock = tmp_path / "spawner.sock"
        env["ROUTER_SPAWNER_SOCKET"] = str(sock)
        activator = subprocess.Popen(["systemd-socket-activate", "--seqpacket", "--accept",
                                      "--listen", str(sock), sys.executable, "-I", "-S",
                                      "-c", BOOT, str(ROOT), "3"], stdout=subprocess.DEVNULL,
                                     stderr=open(tmp_path / "activator.log", "ab"))
        wait_for(sock.exists, what="spawner socket")
    d = RunningDaemon(tmp_path, POLICY, env)
    try:
        sandboxed_daemon(d, ro)
        assert cap_bounding(d.proc.pid) != cap_bounding("self")   # the daemon is capped
        r = d.router("submit", "--", "/bin/sh", "-c", JOB.format(ro=ro))
        if outside:
            assert r.returncode == 0, r.stderr
            assert (ro / "by-job").read_text() == "written\n"
            assert r.stdout.split() == ["CapBnd:", cap_bounding("self")]
        else:
            assert r.returncode != 0 and not (ro / "by-job").exists()
            assert "Read-only file system" in r.stderr
    finally:
        d.stop()
        if activator is not None:
            activator.terminate()
            activator.wait(timeout=20)
