"""`router daemon`: start, signals, reload, drain and stop.

The parts live in their own modules: the socket and dispatch (`server`), one handler per op
(`handlers`), queues and workers (`dispatcher`), the history's writer thread (`writer`),
job output on disk (`spool`), periodic tasks (`background`), what a finished job teaches
(`outcomes`). The loop never blocks on a job, a model load or a history write, and no JAX
is imported. SIGHUP reloads policy and model (a bad file is refused and the old one stays);
SIGTERM drains; systemd hears READY, RELOADING, STOPPING and WATCHDOG.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from pathlib import Path

from router.daemon import background, notify, recovery, server
from router.daemon.dispatcher import Dispatcher
from router.daemon.outcomes import Outcomes
from router.daemon.spool import Spool
from router.daemon.state import State
from router.daemon.writer import StoreWriter
from router.errors import RouterError
from router.exec import spawn
from router.policy import Policy, load_policy

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, policy: Policy, *, store: str | None = None, model: str | None = None,
                 sock: str | None = None):
        self.st = State(policy, store=store, model=model, sock=sock)
        self.outcomes = Outcomes(self.st)
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        srv = await self._start()
        notify.ready()
        log.warning("ready on %s (pid %d)", self.st.socket_path, os.getpid())
        await self.stopping.wait()
        notify.stopping()
        srv.close()
        await self._drain()
        await self._stop()
        log.warning("stopped")

    async def _start(self) -> asyncio.AbstractServer:
        st, loop = self.st, asyncio.get_running_loop()
        st.writer = StoreWriter(st.store_path, loop)
        st.spool = Spool(Path(st.store_path).parent / "spool")
        requeue = await recovery.recover(st)
        await st.load_model()
        st.dispatcher = Dispatcher(st.policy.machines, st.writer, st.spool,
                                   self.outcomes.finished)
        for job in requeue:
            st.dispatcher.enqueue(job)
        srv = await server.listen(st)
        for sig, handler in ((signal.SIGTERM, self._term), (signal.SIGINT, self._term),
                             (signal.SIGHUP, self._hup)):
            loop.add_signal_handler(sig, handler)
        self._start_tasks()
        gc.freeze()   # what start-up built lives as long as we do: no collection scans it
        return srv

    def _start_tasks(self) -> None:
        st = self.st
        self.tasks = [asyncio.create_task(background.poll_model(st)),
                      asyncio.create_task(background.prune(st))]
        port = st.policy.daemon["metrics_port"]
        if port:
            from router.reports.metrics import Metrics   # prometheus_client only when asked for
            st.metrics = Metrics(st.policy, model_path=str(st.model_path))
            where = st.metrics.serve(port)
            self.tasks.append(asyncio.create_task(background.sample_metrics(st)))
            log.warning("metrics on http://%s/metrics", where)
        interval = notify.watchdog_interval()
        if interval and st.policy.daemon["watchdog"]:
            self.tasks.append(asyncio.create_task(background.watchdog(interval)))

    async def _stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.st.dispatcher.close()
        spawn.close()
        self.st.writer.close()
        self.st.socket_path.unlink(missing_ok=True)

    def _term(self) -> None:
        if not self.st.draining:
            log.warning("draining: no new jobs; running jobs get %.0fs",
                        self.st.policy.daemon["drain_timeout"])
            self.st.draining = True
            self.stopping.set()

    async def _drain(self) -> None:
        """Queued jobs are cancelled; running ones get drain_timeout, then are cancelled."""
        dispatcher = self.st.dispatcher
        jobs = list(dispatcher.active.values())
        for job in jobs:
            if job.state == "queued":
                dispatcher.cancel(job)
        pending = [asyncio.create_task(j.done.wait()) for j in jobs]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.st.policy.daemon["drain_timeout"])
            if late:
                log.warning("drain timeout: cancelling %d running jobs", len(late))
                for job in jobs:
                    if not job.done.is_set():
                        dispatcher.cancel(job)
                await asyncio.wait(late, timeout=15)

    def _hup(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        """Policy and model, each replaced only by a good new version; systemd hears READY
        again whatever happened."""
        st = self.st
        notify.reloading()
        try:
            try:
                policy = await asyncio.to_thread(load_policy, st.policy.path)
                _applicable(st.policy, policy)
                st.policy = policy
                st.dispatcher.machines = policy.machines
                log.warning("policy %s reloaded", policy.path)
            except RouterError as exc:
                log.error("policy reload refused, keeping the old one: %s", exc)
            st.models.forget()
            await st.load_model()
        finally:
            notify.ready()


RESTART_KEYS = ("backend", "slots", "options")   # fixed when the dispatcher starts


def _applicable(old: Policy, new: Policy) -> None:
    """Raise when the new policy changes what only a restart applies."""
    if set(new.machines) != set(old.machines):
        raise RouterError("machines changed: restart the daemon to apply that")
    for name, machine in new.machines.items():
        for key in RESTART_KEYS:
            if getattr(machine, key) != getattr(old.machines[name], key):
                raise RouterError(f"machines.{name}.{key} changed: restart the daemon to "
                                  f"apply that")

def main(policy_path: str | Path, *, store: str | None = None, model: str | None = None,
         sock: str | None = None) -> int:
    policy = load_policy(os.path.abspath(policy_path))
    daemon = Daemon(policy, store=store, model=model, sock=sock)
    asyncio.run(daemon.run())
    return 0
