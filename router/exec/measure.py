"""Run one command here and measure what it really cost: the collectors' and `run_here`'s
runner, synchronous and without the spawner.

The child is the leader of a new session, so on a timeout or Ctrl-C its whole process group
dies with it, and `wait4` returns the rusage of the child together with every descendant it
waited for. A pidfd lets us wait with a timeout without a thread or a polling loop.
"""

from __future__ import annotations

import os
import select
import time
from collections import namedtuple
TYPE_CHECKING = False   # typing, dataclasses, subprocess and tempfile cost a sweep's start-up
if TYPE_CHECKING:       # ~30 ms; what they would give is written out below
    from typing import IO

from router.exec.process import DEVNULL, kill_group, reap, resolve, spawn_session
from router.exec.usage import Usage, from_wait

STDERR_TAIL_LINES = 20


def tail(stream: IO[bytes], lines: int = STDERR_TAIL_LINES) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - 8192))
    text = stream.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def scratch_file() -> IO[bytes]:
    """An anonymous temporary file for a run's stderr (tempfile, without its import)."""
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        import tempfile
        return tempfile.TemporaryFile()
    return open(fd, "w+b")


Started = namedtuple("Started", ["pid", "pidfd", "started", "stderr", "own_stderr", "deadline"])
Started.__doc__ = "A run in flight: its session's pid, a pidfd to wait on, where its stderr goes."


def start(argv: list[str], *, timeout: float | None = None,
          stdout: IO[bytes] | int | None = DEVNULL, stderr: IO[bytes] | None = None,
          env: dict[str, str] | None = None, inherit_stderr: bool = False) -> Started:
    """Start argv as a session leader; pair with finish(). stdout DEVNULL discards, None
    inherits. A given stderr file is reused: it is emptied first, so its tail is this run's."""
    if stderr is not None:
        stderr.seek(0)
        stderr.truncate()
    err = stderr if stderr is not None or inherit_stderr else scratch_file()
    env = dict(os.environ) if env is None else env
    out = stdout if stdout is None or isinstance(stdout, int) else stdout.fileno()
    now = time.monotonic()
    try:
        pid = spawn_session(resolve(argv[0], env), argv, env, stdout=out,
                            stderr=None if err is None else err.fileno())
    except BaseException:
        if stderr is None and err is not None:
            err.close()
        raise
    deadline = None if timeout is None else now + timeout
    return Started(pid, os.pidfd_open(pid), now, err, stderr is None and err is not None, deadline)


def finish(run: Started, timed_out: bool = False) -> Usage:
    """Reap a run (killing its session first if it timed out) and say what it cost."""
    if timed_out:
        kill_group(run.pid)
    status, ru = reap(run.pid)
    usage = from_wait(status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss,
                      time.monotonic() - run.started, timed_out)
    os.close(run.pidfd)
    if (usage.exit != 0 or timed_out) and run.stderr is not None:
        usage.stderr_tail = tail(run.stderr)
    if run.own_stderr:
        run.stderr.close()
    return usage


def run(argv: list[str], *, timeout: float | None = None,
        stdout: IO[bytes] | int | None = DEVNULL, inherit_stderr: bool = False) -> Usage:
    """Run argv to completion and measure it; a failed run keeps its last stderr lines.
    Ctrl-C kills the run's whole session before it propagates."""
    started = start(argv, timeout=timeout, stdout=stdout, inherit_stderr=inherit_stderr)
    try:
        ready, _, _ = select.select([started.pidfd], [], [], timeout)
    except BaseException:
        finish(started, timed_out=True)
        raise
    return finish(started, timed_out=not ready)
