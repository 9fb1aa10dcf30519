"""What the daemon does once a job's end is recorded: counters, the drift of predictions,
metrics, and a retrain when a template drifts (rather than waiting for the timer)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from router.daemon.job import Job
from router.daemon.state import State

log = logging.getLogger(__name__)

RETRAIN_COOLDOWN_S = 600.0   # a drift-triggered retrain at most this often


class Outcomes:
    def __init__(self, st: State):
        self.st = st
        self.retraining = False
        self.last_retrain = -RETRAIN_COOLDOWN_S

    def finished(self, job: Job, fields: dict[str, Any]) -> None:
        """The dispatcher's callback for every job whose end is in the history."""
        st = self.st
        if fields["state"] != "done":
            st.counters["failed"] += 1
        if job.owner_conn is not None:
            job.owner_conn.jobs.discard(job)
        right = None
        if fields["state"] == "done":
            right = st.drift.record(job.template, job.p_over, fields.get("cost"), job.threshold,
                                    st.policy.route["p_over"])
        if st.metrics is not None:
            st.metrics.job_finished(job, fields, right)
        if right is False and job.template in st.drift.drifting():
            self.retrain_soon(job.template)

    def retrain_soon(self, template: str) -> None:
        now = time.monotonic()
        if self.retraining or now - self.last_retrain < RETRAIN_COOLDOWN_S:
            return
        self.retraining, self.last_retrain = True, now
        log.warning("template %s: recent accuracy under %.2f; retraining", template,
                    self.st.drift.bound)
        asyncio.get_running_loop().create_task(self._retrain())

    async def _retrain(self) -> None:
        st = self.st
        cmd = [sys.executable, "-m", "router", "retrain", "--policy", st.policy.path,
               "--store", st.store_path, "--model", str(st.model_path)]
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
            log.warning("drift retrain: %s", out.decode(errors="replace").strip()[-500:])
        finally:
            self.retraining = False
        await st.load_model()
