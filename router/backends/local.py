"""The local backend: jobs run on this host as the submitting user, measured exactly.

Each job is the leader of a new session; a pidfd in the event loop says when it ended, and
`wait4` returns its rusage with every descendant it waited for, so no wrapper process is
needed. Output is read from pipes by the event loop. A machine may cap its CPU with a cgroup
CPU quota (`options.cpu_quota`, in CPUs) where the kernel and our privileges allow it, so one
host can offer a real "cheap" machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from collectors.measure import Usage, kill_group, usage_from
from router.backends import JobSpec, OnOutput
from router.backends.spawn import Child, start

log = logging.getLogger(__name__)

CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
KILL_GRACE_S = 5.0


def cpu_cgroup(name: str, cpus: float) -> Path | None:
    """A cgroup that caps its members at `cpus` CPUs, or None where that is not allowed."""
    quota = max(1000, int(cpus * PERIOD_US))
    try:
        if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
            path = CGROUP_V1 / name
            path.mkdir(exist_ok=True)
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))
            return path
        if (CGROUP_V2 / "cgroup.controllers").exists():
            path = CGROUP_V2 / name
            path.mkdir(exist_ok=True)
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            return path
    except OSError as exc:
        log.warning("machine %s: no CPU cap (%s); running uncapped", name, exc)
    return None


class LocalRun:
    """A job running here: its pidfd and pipes are watched by the event loop."""

    remote_id: str | None = None

    def __init__(self, child: Child, on_output: OnOutput):
        self.pid = child.pid
        self.child = child
        self.started = time.monotonic()
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[Usage] = self.loop.create_future()
        self.on_output = on_output
        self.open = {child.stdout, child.stderr}
        self.usage: Usage | None = None
        for fd, pipe_fd in ((1, child.stdout), (2, child.stderr)):
            os.set_blocking(pipe_fd, False)
            self.loop.add_reader(pipe_fd, self._read, fd, pipe_fd)
        self.pidfd = os.pidfd_open(self.pid)
        self.loop.add_reader(self.pidfd, self._exited)

    def _read(self, fd: int, pipe_fd: int) -> None:
        try:
            data = os.read(pipe_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.on_output(fd, data)
            return
        self.loop.remove_reader(pipe_fd)
        os.close(pipe_fd)
        self.open.discard(pipe_fd)
        self._maybe_done()

    def _exited(self) -> None:
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        _, status, rusage = os.wait4(self.pid, 0)
        self.child.proc.returncode = status    # reaped: subprocess must not wait for it
        self.usage = usage_from(status, rusage, time.monotonic() - self.started)
        kill_group(self.pid)   # what it left behind in its session goes with it
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.usage is not None and not self.open and not self.done.done():
            self.close_stdin()
            self.done.set_result(self.usage)

    def close_stdin(self) -> None:
        if self.child.stdin is not None:
            os.close(self.child.stdin)
            self.child.stdin = None

    async def wait(self) -> Usage:
        return await self.done

    def cancel(self) -> None:
        if self.usage is not None:
            return
        kill_group(self.pid, signal.SIGTERM)
        self.loop.call_later(KILL_GRACE_S, kill_group, self.pid, signal.SIGKILL)


async def command(argv: list[str], spec: JobSpec) -> tuple[int, bytes, bytes]:
    """Run a helper command (ssh -O, sbatch, sacct) as the user without blocking the loop."""
    out: dict[int, list[bytes]] = {1: [], 2: []}
    run = LocalRun(await start(argv, spec), lambda fd, data: out[fd].append(data))
    usage = await run.wait()
    return usage.exit, b"".join(out[1]), b"".join(out[2])


class LocalBackend:
    """Runs jobs on this host; drops to the submitting user when the daemon is root."""

    def __init__(self, machine: Any):
        self.machine = machine
        quota = (machine.options or {}).get("cpu_quota")
        self.cgroup = cpu_cgroup(f"router-{machine.name}", float(quota)) if quota else None

    async def start(self, spec: JobSpec, on_output: OnOutput) -> LocalRun:
        child = await start(spec.argv, spec, cwd=spec.cwd)
        if self.cgroup is not None:
            try:
                (self.cgroup / "cgroup.procs").write_text(str(child.pid))
            except OSError as exc:
                log.debug("job %d not capped: %s", spec.id, exc)
        return LocalRun(child, on_output)

    async def close(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.rmdir()
            except OSError:
                pass
