"""What to run, where and as whom: the job as every backend and the spawner see it.

It lives with the processes (exec/) rather than with the backends, since the spawner's link
starts what it names and a room below may not import the one above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from router.exec.feed import StdinFeed

OnOutput = Callable[[int, bytes], None]


@dataclass
class JobSpec:
    """What to run, where and as whom."""

    id: int
    argv: list[str]
    cwd: str
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    user: str = ""
    stdin: StdinFeed | None = None       # what the submitter sends it; None reads /dev/null
