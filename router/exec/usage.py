"""What a run cost: its `Usage`, the exit value convention and cost = CPU x speed.

Every runner measures differently (wait4 here, in the spawner or on a remote host; Slurm's
accounting) but all of them end in one `Usage`, so the history, training and reports read
one shape. Stdlib only: the collectors' start-up and the daemon's hot path both import it.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False   # typing costs a sweep's start-up; Any is an annotation only
if TYPE_CHECKING:
    from typing import Any


class Usage:
    """What a run cost, in the units the history stores (seconds rounded to microseconds)."""

    __slots__ = ("cpu_user_s", "cpu_sys_s", "wall_s", "max_rss_kb", "exit", "timed_out",
                 "stderr_tail")

    def __init__(self, cpu_user_s: float, cpu_sys_s: float, wall_s: float, max_rss_kb: int,
                 exit: int, timed_out: bool = False, stderr_tail: str | None = None):
        self.cpu_user_s = round(cpu_user_s, 6)
        self.cpu_sys_s = round(cpu_sys_s, 6)
        self.wall_s = round(wall_s, 6)
        self.max_rss_kb = int(max_rss_kb)
        self.exit = exit
        self.timed_out = timed_out
        self.stderr_tail = stderr_tail

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s

    def cost(self, speed: float) -> float:
        """CPU seconds normalised to the reference machine: what a threshold is in, and what
        the same run would have cost anywhere else."""
        return cost(self.cpu_s, speed)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"Usage({self.to_dict()})"


def cost(cpu_s: float, speed: float) -> float:
    """Cost = CPU x speed, the one definition (see Usage.cost)."""
    return round(cpu_s * speed, 6)


def exit_of(code: int, signal: int = 0) -> int:
    """The exit value router records: the exit code, or minus the signal that killed it."""
    return -signal if signal else code


def exit_value(status: int) -> int:
    """The exit value of a wait status (from wait4 here, in the spawner or on a remote host)."""
    if os.WIFSIGNALED(status):
        return exit_of(0, os.WTERMSIG(status))
    return exit_of(os.WEXITSTATUS(status))


def from_wait(status: int, utime: float, stime: float, max_rss_kb: int, wall_s: float,
              timed_out: bool = False) -> Usage:
    """A Usage from what wait4 gave: the wait status and the rusage's times and peak RSS."""
    return Usage(utime, stime, wall_s, max_rss_kb, exit_value(status), timed_out)
