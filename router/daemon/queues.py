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
from typing import Any

from router.objective import CostDistribution, rate

DOWN_S = 30.0
ORPHAN_S = 60.0


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


class Hold:
    """One decided job's place in the book: its machine and predicted cost, and, once it has
    an id and is queued, the job itself (whose `started` says when a slot took it)."""

    def __init__(self, machine: str, dist: CostDistribution | None, mean: float, now: float):
        self.machine, self.dist, self.mean, self.since = machine, dist, mean, now
        self.job: Any = None


class QueueBook:
    """Every job decided and not yet ended, with what its decision predicted. A job counts
    from its decision on, so a burst decided before any of it is recorded and queued still
    sees itself; a hold never attached to a job (its submit failed) lapses after ORPHAN_S."""

    def __init__(self) -> None:
        self.holds: dict[int, Hold] = {}
        self.down_until: dict[str, float] = {}

    def hold(self, decision: Any, now: float | None = None) -> Hold:
        """Called as soon as the job is decided."""
        mean = decision.cost if decision.cost is not None else decision.threshold or 0.0
        h = Hold(decision.machine, decision.dist, mean,
                 time.monotonic() if now is None else now)
        self.holds[id(h)] = h
        return h

    def attach(self, h: Hold, job: Any) -> None:
        """The job of a hold, queued: listen for its falling back off a machine and its end."""
        h.job = job

        def listen(event: dict[str, Any]) -> None:
            if event.get("event") == "rerouted":
                self.down_until[h.machine] = time.monotonic() + DOWN_S
                h.machine = event["machine"]
            elif event.get("event") == "exit":
                self.holds.pop(id(h), None)
        job.listeners.append(listen)

    def down(self, now: float) -> set[str]:
        return {name for name, until in self.down_until.items() if until > now}

    def waits(self, machines: dict[str, Any], now: float) -> dict[str, float]:
        """Expected wait per machine, from every hold: queued until a slot takes its job
        (job.started, monotonic), running after."""
        remaining: dict[str, list[float]] = {name: [] for name in machines}
        queued: dict[str, list[float]] = {name: [] for name in machines}
        for key, h in list(self.holds.items()):
            job = h.job
            if job is None and now - h.since > ORPHAN_S:
                del self.holds[key]
                continue
            if h.machine not in machines or job is not None and job.cancelled:
                continue
            if job is None or job.started is None:
                queued[h.machine].append(h.mean)
                continue
            m = machines[h.machine]
            used = max(now - job.started - getattr(m, "start_latency", 0.0), 0.0) * rate(m)
            remaining[h.machine].append(h.dist.residual(used) if h.dist
                                        else max(h.mean - used, 0.0))
        return {name: expected_wait(remaining[name], queued[name], m)
                for name, m in machines.items()}

    def load(self, policy: Any) -> tuple[dict[str, float], set[str]] | None:
        """Waits and down machines for a decision by the objective rule; None for other rules,
        which need neither."""
        if policy.route["rule"] != "objective":
            return None
        now = time.monotonic()
        return self.waits(policy.machines, now), self.down(now)
