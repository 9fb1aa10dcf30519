"""The ssh backend: jobs run on another host through the system OpenSSH client.

ssh runs as the submitting user, so their ~/.ssh/config, agent, known hosts and jump hosts
work as they expect. One master connection per user and host is kept open and reused
(ControlMaster/ControlPersist) at a path we name; a plain connect() to its socket says whether
it is alive, and a host that cannot be reached raises BackendError, which sends the job to the
machine's fallback. Over that connection runs one remote agent per user (`exec/agent.py`), started
with the first job and kept: each job is one line to it, not an ssh client and a remote Python
start of its own (~30 ms: more than the rest of a job's overhead together). The agent measures
each job's CPU with wait4 on the remote host and streams its output back; cancelling a job
kills its remote process group, and when the connection ends the agent kills them all. Jobs
get the remote login environment, as `ssh host cmd` does: paths rarely mean the same there.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import json
import logging
import os
import shlex
import socket
from itertools import count
from typing import Any

from router.exec.jobspec import JobSpec, OnOutput
from router.backends.local import LocalRun, command
from router.errors import BackendError, JobLost
from router.exec import agent as remote_agent
from router.exec.spawn import start
from router.exec.usage import Usage, from_wait
from router.paths import private_dir

log = logging.getLogger(__name__)


class AgentRun:
    """One job on the remote agent; its events arrive through the AgentConnection."""

    remote_id: str | None = None

    def __init__(self, agent: AgentConnection, key: int, on_output: OnOutput):
        self.agent = agent
        self.key = key
        self.on_output = on_output
        self.ran = False               # the agent said it started the job
        self.cancelled = False
        self.done: asyncio.Future[Usage] = asyncio.get_running_loop().create_future()

    async def wait(self) -> Usage:
        return await self.done

    def cancel(self) -> None:
        self.cancelled = True
        if not self.done.done():
            self.agent.send({"op": "kill", "key": self.key})

    def finished(self, u: dict[str, Any]) -> None:
        if not self.done.done():
            self.done.set_result(from_wait(int(u["status"]), u["cpu_user_s"], u["cpu_sys_s"],
                                           int(u["max_rss_kb"]), u["wall_s"]))

    def lost(self, reason: str) -> None:
        """The connection ended first: a job that never started may go elsewhere; one that
        did is lost (the agent kills it when its connection ends), never a measured run."""
        if self.done.done():
            return
        if not self.ran and not self.cancelled:
            self.done.set_exception(BackendError(f"host {self.agent.host} unreachable: {reason}"))
        else:
            self.done.set_exception(JobLost(f"{self.agent.host}: {reason}; its end unseen"))


class AgentConnection:
    """The daemon's end of one user's agent on one host: an ssh process we write jobs to."""

    def __init__(self, host: str, spec: JobSpec):
        self.host = host
        self.spec = spec
        self.runs: dict[int, AgentRun] = {}
        self.keys = count(1)
        self.buf = b""
        self.err = b""
        self.alive = True
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def open(self, argv: list[str], timeout: float) -> None:
        self.proc = LocalRun(start(argv, self.spec, stdin_pipe=True), self._output)
        self.watch = asyncio.create_task(self._watch())
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), timeout)
        except asyncio.TimeoutError:
            self.ready.cancel()
            self.close()
            raise BackendError(f"host {self.host}: no agent after {timeout:g}s") from None

    async def _watch(self) -> None:
        await self.proc.wait()
        self._lost()

    def _output(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.err = (self.err + data)[-4096:]
            return
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:    # e.g. a login script that prints: not ours, not fatal
                log.warning("%s: ignoring a line that is not the agent's: %.80r", self.host, line)
                continue
            self._event(event)

    def _event(self, ev: dict[str, Any]) -> None:
        kind = ev["ev"]
        if kind == "ready":
            self.ready.set_result(ev["host"])
            return
        run = self.runs.get(ev["key"])
        if run is None:
            return
        if kind == "started":
            run.ran = True
        elif kind == "out":
            run.on_output(ev["fd"], binascii.a2b_base64(ev["data"]))
        elif kind == "exit":
            del self.runs[ev["key"]]
            run.finished(ev["usage"])

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        try:
            while data:
                fd = self.proc.child.stdin
                if fd is None:
                    raise BrokenPipeError
                data = data[os.write(fd, data):]
        except OSError:
            self._lost()

    def run(self, spec: JobSpec, on_output: OnOutput) -> AgentRun:
        run = AgentRun(self, next(self.keys), on_output)
        self.runs[run.key] = run
        self.send({"op": "run", "key": run.key, "cwd": spec.cwd, "argv": spec.argv})
        return run

    def _lost(self) -> None:
        self.alive = False
        why = self.err.decode(errors="replace").strip().splitlines()[-1:] or ["connection closed"]
        if not self.ready.done():
            self.ready.set_exception(BackendError(f"host {self.host}: no agent: {why[0]}"))
        for run in list(self.runs.values()):
            run.lost(why[0])
        self.runs.clear()

    def close(self) -> None:
        """Closing its stdin makes the agent kill what still runs and exit."""
        self.alive = False
        self.proc.close_stdin()


@functools.cache
def _agent_program() -> str:
    return remote_agent.program()


class SshBackend:
    def __init__(self, machine: Any):
        o = machine.options or {}
        if not o.get("host"):
            raise BackendError(f"machine {machine.name}: ssh backend needs options.host")
        self.name = machine.name
        self.host = str(o["host"])
        self.user = o.get("user")
        self.port = o.get("port")
        self.extra = [str(x) for x in o.get("ssh_options") or []]
        self.python = str(o.get("python") or "/usr/bin/python3")
        self.timeout = int(o.get("connect_timeout") or 5)
        self.masters: dict[int, JobSpec] = {}
        self.agents: dict[int, AgentConnection] = {}
        self.opening: dict[int, asyncio.Lock] = {}

    def control(self, uid: int) -> str:
        return f"/tmp/router-ssh-{uid}/{self.name}"

    def base(self, uid: int) -> list[str]:
        """ssh and its options for one user, up to and including the host."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control(uid)}", "-o", "ControlPersist=600",
                "-o", f"ConnectTimeout={self.timeout}", "-o", "ServerAliveInterval=10",
                "-o", "ServerAliveCountMax=3"]   # a host that dies is noticed in ~30 s
        for option in self.extra:
            argv += ["-o", option]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", str(self.user)]
        return argv + [self.host]

    def _control_dir(self, spec: JobSpec) -> None:
        private_dir(f"/tmp/router-ssh-{spec.uid}", spec.uid, spec.gid)

    def master_alive(self, uid: int) -> bool:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(self.control(uid))
                return True
            except OSError:
                return False

    async def ensure_master(self, spec: JobSpec) -> None:
        """A live master connection for this user, or BackendError saying why not."""
        if self.master_alive(spec.uid):
            return
        self._control_dir(spec)
        code, _, err = await command(self.base(spec.uid) + ["true"], spec)
        if code != 0:
            why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
            raise BackendError(f"host {self.host} unreachable: {why[0]}")
        self.masters[spec.uid] = spec

    async def agent(self, spec: JobSpec) -> AgentConnection:
        """This user's agent on the host, started (once, however many jobs ask) if need be."""
        async with self.opening.setdefault(spec.uid, asyncio.Lock()):
            agent = self.agents.get(spec.uid)
            if agent is not None and agent.alive:
                return agent
            await self.ensure_master(spec)
            agent = AgentConnection(self.host, spec)
            remote = shlex.join(["exec", self.python, "-S", "-c", _agent_program()])
            await agent.open(self.base(spec.uid) + [remote], self.timeout + 10)
            self.agents[spec.uid] = agent
            return agent

    async def start(self, spec: JobSpec, on_output: OnOutput) -> AgentRun:
        if spec.stdin is not None:
            spec.stdin.close()                # remote jobs read /dev/null
        agent = await self.agent(spec)
        return agent.run(spec, on_output)

    async def close(self) -> None:
        for agent in self.agents.values():
            agent.close()
            await asyncio.wait([agent.watch], timeout=10)
        for uid, spec in self.masters.items():
            try:
                await command(self.base(uid)[:-1] + ["-O", "exit", self.host], spec)
            except BackendError:
                pass
