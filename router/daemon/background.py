"""The daemon's periodic tasks: model polling, spool pruning, metrics sampling, watchdog.

Each runs for the daemon's whole life and is cancelled at its stop; none may die of one
bad turn (a model file that will not load is logged and the old model kept).
"""

from __future__ import annotations

import asyncio
import logging

from router.daemon import notify
from router.daemon.state import State

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
SAMPLE_EVERY_S = 1.0


async def poll_model(st: State) -> None:
    while True:
        await asyncio.sleep(st.policy.daemon["model_poll_s"])
        await st.load_model()


async def prune(st: State) -> None:
    """Finished jobs' output older than daemon.spool_days goes, in a thread."""
    while True:
        keep = set(st.dispatcher.active)
        removed = await asyncio.to_thread(
            st.spool.prune, st.policy.daemon["spool_days"] * 86400, keep)
        if removed:
            log.warning("spool: removed the output of %d old jobs", removed)
        await asyncio.sleep(PRUNE_EVERY_S)


async def sample_metrics(st: State) -> None:
    while True:
        d = st.dispatcher
        st.metrics.sample({n: q.qsize() for n, q in d.queues.items()}, dict(d.busy),
                          st.model, st.drift.accuracy())
        await asyncio.sleep(SAMPLE_EVERY_S)


async def watchdog(interval: float) -> None:
    while True:
        notify.notify("WATCHDOG=1")
        await asyncio.sleep(interval)
