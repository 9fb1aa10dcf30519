"""The objective rule: send a job where money + value_of_time x completion is least.

A job's cost (reference CPU seconds) is a distribution, not a number: the model predicts a
logistic in log cost (location `mu`, scale `s`), so p_over(t) = sigmoid((mu - log t) / s) at
any threshold. Money (price x cost / speed) and completion (wait + start latency + cost /
speed, slower under a CPU cap) are both linear in the cost, so their expectations need the distribution's mean, which
a long right tail pulls well above its median; a running job's remaining cost is its residual
E[C - used | C > used], which grows with `used` for a wide distribution. Expectations are
taken by the midpoint rule over quantiles: exact enough, bounded for any scale (the logistic's
mean in cost space is infinite once s >= 1), and a few dozen math.exp calls.

With value_of_time 0 and no queues this is the old "expected cost" rule: least price / speed.
Pure stdlib: the daemon and the submit path's dry run both decide with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NODES = 32   # quantile midpoints per expectation


@dataclass(frozen=True)
class CostDistribution:
    """A run's cost: log cost ~ Logistic(mu, s); costs in reference CPU seconds."""

    mu: float
    s: float

    @classmethod
    def of(cls, prediction: Any) -> CostDistribution | None:
        """The distribution a model's Prediction carries, or None for a model without one."""
        mu, s = getattr(prediction, "mu", None), getattr(prediction, "s", None)
        if mu is None or s is None or not (math.isfinite(mu) and math.isfinite(s)) or s <= 0:
            return None
        return cls(float(mu), float(s))

    def quantile(self, q: float) -> float:
        return math.exp(self.mu + self.s * math.log(q / (1.0 - q)))

    def p_over(self, t: float) -> float:
        z = (self.mu - math.log(t)) / self.s
        return 1.0 / (1.0 + math.exp(-max(min(z, 500.0), -500.0)))

    def mean(self) -> float:
        return self._mean_above(0.0)

    def residual(self, used: float) -> float:
        """Expected cost still to come for a run that has used `used` and not ended."""
        if used <= 0:
            return self.mean()
        return max(self._mean_above(1.0 - self.p_over(used)) - used, 0.0)

    def _mean_above(self, q0: float) -> float:
        """E[C | C above the q0 quantile], midpoint rule over the quantiles above q0."""
        q0 = min(q0, 1.0 - 1e-9)
        width = (1.0 - q0) / NODES
        return sum(self.quantile(q0 + (i + 0.5) * width) for i in range(NODES)) / NODES


@dataclass(frozen=True)
class Estimate:
    """One machine's expected figures for one job; `total` is what the rule minimises."""

    machine: str
    wait: float
    completion: float
    money: float
    total: float

    def describe(self) -> str:
        wait = f", {_num(self.wait)} s wait" if self.wait >= 0.005 else ""
        return f"{self.machine}: {_num(self.completion)} s{wait}, {_num(self.total)}"


def _num(x: float) -> str:
    """Two significant digits, without an exponent up to the millions."""
    return f"{x:.2g}" if abs(x) < 100 else f"{x:.0f}"


def rate(machine: Any) -> float:
    """Reference CPU seconds a job gets per wall second there: the machine's speed, shared
    down by a local machine's CPU cap (options.cpu_quota CPUs for all its slots together).
    A cap does not change a job's CPU seconds, so its money; only how long it waits for them."""
    quota = (getattr(machine, "options", None) or {}).get("cpu_quota")
    return machine.speed * (min(1.0, float(quota) / machine.slots) if quota else 1.0)


def estimate(mean_cost: float, machine: Any, wait: float, value_of_time: float) -> Estimate:
    """Expected money, completion and their weighted sum of a job of this mean cost there."""
    completion = wait + getattr(machine, "start_latency", 0.0) + mean_cost / rate(machine)
    money = machine.price * mean_cost / machine.speed
    return Estimate(machine.name, wait, completion, money, money + value_of_time * completion)


def choose(mean_cost: float, machines: list[Any], waits: Mapping[str, float],
           value_of_time: float) -> tuple[Estimate, list[Estimate]]:
    """The best candidate and every candidate's estimate, best first (ties: the policy's
    order of machines)."""
    ranked = sorted((estimate(mean_cost, m, waits.get(m.name, 0.0), value_of_time)
                     for m in machines), key=lambda e: e.total)
    return ranked[0], ranked


def reason(ranked: list[Estimate]) -> str:
    """`fast: 3.2 s, 0.9 < cheap: 41 s, 41 s wait, 2.7`: the winner and the runner-up."""
    return " < ".join(e.describe() for e in ranked[:2])
