"""A real `router daemon` on a temp socket, waited for by polling with a deadline; the policy
most daemon tests run it with, and a model of examples/prog trained for real."""

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
PROG = str(ROOT / "examples" / "prog")
POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 2}
  fast: {backend: local, price: 3.0, slots: 2}
threshold: 0.04
route: {over: fast, under: cheap}
daemon: {drain_timeout: 20, model_poll_s: 0.2}
"""


def prog_model(path: Path, threshold: float = 0.04) -> None:
    """A model of examples/prog's band (over for 24..40), trained for real on its shape."""
    import numpy as np   # JAX only for the tests that train

    from router.features import template
    from router.learn import modelfile
    from router.learn.dataset import Dataset
    from router.learn.train import TrainOptions, fit

    data = Dataset()
    t = template([PROG, "1"])
    for n in np.linspace(1, 64, 200):
        data.add(t, (float(n),), int(23.5 <= n < 40.5), 0.0, threshold)
    modelfile.save(fit(data, TrainOptions(epochs=1500, members=3)), path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something true; fail naming `what` at the deadline."""
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


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (which may hold spaces), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


class Process:
    """A process this test started, indirectly: killed only while it is still that process."""

    def __init__(self, pid: int):
        self.pid = pid
        fields = _stat(pid)
        self.started = fields[19] if fields else None

    def kill(self) -> None:
        fields = _stat(self.pid)
        if fields is None or fields[19] != self.started:
            return     # gone, or the pid now belongs to someone else
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def descendants(pid: int) -> list[Process]:
    """Every process below `pid` now: the only ones a test may end besides those it spawned."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(Process(child))
        todo.extend(children.get(child, []))
    return found
