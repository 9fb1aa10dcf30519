"""A job as the daemon holds it between its submit and its recorded end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from router import backends
from router.exec.jobspec import JobSpec

Listener = Callable[[dict[str, Any]], None]


@dataclass(eq=False)
class Job:
    """`listeners` get every event (output, reroute, exit); `owner_conn` is the submitter's
    connection (None for a job requeued after a restart); `done` is set once its end is
    recorded."""

    id: int
    spec: JobSpec
    machine: str
    reason: str
    detach: bool
    owner_conn: Any = None
    template: str = ""
    p_over: float | None = None
    threshold: float | None = None
    time_limit: float | None = None       # seconds of running, then cancelled as timed_out
    adopt: str | None = None              # the remote id of a run a dead daemon left running
    timed_out: bool = False
    listeners: list[Listener] = field(default_factory=list)
    state: str = "queued"
    running: backends.Running | None = None
    started: float | None = None     # monotonic time its slot took it
    cancelled: bool = False
    result: dict[str, Any] | None = None
    written: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    files: dict[int, IO[bytes]] = field(default_factory=dict)
    unspooled: bool = False           # the spool could not keep its output (a full disk)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event)
