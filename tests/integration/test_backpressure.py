"""A client that does not read its job's output costs the daemon a bounded buffer, not the
output's size: the rest waits in the spool file, and every byte still arrives, in order,
once the client reads; `follow` of a finished job streams the same way."""

from __future__ import annotations

import base64
import json
import socket
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from daemon_fixture import RunningDaemon, wait_for  # noqa: E402

POLICY = """
machines:
  only: {backend: local, slots: 1}
threshold: 1.0
"""
SIZE = 96 << 20          # output of the job
BOUND = 48 << 20         # growth allowed; holding the output would cost its base64, 128 MiB


def read_all(sock: socket.socket) -> tuple[int, dict]:
    """Output bytes received (all zeros, checked), then the exit event."""
    total = 0
    for line in sock.makefile("rb"):
        ev = json.loads(line)
        if ev.get("event") == "out":
            data = base64.b64decode(ev["data"])
            assert data.count(0) == len(data)
            total += len(data)
        elif ev.get("event") == "exit":
            return total, ev
    raise AssertionError("no exit event")


def test_a_client_that_does_not_read_costs_a_bounded_buffer(tmp_path):
    d = RunningDaemon(tmp_path, POLICY).start()
    try:
        daemon = psutil.Process(d.proc.pid)
        before = daemon.memory_info().rss
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(d.sock))
        sock.sendall(json.dumps({"op": "submit", "argv": ["/usr/bin/head", "-c", str(SIZE),
                                                          "/dev/zero"], "cwd": "/",
                                 "env": {}, "tag": 1}).encode() + b"\n")
        wait_for(lambda: "done" in d.router("jobs", "--all").stdout, timeout=120,
                 what="the job ran to its end while nobody read")
        grown = daemon.memory_info().rss - before
        assert grown < BOUND, f"daemon grew {grown >> 20} MiB for a client that did not read"
        sock.settimeout(120)
        total, ev = read_all(sock)
        assert total == SIZE and ev["exit"] == 0 and ev["state"] == "done"
        sock.close()
        follow = socket.socket(socket.AF_UNIX)
        follow.connect(str(d.sock))
        follow.sendall(json.dumps({"op": "follow", "id": ev["id"]}).encode() + b"\n")
        follow.settimeout(120)
        assert read_all(follow)[0] == SIZE
        follow.close()
    finally:
        d.stop()
