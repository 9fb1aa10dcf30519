"""A real `router daemon` on a temp socket, waited for by polling with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ROUTER = [sys.executable, "-m", "router"]


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class RunningDaemon:
    def __init__(self, tmp: Path, policy_text: str, env_extra: dict[str, str] | None = None):
        self.tmp = tmp
        self.policy = tmp / "policy.yaml"
        self.policy.write_text(policy_text)
        self.sock = tmp / "router.sock"
        self.env = dict(os.environ, ROUTER_STORE=str(tmp / "history.db"),
                        ROUTER_MODEL=str(tmp / "model.rmod"), ROUTER_SOCKET=str(self.sock),
                        ROUTER_POLICY=str(self.policy), PYTHONUNBUFFERED="1")
        self.env.update(env_extra or {})
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RunningDaemon:
        self.sock.unlink(missing_ok=True)
        self.proc = subprocess.Popen([*ROUTER, "daemon"], env=self.env, cwd=self.tmp,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_for(self.answers, what="daemon socket")
        return self

    def answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited: {self.log.read_text()[-2000:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.sock))
                s.sendall(b'{"op":"ping"}\n')
                return b'"ok":true' in s.recv(4096)
        except OSError:
            return False

    def router(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
               timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ROUTER, *args], input=input, capture_output=True, text=True,
                              env=env or self.env, timeout=timeout, **kw)

    def status(self, job_id: int) -> dict[str, Any]:
        r = self.router("status", "--json", str(job_id))
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
