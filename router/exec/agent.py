"""The remote half of the ssh backend: a stdlib-only agent, one per user and host.

The daemon starts it once over the host's master connection and sends it jobs as JSON lines
on its stdin, so a job pays neither a handshake nor an ssh client and a Python start (~30 ms
together): only a spawn on the remote host. For each job it starts a session leader (its
whole process group is the job), streams the job's stdout and stderr back as lines tagged
with the job's key, reaps it with `wait4` (user + system CPU of the job and every descendant
it waited for) and reports the wait status and rusage. `kill` signals a job's group
(SIGTERM, then SIGKILL after the grace). When its stdin closes (the daemon stopped or died,
or the connection broke) it does that to every job and exits.

The remote host has no router, only `python3`: `program()` is what ssh.py runs there
(`python3 -S -c PROGRAM`), this module's source and that of `process`, the one thing it
imports from router, loaded as the modules they are. So it imports nothing else of router.

Requests:  {"op": "run", "key", "cwd", "argv"}   {"op": "kill", "key"}
Events:    {"ev": "ready", "host"}   {"ev": "started", "key"}
           {"ev": "out", "key", "fd": 1|2, "data": base64}
           {"ev": "exit", "key", "usage": {"status", "cpu_user_s", "cpu_sys_s", "wall_s",
                                           "max_rss_kb"}}
"""

from __future__ import annotations

import binascii
import json
import os
import select
import signal
import sys
import time
from typing import Any

from router.exec import process
from router.exec.process import (KILL_GRACE_S, kill_group, reap_if_ended, resolve,
                                 spawn_session)

NOT_STARTED = 127 << 8      # the wait status of a shell's "command not found"
READ = 65536


class RemoteJob:
    """One job on this host: its session leader, and what is still open of it."""

    __slots__ = ("pid", "started", "open", "usage", "kill_at")

    def __init__(self, pid: int):
        self.pid = pid
        self.started = time.monotonic()
        self.open = 2                        # its stdout and stderr pipes
        self.usage: dict[str, Any] | None = None
        self.kill_at: float | None = None

    def stop(self) -> None:
        """SIGTERM its group now, SIGKILL after the grace if it is still there."""
        kill_group(self.pid, signal.SIGTERM)
        self.kill_at = self.kill_at or time.monotonic() + KILL_GRACE_S


class Agent:
    """The agent's one loop over its stdin (requests) and its jobs' pipes and pidfds."""

    def __init__(self) -> None:
        self.jobs: dict[int, RemoteJob] = {}
        self.owner: dict[int, tuple[int, int]] = {}   # fd -> (key, 1|2, or 0: the pidfd)
        self.buf = b""
        self.stdin_open = True
        self.home = os.getcwd()

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(1, data):]

    def run(self, key: int, cwd: str, argv: list[str]) -> None:
        """Start a job in cwd (or our home where cwd does not exist here)."""
        self.send({"ev": "started", "key": key})
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir(self.home)
        (r1, w1), (r2, w2) = os.pipe(), os.pipe()
        try:
            pid = spawn_session(resolve(argv[0], dict(os.environ)), argv, os.environ,
                                stdout=w1, stderr=w2)
        except OSError as exc:
            for fd in (r1, r2):
                os.close(fd)
            self.send(self._out(key, 2, f"router: {argv[0]}: {exc.strerror}\n".encode()))
            self.send({"ev": "exit", "key": key, "usage": _usage(NOT_STARTED, None, 0.0)})
            return
        finally:
            os.close(w1)
            os.close(w2)
        os.set_blocking(r1, False)            # a descriptor number may be reused within one
        os.set_blocking(r2, False)            # select round: never block on a stale "ready"
        self.jobs[key] = RemoteJob(pid)
        self.owner.update({r1: (key, 1), r2: (key, 2), os.pidfd_open(pid): (key, 0)})

    def requests(self) -> None:
        data = os.read(0, READ)
        if not data:
            self.stdin_open = False
            for job in self.jobs.values():
                job.stop()
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if msg["op"] == "run":
                self.run(msg["key"], msg["cwd"], msg["argv"])
            elif msg["key"] in self.jobs:
                self.jobs[msg["key"]].stop()

    def readable(self, fd: int) -> None:
        key, kind = self.owner[fd]
        job = self.jobs[key]
        if kind == 0:
            reaped = reap_if_ended(job.pid)
            if reaped is None:
                return
            job.usage = _usage(reaped[0], reaped[1], time.monotonic() - job.started)
        else:
            try:
                data = os.read(fd, READ)
            except BlockingIOError:
                return
            if data:
                self.send(self._out(key, kind, data))
                return
            job.open -= 1
        del self.owner[fd]
        os.close(fd)
        if job.usage is not None and job.open == 0:
            del self.jobs[key]
            self.send({"ev": "exit", "key": key, "usage": job.usage})

    def _out(self, key: int, fd: int, data: bytes) -> dict[str, Any]:
        return {"ev": "out", "key": key, "fd": fd,
                "data": binascii.b2a_base64(data, newline=False).decode()}

    def loop(self) -> None:
        """Until stdin has closed and every job has ended; a stopped job past its grace is
        killed."""
        self.send({"ev": "ready", "host": os.uname()[1]})
        while self.stdin_open or self.jobs:
            now = time.monotonic()
            for job in self.jobs.values():
                if job.kill_at is not None and now >= job.kill_at and job.usage is None:
                    kill_group(job.pid)
                    job.kill_at = None
            waits = [j.kill_at - now for j in self.jobs.values() if j.kill_at is not None]
            ready, _, _ = select.select(([0] if self.stdin_open else []) + list(self.owner),
                                        [], [], max(0.0, min(waits)) if waits else None)
            for fd in ready:
                if fd == 0:
                    self.requests()
                elif fd in self.owner:
                    self.readable(fd)


def _usage(status: int, rusage: Any, wall_s: float) -> dict[str, Any]:
    return {"status": status, "cpu_user_s": rusage.ru_utime if rusage else 0.0,
            "cpu_sys_s": rusage.ru_stime if rusage else 0.0, "wall_s": wall_s,
            "max_rss_kb": rusage.ru_maxrss if rusage else 0}


def main() -> None:
    Agent().loop()


LOADER = '''import sys, types
def _module(name, source):
    module = sys.modules[name] = types.ModuleType(name)
    module.__path__ = []
    exec(compile(source, name, "exec"), module.__dict__)
    return module
'''


def program() -> str:
    """The Python program that runs the agent on a host without router: the sources of
    `process` and of this module, each loaded under its own name, then main()."""
    def source(module: Any) -> str:
        with open(module.__file__, encoding="utf-8") as f:
            return f.read()
    return (LOADER + "_module('router', '')\n_module('router.exec', '')\n"
            f"_module('router.exec.process', {source(process)!r})\n"
            f"_module('router.exec.agent', {source(sys.modules[__name__])!r}).main()\n")
