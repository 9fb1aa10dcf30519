"""Starting a job's process: as the submitting user, in a new session, its output on pipes.

The pipes are ours (plain descriptors the event loop watches), not the Popen object's, and
the child is reaped by the caller with wait4 on a pidfd, so its rusage is ours to read.
For the daemon's own user subprocess uses vfork, so the daemon (NumPy, the model) is not
copied; a job for another user needs setgid, setgroups and setuid in the child, gid first.

The parent waits in vfork until the child has exec'd: ~1-2 ms on a busy machine, most of
the daemon's time per job when it was spent on the event loop. `start` spawns on a few
threads instead (subprocess releases the GIL there), so the loop goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from router.backends import JobSpec
from router.errors import BackendError


@dataclass
class Child:
    """A started process: its pid, the read ends of its stdout and stderr, the write end of
    its stdin when one was asked for, and the Popen object, kept until the child is reaped."""

    pid: int
    stdout: int
    stderr: int
    stdin: int | None
    proc: subprocess.Popen[bytes]


def credentials(spec: JobSpec) -> dict[str, Any]:
    """Popen arguments that make the child the submitting user (gid, groups, then uid)."""
    if os.geteuid() != 0 or spec.uid == 0:
        return {}
    return {"user": spec.uid, "group": spec.gid, "extra_groups": spec.groups}


def spawn(argv: list[str], spec: JobSpec, *, cwd: str | None = None,
          stdin_pipe: bool = False) -> Child:
    """Start argv for spec's user; BackendError says in one line why it could not start."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin_pipe else (None, None)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=spec.env, stdout=out_w, stderr=err_w,
                                stdin=subprocess.DEVNULL if in_r is None else in_r,
                                start_new_session=True, **credentials(spec))
    except (OSError, ValueError) as exc:
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
        raise _why(argv[0], cwd, exc) from None
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    return Child(proc.pid, out_r, err_r, in_w, proc)


SPAWNERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spawn")


async def start(argv: list[str], spec: JobSpec, *, cwd: str | None = None,
                stdin_pipe: bool = False) -> Child:
    """spawn() on a spawner thread: the event loop never waits in vfork."""
    call = functools.partial(spawn, argv, spec, cwd=cwd, stdin_pipe=stdin_pipe)
    return await asyncio.get_running_loop().run_in_executor(SPAWNERS, call)


def _why(program: str, cwd: str | None, exc: BaseException) -> BackendError:
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and not os.path.isdir(cwd):
            return BackendError(f"working directory {cwd}: no such directory")
        return BackendError(f"{program}: no such program (in {cwd or '.'})")
    if isinstance(exc, PermissionError):
        return BackendError(f"{program}: {exc.strerror}")
    return BackendError(f"cannot start {program}: {exc}")
