"""A job's life in the daemon: recorded, queued on its machine, run by its backend, measured,
recorded again. Output goes to whoever follows the job and to a spool file for `follow`.

Each machine has a FIFO queue and one worker task per slot. A job that its machine cannot
take (host down, Slurm unreachable) moves to the machine's fallback when the policy names
one; otherwise it fails with the backend's one-line reason. Either way the history says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from router.exec.measure import Usage
from router import backends
from router.errors import BackendError
from router.policy import Machine

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]
RUNNING_RECORD_S = 0.05     # a local job is recorded running once it has run this long


@dataclass(eq=False)
class Job:
    id: int
    spec: backends.JobSpec
    machine: str
    reason: str
    detach: bool
    owner_conn: Any = None
    template: str = ""
    p_over: float | None = None
    threshold: float | None = None
    listeners: list[Listener] = field(default_factory=list)
    state: str = "queued"
    running: backends.Running | None = None
    started: float | None = None     # monotonic time its slot took it
    cancelled: bool = False
    result: dict[str, Any] | None = None
    written: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0})
    files: dict[int, IO[bytes]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event)


class Spool:
    """Each job's stdout and stderr on disk, opened only when the job writes something."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: int, fd: int) -> Path:
        return self.dir / f"{job_id}.{'out' if fd == 1 else 'err'}"

    def write(self, job: Job, fd: int, data: bytes) -> None:
        f = job.files.get(fd)
        if f is None:
            f = job.files[fd] = open(self.path(job.id, fd), "ab")
        f.write(data)
        f.flush()
        job.written[fd] += len(data)

    def close(self, job: Job) -> None:
        for f in job.files.values():
            f.close()
        job.files.clear()

    def prune(self, max_age_s: float, keep: set[int]) -> int:
        """Delete the output of jobs that ended more than max_age_s ago (not those in keep);
        `router follow` of such a job then gives its exit status and no output."""
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.dir.iterdir():
            if path.suffix not in (".out", ".err"):
                continue
            try:
                if int(path.stem) not in keep and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except (ValueError, OSError):
                continue
        return removed

    def read(self, job_id: int, fd: int, limit: int | None) -> bytes:
        try:
            with open(self.path(job_id, fd), "rb") as f:
                return f.read() if limit is None else f.read(limit)
        except FileNotFoundError:
            return b""


class Dispatcher:
    """Queues per machine, workers per slot, and the bookkeeping around each run."""

    def __init__(self, machines: dict[str, Machine], writer: Any, spool: Spool,
                 on_finished: Callable[[Job, dict[str, Any]], None]):
        self.machines = machines
        self.backends = {name: backends.create(m) for name, m in machines.items()}
        self.queues: dict[str, asyncio.Queue[Job]] = {name: asyncio.Queue() for name in machines}
        self.busy: dict[str, int] = {name: 0 for name in machines}
        self.writer = writer
        self.spool = spool
        self.on_finished = on_finished
        self.running: dict[int, Job] = {}
        self.workers = [asyncio.create_task(self._worker(name))
                        for name, m in machines.items() for _ in range(m.slots)]

    def enqueue(self, job: Job) -> None:
        self.running[job.id] = job
        self.queues[job.machine].put_nowait(job)

    async def _worker(self, name: str) -> None:
        queue = self.queues[name]
        while True:
            job = await queue.get()
            if job.cancelled:
                self._finish(job, None, "cancelled", "cancelled before it started")
                continue
            self.busy[name] += 1
            job.started = time.monotonic()
            try:
                await self._run(job)
            except Exception:  # noqa: BLE001 - one job's failure never stops the worker
                log.exception("unhandled error running job %d", job.id)
                self._finish(job, None, "failed", "internal error")
            finally:
                self.busy[name] -= 1

    def _output(self, job: Job) -> Callable[[int, bytes], None]:
        def on_output(fd: int, data: bytes) -> None:
            self.spool.write(job, fd, data)
            job.emit({"event": "out", "id": job.id, "fd": fd, "data": data})
        return on_output

    async def _run(self, job: Job) -> None:
        machine = self.machines[job.machine]
        try:
            job.running = await self.backends[job.machine].start(job.spec, self._output(job))
            job.state = "running"
            if job.running.remote_id is None:
                asyncio.get_running_loop().call_later(RUNNING_RECORD_S, self._record_running, job)
            else:
                self._record_running(job)
            if job.cancelled:
                job.running.cancel()
            usage = await job.running.wait()
        except BackendError as exc:   # the machine could not take it: the job never ran
            if machine.fallback and machine.fallback != job.machine and not job.cancelled:
                self._fall_back(job, machine, str(exc))
                return
            self._finish(job, None, "failed", f"{job.machine}: {exc}")
            return
        self._finish(job, usage, "cancelled" if job.cancelled else "done", None)

    def _record_running(self, job: Job) -> None:
        """A job that ended before this was called has its end recorded instead: at a
        thousand short jobs a second, one history write in three saved."""
        if job.state == "running":
            self.writer.submit(lambda s, db: s.update_job(db, job.id, {
                "state": "running", "machine": job.machine,
                "remote_id": job.running.remote_id if job.running else None}))

    def _fall_back(self, job: Job, machine: Machine, why: str) -> None:
        log.warning("job %d: %s down (%s): falling back to %s", job.id, machine.name, why,
                    machine.fallback)
        job.machine = machine.fallback or job.machine
        job.reason = f"{machine.name} down: fallback"
        self.writer.submit(lambda s, db: s.update_job(db, job.id, {
            "machine": job.machine, "reason": job.reason}))
        job.emit({"event": "rerouted", "id": job.id, "machine": job.machine,
                  "reason": job.reason})
        self.queues[job.machine].put_nowait(job)

    def _finish(self, job: Job, usage: Usage | None, state: str, error: str | None) -> None:
        """The job's slot is free now; its exit event goes out once the history has it."""
        machine = self.machines[job.machine]
        fields: dict[str, Any] = {"state": state, "ended": time.time(), "machine": job.machine}
        if usage is not None:
            fields.update(usage.to_dict())
            fields["cost"] = round(usage.cpu_s * machine.speed, 6)
        else:
            fields.update(exit=127 if state == "failed" else -15, stderr_tail=error)
            if error:
                self._output(job)(2, f"router: {error}\n".encode())
        self.spool.close(job)
        job.state = state
        written = self.writer.submit(lambda s, db: s.update_job(db, job.id, fields))
        written.add_done_callback(lambda f: self._recorded(job, fields, f))

    def _recorded(self, job: Job, fields: dict[str, Any], written: asyncio.Future[Any]) -> None:
        if not written.cancelled() and written.exception() is not None:
            log.error("job %d: end not recorded: %s", job.id, written.exception())
        job.result = {"event": "exit", "id": job.id, "state": job.state, "exit": fields["exit"],
                      "cost": fields.get("cost"), "machine": job.machine}
        self.running.pop(job.id, None)
        self.on_finished(job, fields)
        job.emit(job.result)
        job.done.set()

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        if job.running is not None:
            job.running.cancel()

    async def close(self) -> None:
        for task in self.workers:
            task.cancel()
        for backend in self.backends.values():
            await backend.close()
