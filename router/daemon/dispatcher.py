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
from typing import Any

from router.exec.usage import Usage
from router import backends
from router.errors import BackendError, JobLost
from router.policy import Machine
from router.daemon import process
from router.daemon.job import Job
from router.daemon.spool import Spool

log = logging.getLogger(__name__)

RUNNING_RECORD_S = 0.05     # a local job is recorded running once it has run this long
PID_POLL_S = 0.002          # how often a detached job's pid is looked for until the spawner says
RECORD_RETRY_S = 1.0        # an end the history refused (a full disk) is tried again this often


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
        self.active: dict[int, Job] = {}     # queued or running, until the end is recorded
        self.unrecorded: dict[int, asyncio.TimerHandle] = {}   # ends waiting for the disk
        self.workers = [asyncio.create_task(self._worker(name))
                        for name, m in machines.items() for _ in range(m.slots)]

    def enqueue(self, job: Job) -> None:
        self.active[job.id] = job
        self.queues[job.machine].put_nowait(job)

    async def _worker(self, name: str) -> None:
        queue = self.queues[name]
        while True:
            job = await queue.get()
            if job.cancelled and not job.adopt:      # an adopted one runs: _run cancels it
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
        machine, backend = self.machines[job.machine], self.backends[job.machine]
        try:
            if job.adopt:
                adopt = getattr(backend, "adopt")     # only for backends that can_adopt
                job.running = adopt(job.spec, job.adopt, dict(job.written), self._output(job))
            else:
                job.running = await backend.start(job.spec, self._output(job))
            job.state = "running"
            if job.running.remote_id is None:
                asyncio.get_running_loop().call_later(_record_delay(job), self._record_running, job)
            else:
                self._record_running(job)
            if job.cancelled:
                job.running.cancel()
            seconds = job.time_limit or machine.time_limit    # --time, else the machine's
            limit = seconds and asyncio.get_running_loop().call_later(
                seconds, self._time_out, job)
            usage = await job.running.wait()
            if limit:
                limit.cancel()
        except JobLost as exc:        # it ran, but nothing saw its end: not a measured run
            self._finish(job, None, "lost", str(exc))
            return
        except BackendError as exc:   # the machine could not take it: the job never ran
            if machine.fallback and machine.fallback != job.machine and not (
                    job.cancelled or job.adopt):
                self._fall_back(job, machine, str(exc))
                return
            self._finish(job, None, "failed", f"{job.machine}: {exc}", exc.job_exit)
            return
        usage.timed_out = usage.timed_out or job.timed_out
        self._finish(job, usage, "timed_out" if usage.timed_out else "cancelled" if job.cancelled
                     else "failed" if usage.exit else "done", None)

    def _time_out(self, job: Job) -> None:
        job.timed_out = True
        self.cancel(job)

    def _record_running(self, job: Job) -> None:
        """A job that ended before this was called has its end recorded instead: at a
        thousand short jobs a second, one history write in three saved."""
        if job.state != "running":
            return
        fields = {"state": "running", "machine": job.machine,
                  "remote_id": job.running.remote_id if job.running else None}
        pid = getattr(job.running, "pid", None)
        if pid == 0:                # the spawner has not said yet: it will soon
            asyncio.get_running_loop().call_later(_record_delay(job) or PID_POLL_S,
                                                  self._record_running, job)
            return
        if pid:                     # a restarted daemon kills what it can no longer watch
            fields.update(pid=pid, pid_start=process.start_time(pid))
        self._write(job.id, fields, "running state")

    def _write(self, job_id: int, fields: dict[str, Any], what: str) -> asyncio.Future[Any]:
        """A job's update, its failure (a full disk) logged rather than left unretrieved."""
        written = self.writer.submit(lambda s, db: s.update_job(db, job_id, fields))
        written.add_done_callback(
            lambda f: f.cancelled() or f.exception() is None
            or log.error("job %d: %s not recorded: %s", job_id, what, f.exception()))
        return written

    def _fall_back(self, job: Job, machine: Machine, why: str) -> None:
        log.warning("job %d: %s down (%s): falling back to %s", job.id, machine.name, why,
                    machine.fallback)
        job.machine = machine.fallback or job.machine
        job.reason = f"{machine.name} down: fallback"
        self._write(job.id, {"machine": job.machine, "reason": job.reason}, "fallback")
        job.emit({"event": "rerouted", "id": job.id, "machine": job.machine,
                  "reason": job.reason})
        self.queues[job.machine].put_nowait(job)

    def _finish(self, job: Job, usage: Usage | None, state: str, error: str | None,
                exit_value: int = 127) -> None:
        """The job's slot is free now; its exit event goes out once the history has it."""
        machine = self.machines[job.machine]
        fields: dict[str, Any] = {"state": state, "ended": time.time(), "machine": job.machine}
        if job.detach:
            self.spool.drop_env(job.id)     # kept only while a restart might need it
        if usage is not None:
            fields.update(usage.to_dict())
            fields["cost"] = usage.cost(machine.speed)
        else:
            fields.update(exit={"failed": exit_value, "lost": None}.get(state, -15),
                          stderr_tail=error)
            if error:
                self._output(job)(2, f"router: {error}\n".encode())
        self.spool.close(job)
        job.state = state
        written = self._write(job.id, fields, "end")
        written.add_done_callback(lambda f: self._recorded(job, fields, f))

    def _recorded(self, job: Job, fields: dict[str, Any], written: asyncio.Future[Any]) -> None:
        if not written.cancelled() and written.exception() is not None:
            self._record_later(job.id, fields)
        job.result = {"event": "exit", "id": job.id, "state": job.state, "exit": fields["exit"],
                      "cost": fields.get("cost"), "machine": job.machine,
                      "wall_s": fields.get("wall_s")}
        self.active.pop(job.id, None)
        self.on_finished(job, fields)
        job.emit(job.result)
        job.done.set()

    def finish_unstarted(self, job: Job, why: str) -> None:
        """A job that will never start (its --after job did not end done, or it was cancelled
        while it waited): recorded cancelled, with why on its stderr."""
        self._finish(job, None, "cancelled", why)

    def _record_later(self, job_id: int, fields: dict[str, Any]) -> None:
        """An end the history could not take (a full disk) is written again until it can:
        the job's slot is free and its submitter has heard, only the record waits."""
        def again() -> None:
            written = self._write(job_id, fields, "end (again)")
            written.add_done_callback(
                lambda f: self.unrecorded.pop(job_id, None)
                if f.cancelled() or f.exception() is None else self._record_later(job_id, fields))
        self.unrecorded[job_id] = asyncio.get_running_loop().call_later(RECORD_RETRY_S, again)

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        if job.running is not None:
            job.running.cancel()

    async def close(self) -> None:
        for task in self.workers:
            task.cancel()
        for handle in self.unrecorded.values():
            handle.cancel()
        if self.unrecorded:
            log.error("the ends of %d jobs could not be recorded (%s...): the history still "
                      "shows them unfinished", len(self.unrecorded), sorted(self.unrecorded)[:10])
        for backend in self.backends.values():
            await backend.close()


def _record_delay(job: Job) -> float:
    """A detached job is recorded running as soon as its pid is known: a daemon restarted
    after a kill -9 runs again the detached jobs the history still shows queued, and the
    sooner the record, the smaller the window in which one could run twice."""
    return 0.0 if job.detach else RUNNING_RECORD_S
