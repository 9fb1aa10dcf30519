"""The daemon speaks systemd's notify protocol itself: datagrams on a socket of our own."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
import time

from conftest import need_program, need_root
from daemon_fixture import POLICY, ROOT, RunningDaemon, wait_for


def test_ready_reloading_stopping_and_watchdog(tmp_path):
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    sink.setblocking(False)
    got: list[str] = []

    def received(pattern: str) -> bool:
        while True:
            try:
                got.append(sink.recv(4096).decode())
            except BlockingIOError:
                break
        return any(re.search(pattern, m) for m in got)

    d = RunningDaemon(tmp_path, POLICY, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"})
    try:
        d.start()
        wait_for(lambda: received("^READY=1$"), what="READY=1")
        wait_for(lambda: received("^WATCHDOG=1$"), what="WATCHDOG=1")
        ready_before = sum(m == "READY=1" for m in got)
        d.signal(signal.SIGHUP)
        wait_for(lambda: received(r"^RELOADING=1\nMONOTONIC_USEC=\d+$"), what="RELOADING=1")
        usec = int(next(m for m in got if m.startswith("RELOADING")).split("=")[-1])
        assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 30
        wait_for(lambda: received("^READY=1$") and sum(m == "READY=1" for m in got) > ready_before,
                 what="READY=1 after reload")
        d.signal(signal.SIGTERM)
        wait_for(lambda: received("^STOPPING=1$"), what="STOPPING=1")
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()
        sink.close()


UNITS = ROOT / "deploy/systemd"
SANDBOX = ("ProtectSystem", "RestrictAddressFamilies", "CapabilityBoundingSet", "ProtectHome",
           "SystemCallFilter", "NoNewPrivileges", "PrivateDevices", "PrivateTmp")


def settings(name: str) -> dict[str, str]:
    text = (UNITS / name).read_text()
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.M))


def test_unit_files_match_the_daemon():
    unit = (UNITS / "router.service").read_text()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "RuntimeDirectory=router" in unit and "StateDirectory=router" in unit
    daemon, spawner = settings("router.service"), settings("router-spawner@.service")
    sock = settings("router-spawner.socket")
    env = dict(kv.split("=", 1) for kv in daemon["Environment"].split())
    assert env["ROUTER_SPAWNER_SOCKET"] == sock["ListenSequentialPacket"]
    assert sock["Accept"] == "yes" and sock["SocketMode"] == "0600"
    assert spawner["ExecStart"].endswith(" -m router.exec.spawner 3")
    assert daemon["NoNewPrivileges"] == "yes" and daemon["Delegate"] == "yes"
    assert not {"CAP_SETUID", "CAP_SETGID", "CAP_KILL"} & set(
        daemon["CapabilityBoundingSet"].split())   # the spawner, not the daemon, starts jobs
    assert not set(SANDBOX) & set(spawner), "jobs would inherit the spawner's sandbox"
    assert daemon["StateDirectoryMode"] == "0750" and daemon["UMask"] == "0027"


def _verify(*units: str) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify against the installed paths: a private mount namespace where
    /opt/router/.venv/bin holds router and python, as deploy/install.sh leaves them."""
    opt = Path(tempfile.mkdtemp())
    try:
        bin_ = opt / "router/.venv/bin"
        bin_.mkdir(parents=True)
        (bin_ / "python").symlink_to(sys.executable)
        (bin_ / "router").write_text("#!/bin/sh\n")
        (bin_ / "router").chmod(0o755)
        paths = " ".join(str(UNITS / u) for u in units)
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               f"mount --bind {opt} /opt && systemd-analyze verify {paths}"],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(opt)


def test_units_verify_with_the_installed_paths():
    need_root()
    need_program("systemd-analyze", "unshare")
    units = sorted(p.name for p in UNITS.iterdir())
    assert {"router.service", "router-spawner.socket", "router-spawner@.service"} <= set(units)
    r = _verify(*units)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_daemon_sandbox_exposure():
    """`systemd-analyze security` scored the old unit 6.9 (MEDIUM); offline, as here."""
    need_program("systemd-analyze")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true",
                        str(UNITS / "router.service")], capture_output=True, text=True,
                       timeout=60)
    score = float(re.search(r"Overall exposure level for router.service: ([\d.]+)",
                            r.stdout).group(1))
    assert score <= 3.5, r.stdout[-3000:]
