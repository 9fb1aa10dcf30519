"""A job's events to one peer, with the spool file as its buffer.

Live while the peer reads. Once more than HIGH_WATER bytes wait for a peer that does not
read, its output comes from the job's spool file instead, a chunk at a time as the peer
drains, and goes live again once it has caught up: a client that stops reading costs the
daemon at most that much memory, and the job is never slowed or stopped. Events after
the output (rerouted, exit) wait for it. `follow` is the same stream, starting behind.
"""

from __future__ import annotations

import asyncio
from typing import Any

from router.client import protocol
from router.daemon.job import Job
from router.daemon.peer import Peer
from router.daemon.spool import Spool

HIGH_WATER = 1 << 20
CHUNK = 1 << 16


class OutputStream:
    """`written` is what the spool holds of each fd (a running job's own counters, which
    grow); `job` is None for a job that has ended."""

    def __init__(self, peer: Peer, tag: int, spool: Spool, job_id: int,
                 written: dict[int, int], job: Job | None = None):
        self.peer = peer
        self.tag = tag
        self.spool = spool
        self.job_id = job_id
        self.written = written
        self.job = job
        self.sent = {1: 0, 2: 0}
        self.behind = False
        self.held: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def __call__(self, ev: dict[str, Any]) -> None:
        """The job's listener."""
        if self.behind:
            if ev["event"] != "out":
                self.held.append(ev)
            elif self.job is not None and self.job.unspooled:
                self.sent[ev["fd"]] = self.written[ev["fd"]]   # not in the spool: lost to it
            return
        if ev["event"] == "out":
            if self.peer.buffered() > HIGH_WATER and not (self.job and self.job.unspooled):
                self.replay()
                return
            self.sent[ev["fd"]] += len(ev["data"])
        self.peer.send({**ev, "tag": self.tag})

    def replay(self) -> None:
        """From the spool up to what was written, then live (or the held end)."""
        self.behind = True
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        peer = self.peer
        while not peer.closed:
            chunk = self._next_chunk()
            if chunk is None:
                break
            fd, data = chunk
            self.sent[fd] += len(data)
            peer.send(protocol.out_event(self.tag, self.job_id, fd, data))
            peer.flush()
            try:
                await peer.writer.drain()
            except (ConnectionError, OSError):
                return
        self.behind = False
        for ev in self.held:
            peer.send({**ev, "tag": self.tag})
        self.held.clear()

    def _next_chunk(self) -> tuple[int, bytes] | None:
        for fd in (1, 2):
            want = min(self.written[fd] - self.sent[fd], CHUNK)
            if want > 0:
                data = self.spool.read_at(self.job_id, fd, self.sent[fd], want)
                if data:
                    return fd, data
                self.sent[fd] = self.written[fd]      # pruned or cut short: nothing to send
        return None
