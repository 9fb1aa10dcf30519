"""The ssh backend: jobs run on another host through the system OpenSSH client.

ssh runs as the submitting user, so their ~/.ssh/config, agent, known hosts and jump hosts
work as they expect. One master connection per user and host is kept open and reused
(ControlMaster/ControlPersist) at a path we name, so before each job a plain connect() to its
socket says whether the master is alive; if not, one is opened, and a host that cannot be
reached raises BackendError, which sends the job to the machine's fallback. On the remote host a small
stdlib-only wrapper (`wrapper.py`) runs the job, measures its CPU with wait4 and reports it
on a marker line of stderr; closing the wrapper's stdin kills the remote process group.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
from typing import Any

from collectors.measure import Usage, kill_group
from router.backends import JobSpec, OnOutput
from router.backends.local import LocalRun, command
from router.backends.spawn import Child, start
from router.backends.wrapper import MARK, SOURCE, STARTED
from router.errors import BackendError

log = logging.getLogger(__name__)

MARKER = MARK.encode()
STARTED_LINE = STARTED.encode()


class SshRun(LocalRun):
    """The local ssh process; the usage comes from the remote wrapper's marker line."""

    def __init__(self, child: Child, on_output: OnOutput, host: str):
        self.host = host
        self.remote: dict[str, Any] | None = None
        self.tail = b""
        self.pending = b""
        self.ran = False              # the wrapper said it started the job
        self.cancelled = False
        self.forward = on_output
        super().__init__(child, self._filter)

    def _filter(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self.forward(fd, data)
            return
        data = self.pending + data
        self.pending = b""
        out = []
        for line in data.splitlines(keepends=True):
            if line == STARTED_LINE:
                self.ran = True
            elif line.startswith(MARKER) and line.endswith(b"\n"):
                self.remote = json.loads(line[len(MARKER):])
            elif line.startswith(b"\x1e") and not line.endswith(b"\n"):
                self.pending = line      # maybe the start of the marker: wait for the rest
            else:
                out.append(line)
        if out:
            chunk = b"".join(out)
            self.tail = (self.tail + chunk)[-4096:]
            self.forward(fd, chunk)

    async def wait(self) -> Usage:
        local = await super().wait()
        if self.remote is None:
            reason = self.tail.decode(errors="replace").strip().splitlines()[-1:] or ["no usage"]
            if not self.ran and not self.cancelled:
                # ssh ended before the wrapper said it started the job: it never ran there
                raise BackendError(f"host {self.host} unreachable: {reason[0]}")
            return Usage(0.0, 0.0, local.wall_s, 0, local.exit if local.exit else 255,
                         stderr_tail=f"{self.host}: {reason[0]}")
        r = self.remote
        return Usage(round(r["cpu_user_s"], 6), round(r["cpu_sys_s"], 6), round(r["wall_s"], 6),
                     int(r["max_rss_kb"]), int(r["exit"]))

    def cancel(self) -> None:
        if self.usage is not None:
            return
        self.cancelled = True
        self.close_stdin()           # the remote wrapper kills the job's group on EOF
        self.loop.call_later(10.0, kill_group, self.pid, signal.SIGKILL)


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

    def control(self, uid: int) -> str:
        return f"/tmp/router-ssh-{uid}/{self.name}"

    def base(self, uid: int) -> list[str]:
        """ssh and its options for one user, up to and including the host."""
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
                "-o", f"ControlPath={self.control(uid)}", "-o", "ControlPersist=600",
                "-o", f"ConnectTimeout={self.timeout}"]
        for option in self.extra:
            argv += ["-o", option]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", str(self.user)]
        return argv + [self.host]

    def _control_dir(self, spec: JobSpec) -> None:
        path = f"/tmp/router-ssh-{spec.uid}"
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, spec.uid, spec.gid)


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

    async def start(self, spec: JobSpec, on_output: OnOutput) -> SshRun:
        await self.ensure_master(spec)
        remote = shlex.join(["exec", self.python, "-S", "-c", SOURCE, spec.cwd, *spec.argv])
        child = await start(self.base(spec.uid) + [remote], spec, stdin_pipe=True)
        return SshRun(child, on_output, self.host)

    async def close(self) -> None:
        for uid, spec in self.masters.items():
            try:
                await command(self.base(uid)[:-1] + ["-O", "exit", self.host], spec)
            except BackendError:
                pass
