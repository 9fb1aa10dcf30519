"""Backends run a job on a machine. One small interface, implemented by every backend.

A backend is built from the policy's Machine. `start(spec, on_output)` launches the job and
returns a `Running`; the job's output reaches `on_output(fd, data)` as it arrives (that is
the stream); `Running.wait()` returns the measured Usage once the job has ended and all its
output was delivered; `Running.cancel()` asks it to stop (the whole process group, or the
remote job). Backends are registered by name; the policy's `backend:` key picks one.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from router.exec.jobspec import JobSpec, OnOutput
from router.exec.usage import Usage

class Running(Protocol):
    """A started job."""

    remote_id: str | None

    async def wait(self) -> Usage:
        """Usage once the job ended and its output was delivered; exit -N for signal N."""
        ...

    def cancel(self) -> None:
        """Stop the job and everything it started; wait() still returns its usage."""
        ...


class Backend(Protocol):
    """Runs jobs on one machine."""

    async def start(self, spec: JobSpec, on_output: OnOutput) -> Running:
        """Launch the job; raise BackendError when the machine cannot take it."""
        ...

    async def close(self) -> None:
        """Release connections held for reuse."""
        ...

    # Optional: `adopt(spec, remote_id, offsets, on_output) -> Running`, for a backend whose
    # jobs outlive the daemon (Slurm's): the run a dead daemon left, watched again from the
    # output offsets its spool already holds.


REGISTRY: dict[str, str] = {
    "local": "router.backends.local:LocalBackend",
    "ssh": "router.backends.ssh:SshBackend",
    "slurm": "router.backends.slurm:SlurmBackend",
}


def can_adopt(machine: Any) -> bool:
    """Whether a restarted daemon can watch this machine's running jobs again."""
    module, _, name = REGISTRY[machine.backend].partition(":")
    return hasattr(getattr(importlib.import_module(module), name), "adopt")


def create(machine: Any) -> Backend:
    """The backend the policy names for `machine`, imported only when used."""
    module, _, name = REGISTRY[machine.backend].partition(":")
    return getattr(importlib.import_module(module), name)(machine)
