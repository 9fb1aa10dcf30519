"""A local process named by its pid and its start time, so that a pid the kernel gave to
another process since is never taken for it (Linux: /proc/PID/stat, field 22)."""

from __future__ import annotations

import os
import signal


def start_time(pid: int) -> int | None:
    """The process's start, in clock ticks after boot; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()   # after "pid (comm) ", comm may hold spaces
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def kill_group(pid: int, started: int) -> bool:
    """SIGKILL the process group pid leads, if pid is still the process that started at
    `started`; whether it was."""
    if start_time(pid) != started:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, signal.SIGKILL)     # it left its group: the leader at least
    return True
