"""The local backend: jobs run on this host as the submitting user, measured exactly.

Each job is the leader of a new session, started, read and reaped by the spawner process
(`spawn.py`), whose `wait4` gives its rusage with every descendant it waited for, so no
wrapper process is needed. A machine may cap its CPU with a cgroup CPU quota
(`options.cpu_quota`, in CPUs) where the kernel and our privileges allow it, so one host can
offer a real "cheap" machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

from router.backends import JobSpec, OnOutput
from router.exec.process import KILL_GRACE_S
from router.exec.spawn import Child, start
from router.exec.usage import Usage

log = logging.getLogger(__name__)

CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


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
    """A job running here; the spawner streams its output and says when it has ended."""

    remote_id: str | None = None

    def __init__(self, child: Child, on_output: OnOutput):
        self.child = child
        child.attach(on_output)

    @property
    def pid(self) -> int:
        """0 until the spawner has said it started."""
        return self.child.pid

    def close_stdin(self) -> None:
        if self.child.stdin is not None:
            os.close(self.child.stdin)
            self.child.stdin = None

    async def wait(self) -> Usage:
        try:
            return await asyncio.shield(self.child.ended)
        finally:
            if self.child.ended.done():
                self.close_stdin()

    def cancel(self) -> None:
        if self.child.ended.done():
            return
        self.child.kill(signal.SIGTERM)
        asyncio.get_running_loop().call_later(KILL_GRACE_S, self.child.kill, signal.SIGKILL)


async def command(argv: list[str], spec: JobSpec) -> tuple[int, bytes, bytes]:
    """Run a helper command (ssh -O, sbatch, sacct) as the user without blocking the loop."""
    out: dict[int, list[bytes]] = {1: [], 2: []}
    run = LocalRun(start(argv, spec), lambda fd, data: out[fd].append(data))
    usage = await run.wait()
    return usage.exit, b"".join(out[1]), b"".join(out[2])


class LocalBackend:
    """Runs jobs on this host; drops to the submitting user when the daemon is root."""

    def __init__(self, machine: Any):
        self.machine = machine
        quota = (machine.options or {}).get("cpu_quota")
        self.cgroup = cpu_cgroup(f"router-{machine.name}", float(quota)) if quota else None

    async def start(self, spec: JobSpec, on_output: OnOutput) -> LocalRun:
        child = start(spec.argv, spec, cwd=spec.cwd, stdin_pipe=spec.stdin is not None,
                      cgroup=str(self.cgroup) if self.cgroup else None)
        if spec.stdin is not None and child.stdin is not None:
            spec.stdin.attach(child.stdin)   # the feed owns the pipe from now on
            child.stdin = None
        return LocalRun(child, on_output)

    async def close(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.rmdir()
            except OSError:
                pass
