"""The local backend: jobs run on this host as the submitting user, measured exactly.

Each job is the leader of a new session, started, read and reaped by the spawner process
(`exec/spawn.py`), and, where the host allows it, in a cgroup of its own (`exec/cgroup.py`)
that counts the CPU of everything it started and is killed with it; elsewhere `wait4` gives
its rusage with every descendant it waited for. No wrapper process is needed. A machine may
cap its CPU with a cgroup CPU quota (`options.cpu_quota`, in CPUs) where the kernel and our
privileges allow it, so one host can offer a real "cheap" machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from router.exec.jobspec import JobSpec, OnOutput
from router.exec import cgroup
from router.exec.process import KILL_GRACE_S
from router.exec.spawn import Child, start
from router.exec.usage import Usage

log = logging.getLogger(__name__)

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
    """Runs jobs on this host; drops to the submitting user when the daemon is root. Each
    job in a cgroup of its own where the host allows it (see exec/cgroup.py)."""

    def __init__(self, machine: Any):
        self.machine = machine
        quota = (machine.options or {}).get("cpu_quota")
        self.cgroups = _machine_groups(machine.name, float(quota) if quota else None)

    async def start(self, spec: JobSpec, on_output: OnOutput) -> LocalRun:
        child = start(spec.argv, spec, cwd=spec.cwd, stdin_pipe=spec.stdin is not None,
                      cgroups=self.cgroups)
        if spec.stdin is not None and child.stdin is not None:
            spec.stdin.attach(child.stdin)   # the feed owns the pipe from now on
            child.stdin = None
        return LocalRun(child, on_output)

    async def close(self) -> None:
        for error in cgroup.remove_groups(self.cgroups or []):
            log.warning("machine %s: cgroup not removed: %s", self.machine.name, error)


def _machine_groups(name: str, cpus: float | None) -> list[tuple[str, str]] | None:
    """This machine's cgroups, capped where asked; None, said once, where the host does not
    allow them: jobs then run in their session only (CPU from wait4, the session killed)."""
    try:
        groups = cgroup.machine_groups(name, cpus)
    except OSError as exc:
        if cpus is None:
            log.warning("machine %s: jobs not in cgroups (%s): CPU is wait4's of each session, "
                        "and only the session is killed", name, cgroup.describe(exc))
            return None
        log.warning("machine %s: no CPU cap (%s); running uncapped", name, cgroup.describe(exc))
        return _machine_groups(name, None)
    try:
        cgroup.remove_stale(groups)
    except OSError as exc:
        log.warning("machine %s: stale cgroups not removed: %s", name, cgroup.describe(exc))
    return groups
