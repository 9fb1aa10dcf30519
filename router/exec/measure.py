"""Run one command and measure what it really cost.

The child is the leader of a new session, so on a timeout or Ctrl-C its whole process group
dies with it, and `wait4` returns the rusage of the child together with every descendant it
waited for. A pidfd lets us wait with a timeout without a thread or a polling loop.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections import namedtuple
TYPE_CHECKING = False   # typing, dataclasses, subprocess and tempfile cost a sweep's start-up
if TYPE_CHECKING:       # ~30 ms; what they would give is written out below
    from typing import IO, Any

STDERR_TAIL_LINES = 20


class Usage:
    """What a run cost, in the units the history stores."""

    __slots__ = ("cpu_user_s", "cpu_sys_s", "wall_s", "max_rss_kb", "exit", "timed_out",
                 "stderr_tail")

    def __init__(self, cpu_user_s: float, cpu_sys_s: float, wall_s: float, max_rss_kb: int,
                 exit: int, timed_out: bool = False, stderr_tail: str | None = None):
        self.cpu_user_s = cpu_user_s
        self.cpu_sys_s = cpu_sys_s
        self.wall_s = wall_s
        self.max_rss_kb = max_rss_kb
        self.exit = exit
        self.timed_out = timed_out
        self.stderr_tail = stderr_tail

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Usage({self.to_dict()})"


def exit_value(status: int) -> int:
    """The exit code, or minus the signal that killed the process."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def usage_from(status: int, rusage: Any, wall_s: float, timed_out: bool = False) -> Usage:
    return Usage(
        cpu_user_s=round(rusage.ru_utime, 6),
        cpu_sys_s=round(rusage.ru_stime, 6),
        wall_s=round(wall_s, 6),
        max_rss_kb=int(rusage.ru_maxrss),
        exit=exit_value(status),
        timed_out=timed_out,
    )


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a run's whole process group; it may already be gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(stream: IO[bytes], lines: int = STDERR_TAIL_LINES) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - 8192))
    text = stream.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


DEVNULL = -3   # subprocess.DEVNULL, without importing subprocess


def scratch_file() -> IO[bytes]:
    """An anonymous temporary file for a run's stderr (tempfile, without its import)."""
    try:
        fd = os.open(os.environ.get("TMPDIR") or "/tmp", os.O_TMPFILE | os.O_RDWR, 0o600)
    except OSError:
        import tempfile
        return tempfile.TemporaryFile()
    return open(fd, "w+b")


def _spawn(argv: list[str], stdout: IO[bytes] | int | None, stderr: IO[bytes] | None,
           env: dict[str, str] | None = None) -> int:
    """posix_spawn as a session leader: several times cheaper than Popen for short runs.
    stdout DEVNULL discards, None inherits; stderr None inherits."""
    actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if stderr is not None:
        actions.append((os.POSIX_SPAWN_DUP2, stderr.fileno(), 2))
    if stdout == DEVNULL:
        actions.append((os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
    elif stdout is not None:
        fd = stdout if isinstance(stdout, int) else stdout.fileno()
        actions.append((os.POSIX_SPAWN_DUP2, fd, 1))
    spawn = os.posix_spawn if "/" in argv[0] else os.posix_spawnp
    return spawn(argv[0], argv, os.environ if env is None else env, file_actions=actions,
                 setsid=True)


Started = namedtuple("Started", ["pid", "pidfd", "started", "stderr", "own_stderr", "deadline"])
Started.__doc__ = "A run in flight: its session's pid, a pidfd to wait on, where its stderr goes."


def start(argv: list[str], *, timeout: float | None = None,
          stdout: IO[bytes] | int | None = DEVNULL, stderr: IO[bytes] | None = None,
          env: dict[str, str] | None = None, inherit_stderr: bool = False) -> Started:
    """Start argv as a session leader; pair with finish(). A given stderr file is reused:
    it is emptied first, so its tail is this run's."""
    if stderr is not None:
        stderr.seek(0)
        stderr.truncate()
    err = stderr if stderr is not None or inherit_stderr else scratch_file()
    now = time.monotonic()
    try:
        pid = _spawn(argv, stdout, err, env)
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
    _, status, rusage = os.wait4(run.pid, 0)
    usage = usage_from(status, rusage, time.monotonic() - run.started, timed_out)
    kill_group(run.pid)
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
