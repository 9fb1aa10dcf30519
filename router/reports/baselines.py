"""What the same jobs would have cost, and how long they would have taken, routed otherwise.

Money alone hides what the fast machine is for, so each alternative also gets the wall time
and the turnaround (queue wait + run) it would have given. The routed line is what was
measured; the others are replayed: each job arrives when it was submitted, runs for its
measured wall time scaled by the machines' speeds (the model's own assumption: jobs are CPU
bound), and waits first-in first-out for one of the machine's slots.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from typing import Any, Callable

from router.learn import verdict
from router.policy import Policy

Chooser = Callable[[dict[str, Any]], str]


def over_threshold(row: dict[str, Any], policy: Policy) -> bool:
    """Whether the measured cost was over the threshold the job was routed against."""
    return verdict.was_over(row["cost"], verdict.run_threshold(row, policy))


def measured_times(row: dict[str, Any]) -> tuple[float, float]:
    """Turnaround (submitted to ended) and queue wait (turnaround less the run) of one job."""
    wall = row.get("wall_s") or 0.0
    ended = row.get("ended")
    turnaround = max(ended - row["time"], wall) if ended else wall
    return turnaround, max(turnaround - wall, 0.0)


def _replay(jobs: list[dict[str, Any]], policy: Policy, choose: Chooser) -> dict[str, float]:
    """Cost, total wall time and mean wait and turnaround with every job where choose says."""
    free: dict[str, list[float]] = defaultdict(list)
    cost = wall_sum = wait_sum = 0.0
    for r in sorted(jobs, key=lambda r: r["time"]):
        target = policy.machines.get(choose(r))
        ran = policy.machines.get(r["machine"])
        if target is None or ran is None:
            continue
        wall = (r.get("wall_s") or 0.0) * ran.speed / target.speed
        slots = free[target.name]
        if len(slots) < target.slots:
            start = r["time"]
        else:
            start = max(r["time"], heapq.heappop(slots))
        heapq.heappush(slots, start + wall)
        cost += r["cost"] / target.speed * target.price
        wall_sum += wall
        wait_sum += start - r["time"]
    n = max(len(jobs), 1)
    return {"cost": cost, "wall_s": wall_sum, "mean_wait_s": wait_sum / n,
            "mean_turnaround_s": (wait_sum + wall_sum) / n}


def _routed(jobs: list[dict[str, Any]], policy: Policy) -> dict[str, float]:
    cost = wall = wait = turnaround = 0.0
    for r in jobs:
        m = policy.machines.get(r["machine"])
        cost += r["cost"] / m.speed * m.price if m else 0.0
        t, w = measured_times(r)
        wall += r.get("wall_s") or 0.0
        wait += w
        turnaround += t
    n = max(len(jobs), 1)
    return {"cost": cost, "wall_s": wall, "mean_wait_s": wait / n,
            "mean_turnaround_s": turnaround / n}


def compare(jobs: list[dict[str, Any]], policy: Policy) -> list[dict[str, Any]]:
    """The routed jobs as measured, then each alternative, named by what it is."""
    over, under = policy.route["over"], policy.route["under"]

    def hindsight(r: dict[str, Any]) -> str:
        return over if over_threshold(r, policy) else under

    out = [{"name": "routed", "label": "routed (as measured)", **_routed(jobs, policy)}]
    for name, label, choose in (
            ("always_fast", f"all on {over} (the over machine)", lambda r: over),
            ("always_cheap", f"all on {under} (the under machine)", lambda r: under),
            ("hindsight", "each where its measured cost says", hindsight)):
        out.append({"name": name, "label": label, **_replay(jobs, policy, choose)})
    return out
