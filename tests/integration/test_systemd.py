"""The daemon speaks systemd's notify protocol itself: datagrams on a socket of our own."""

from __future__ import annotations

import re
import signal
import socket
import time

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


def test_unit_file_matches_the_daemon():
    unit = (ROOT / "deploy/systemd/router.service").read_text()
    assert "Type=notify" in unit and "ExecReload=/bin/kill -HUP $MAINPID" in unit
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1).split()
    assert {"CAP_SETUID", "CAP_SETGID", "CAP_KILL"} <= set(caps)
    assert not re.search(r"^NoNewPrivileges=yes", unit, re.M)
    assert "RuntimeDirectory=router" in unit and "StateDirectory=router" in unit
