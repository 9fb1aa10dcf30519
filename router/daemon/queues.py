"""Live queue estimates: how long a new job would wait on each machine, from what the daemon
has queued and running there and what their decisions predicted them to cost.

Each machine is a FIFO in front of `slots` workers. A running job frees its slot after its
expected remaining cost (the residual of its predicted distribution given what it has used,
elapsed wall x the rate it runs at); each queued job then takes the first slot to free, for its start
latency plus its expected cost / speed. A job decided without a distribution counts at its
threshold, the policy's only figure for it. A machine that just failed to take a job (its
jobs fell back) is down for DOWN_S and no candidate meanwhile.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from typing import Any

from router.objective import CostDistribution, rate

DOWN_S = 30.0


def expected_wait(remaining: list[float], queued: list[float], machine: Any) -> float:
    """Wall seconds until one of the machine's slots takes a new job. `remaining` and `queued`
    are in reference CPU seconds, queued in FIFO order."""
    speed, latency = rate(machine), getattr(machine, "start_latency", 0.0)
    free = sorted(r / speed for r in remaining)[:machine.slots]
    free += [0.0] * (machine.slots - len(free))
    heapq.heapify(free)
    for cost in queued:
        heapq.heappush(free, heapq.heappop(free) + latency + cost / speed)
    return free[0]


class QueueBook:
    """What each active job's decision predicted, and which machines are down."""

    def __init__(self) -> None:
        self.costs: dict[int, tuple[CostDistribution | None, float]] = {}
        self.down_until: dict[str, float] = {}

    def note(self, job: Any, decision: Any) -> None:
        """Called once the job has its id; listens for the job falling back off a machine."""
        dist = decision.dist
        self.costs[job.id] = (dist, decision.cost if decision.cost is not None
                              else decision.threshold or 0.0)
        origin = [job.machine]

        def listen(event: dict[str, Any]) -> None:
            if event.get("event") == "rerouted":
                self.down_until[origin[0]] = time.monotonic() + DOWN_S
                origin[0] = event["machine"]
            elif event.get("event") == "exit":
                self.costs.pop(job.id, None)
        job.listeners.append(listen)

    def down(self, now: float) -> set[str]:
        return {name for name, until in self.down_until.items() if until > now}

    def waits(self, jobs: Iterable[Any], machines: dict[str, Any],
              now: float) -> dict[str, float]:
        """Expected wait per machine; jobs are the dispatcher's active ones (id, machine,
        cancelled, started: the monotonic time a slot took it, None while it queues)."""
        remaining: dict[str, list[float]] = {name: [] for name in machines}
        queued: dict[str, list[float]] = {name: [] for name in machines}
        for job in jobs:
            known = self.costs.get(job.id)
            if job.cancelled or known is None or job.machine not in machines:
                continue
            dist, mean = known
            if job.started is None:
                queued[job.machine].append(mean)
                continue
            m = machines[job.machine]
            used = max(now - job.started - getattr(m, "start_latency", 0.0), 0.0) * rate(m)
            remaining[job.machine].append(dist.residual(used) if dist else max(mean - used, 0.0))
        return {name: expected_wait(remaining[name], queued[name], m)
                for name, m in machines.items()}

    def load(self, policy: Any, jobs: Iterable[Any]) -> tuple[dict[str, float], set[str]] | None:
        """Waits and down machines for a decision by the objective rule; None for other rules,
        which need neither."""
        if policy.route["rule"] != "objective":
            return None
        now = time.monotonic()
        return self.waits(jobs, policy.machines, now), self.down(now)
