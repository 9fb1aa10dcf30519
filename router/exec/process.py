"""A job's process: started as a session leader, its group killed, reaped with its rusage.

The one home of what every runner does to a process, shared by three of them that cannot
import the rest of router: the collectors' runner (`measure.py`), the spawner process
(`spawner.py`, started as `python -I -S` with only the package root put on its sys.path by
`spawn.py`) and the remote agent (`agent.py`, whose host has no router: `ssh.py` sends this
module's source with the agent's). So it imports nothing but os and signal.

A job is the leader of a new session: its process group is the job, so killing the group
ends it and everything it started there, and wait4 on the leader gives the rusage of the
leader and every descendant it waited for.
"""

from __future__ import annotations

import os
import signal
TYPE_CHECKING = False   # typing costs a sweep's start-up; these are annotations only
if TYPE_CHECKING:
    from typing import Any

KILL_GRACE_S = 5.0      # SIGTERM first; SIGKILL this long after, if it is still there
DEVNULL = -3            # subprocess.DEVNULL, without importing subprocess
# Ignored or handled by whoever starts the job (Python ignores SIGPIPE): the job gets the
# defaults, as a shell would give it.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                   signal.SIGHUP)


def resolve(program: str, env: dict[str, str]) -> str:
    """The file execvpe would run for `program` under the job's PATH (we exec paths only),
    checked with our effective ids; FileNotFoundError when there is none."""
    if "/" in program:
        return program
    for directory in os.get_exec_path(env):
        path = os.path.join(directory, program)
        if os.access(path, os.X_OK, effective_ids=True) and not os.path.isdir(path):
            return path
    raise FileNotFoundError(2, "No such file or directory", program)


def spawn_session(program: str, argv: list[str], env: dict[str, str] | Any, *,
                  stdin: int | None = None, stdout: int | None = None,
                  stderr: int | None = None) -> int:
    """posix_spawn (vfork and exec: several times cheaper than fork or Popen for short runs)
    as a session leader with default signal dispositions. stdin None reads /dev/null;
    stdout and stderr None inherit ours, DEVNULL discards; any other value is a descriptor."""
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0) if stdin is None
        else (os.POSIX_SPAWN_DUP2, stdin, 0)]
    for fd, target in ((stdout, 1), (stderr, 2)):
        if fd == DEVNULL:
            actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, os.O_WRONLY, 0))
        elif fd is not None:
            actions.append((os.POSIX_SPAWN_DUP2, fd, target))
    return os.posix_spawn(program, argv, env, file_actions=actions, setsid=True,
                          setsigdef=DEFAULT_SIGNALS)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a job's whole process group; it may already be gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(pid: int) -> tuple[int, Any]:
    """wait4 a job's leader until it ends: (wait status, rusage). What it left behind in its
    session is killed with it."""
    _, status, rusage = os.wait4(pid, 0)
    kill_group(pid)
    return status, rusage


def reap_if_ended(pid: int) -> tuple[int, Any] | None:
    """reap(pid) if it has ended, else None."""
    done, status, rusage = os.wait4(pid, os.WNOHANG)
    if not done:
        return None
    kill_group(pid)
    return status, rusage


def holds_pid(pidfd: int) -> bool:
    """Whether the process a pidfd names still holds its pid (running, or a zombie not yet
    reaped): then that pid, and the process group it leads, name it and nothing else. A pid
    alone may name another process once this one was reaped; a pidfd never does."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        return False
    return True
