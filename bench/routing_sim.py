"""Routing rules side by side in a discrete-event simulation of three machines.

Jobs arrive as a Poisson stream; each is a run measured here, at the start of the bench, by
`router collect` over sweeps of `examples/` (prog, noisy, decades, solve --mode=exact), its
measured cost scaled by SCALE so that jobs last seconds rather than milliseconds. Machines, as
a policy the real `parse_policy` reads: cheap (speed 1, price 1, 8 slots), fast (speed 3,
4x the price, 2 slots) and cluster (Slurm-like: speed 1.5, price 2, 4 slots, each start
1-3 s late, 2 s expected). Loads are 30%, 70% and 95% of their total capacity (slots x speed).

Every rule sees the same arrivals: always-cheap, always-fast, least-loaded (the machine whose
queue, counted at the mean job, frees a slot first: no prediction), today's threshold rule
(over its threshold -> fast, else cheap; the threshold is the sweep's 75th percentile), the
objective rule (router's `decide` with the daemon's `QueueBook` wait estimates), and its
hindsight oracle (the same choice, `objective.choose`, with every true cost known). A job's
objective is money + value_of_time x completion; the table gives per-job means. The default
value_of_time (8: a second of waiting is worth 8 CPU seconds of the cheap machine) makes time
matter; with a low one money dominates, the greedy rule packs the cheap machine's queue, and
least-loaded, which balances without prices, comes close at 70% and wins at 95%
(`--value-of-time 0.5`).

The predictions: the bench trains a model on half of each sweep (`router train`, the
command a user runs) and predicts every job with the model's NumPy fast path, the daemon's.

At 95% load a few decisions taken otherwise reshuffle every queue after them, so one stream
swings the objective's ratio to its oracle by a few points either way (the greedy oracle is no
optimum: the objective rule beats it in some streams). The bench runs --rounds streams per load
and takes each ratio in each stream, then their median.

Last line: JSON with objective_vs_oracle_max (the worst load's median objective/oracle - 1),
gain_vs_best_other_70 (the median of 1 - objective / the best non-oracle rule at 70% load) and
every round's objective/oracle - 1 per load.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import statistics
from collections import deque
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router import objective  # noqa: E402
from router.daemon.queues import QueueBook  # noqa: E402
from router.objective import CostDistribution  # noqa: E402
from router.policy import Policy, decide, parse_policy  # noqa: E402
from router.store import Store  # noqa: E402

SCALE = 100.0
VALUE_OF_TIME = 8.0
LOADS = (0.30, 0.70, 0.95)
SWEEPS = {
    "prog": ["examples/prog"], "noisy": ["examples/noisy"], "decades": ["examples/decades"],
    "solve": ["examples/solve", "--mode=exact"],
}
POLICY = """\
machines:
  cheap: {{price: 1, speed: 1, slots: 8}}
  fast: {{price: 4, speed: 3, slots: 2}}
  cluster: {{backend: slurm, price: 2, speed: 1.5, slots: 4, start_latency: 2}}
threshold: {threshold}
route: {{rule: {rule}, over: fast, under: cheap, value_of_time: {vot}}}
"""


def inputs(name: str) -> list[str]:
    if name == "decades":
        return [str(round(10 ** (2 + 4 * i / 29))) for i in range(30)]
    lo, hi = {"prog": (10, 64), "noisy": (30, 56), "solve": (30, 50)}[name]
    return [str(n) for n in range(lo, hi + 1)]


def measure(store: Path) -> list[dict[str, Any]]:
    """Run every sweep once with `router collect`; the history's rows are the jobs."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for name, cmd in SWEEPS.items():
        subprocess.run([sys.executable, "-m", "router", "collect", "--store", str(store),
                        "--", *cmd], input="\n".join(inputs(name)) + "\n", cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL, text=True)
    with Store(store) as s:
        return [{"template": r["template"], "features": r["features"], "argv": r["argv"],
                 "cost": r["cost"] * SCALE} for r in s.runs() if r["cost"]]


@dataclass
class _Prediction:
    p_over: float
    sd: float
    mu: float
    s: float


def trained_model(runs: list[dict[str, Any]], store: Path, tmp: Path) -> Any:
    """A distribution model from `router train` on half of each sweep."""
    from router.learn import modelfile

    half = tmp / "half.db"
    with Store(store) as s, Store(half) as h:
        rows = [r for r in s.runs() if r["id"] % 2 == 0]
        with h.transaction() as db:
            h.add_runs_in(db, [{k: v for k, v in r.items() if k not in ("id", "done_seq")}
                               for r in rows])
    model = tmp / "model.rmod"
    subprocess.run([sys.executable, "-m", "router", "train", "--store", str(half),
                    "--model", str(model)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    loaded = modelfile.load(model)
    return _Unscaled(loaded)


class _Unscaled:
    """A model trained on measured costs, asked about costs scaled by SCALE."""

    def __init__(self, model: Any):
        self.model, self.index, self.n_features = model, model.index, model.n_features

    def threshold(self, template: str) -> float | None:
        return self.model.threshold(template)

    def predict(self, template: str, features: list[float], threshold: float) -> Any:
        p = self.model.predict(template, features, threshold / SCALE)
        return _Prediction(p.p_over, p.sd, p.mu + math.log(SCALE), p.s)


@dataclass(eq=False)
class SimJob:
    id: int
    arrival: float
    run: dict[str, Any]
    machine: str = ""
    started: float | None = None
    cancelled: bool = False
    listeners: list[Any] = field(default_factory=list)


@dataclass
class Noted:
    """What QueueBook.hold reads of a decision."""

    machine: str
    cost: float | None
    threshold: float = 0.0
    dist: CostDistribution | None = None


class Sim:
    """FIFO queues, slots, a start latency on the cluster; the rule picks each job's machine."""

    def __init__(self, policy: Policy, seed: int):
        self.policy, self.machines = policy, policy.machines
        self.book = QueueBook()
        self.queues: dict[str, deque[SimJob]] = {m: deque() for m in self.machines}
        self.free = {name: m.slots for name, m in self.machines.items()}
        self.events: list[tuple[float, int, SimJob]] = []
        self.rng = random.Random(seed)
        self.done: list[tuple[float, float]] = []   # (completion, money) per job

    def run(self, arrivals: list[tuple[float, dict[str, Any]]],
            rule: Callable[[Sim, SimJob, float], str]) -> list[tuple[float, float]]:
        pending = [(t, n, SimJob(n, t, r)) for n, (t, r) in enumerate(arrivals)]
        pending.reverse()
        while pending or self.events:
            if pending and (not self.events or pending[-1][0] <= self.events[0][0]):
                now, _, job = pending.pop()
                job.machine = rule(self, job, now)
                self.queues[job.machine].append(job)
                self._start(job.machine, now)
            else:
                now, _, job = heapq.heappop(self.events)
                self._finish(job, now)
        return self.done

    def _start(self, name: str, now: float) -> None:
        m = self.machines[name]
        while self.free[name] and self.queues[name]:
            job = self.queues[name].popleft()
            self.free[name] -= 1
            job.started = now
            latency = self.rng.uniform(1.0, 3.0) if m.start_latency else 0.0
            heapq.heappush(self.events, (now + latency + job.run["cost"] / m.speed, job.id, job))

    def _finish(self, job: SimJob, now: float) -> None:
        m = self.machines[job.machine]
        self.done.append((now - job.arrival, m.price * job.run["cost"] / m.speed))
        for listener in job.listeners:
            listener({"event": "exit"})
        self.free[job.machine] += 1
        self._start(job.machine, now)

    def waits(self, now: float) -> dict[str, float]:
        return self.book.waits(self.machines, now)

    def book_in(self, job: SimJob, decision: Any, now: float) -> str:
        """Decided, counted in the book from now on, until it ends."""
        self.book.attach(self.book.hold(decision, now), job)
        return decision.machine


def always(name: str) -> Callable[[Sim, SimJob, float], str]:
    return lambda sim, job, now: name


def least_loaded(mean_cost: float) -> Callable[[Sim, SimJob, float], str]:
    def rule(sim: Sim, job: SimJob, now: float) -> str:
        waits = sim.waits(now)
        return sim.book_in(job, Noted(min(sim.machines, key=lambda n: waits[n]), mean_cost), now)
    return rule


def decided(model: Any) -> Callable[[Sim, SimJob, float], str]:
    """Router's own decision: the policy's rule, the model's prediction, the book's waits."""
    def rule(sim: Sim, job: SimJob, now: float) -> str:
        r = job.run
        waits = sim.waits(now) if sim.policy.route["rule"] == "objective" else None
        d = decide(r["template"], r["features"], r["argv"], model, sim.policy, waits)
        return sim.book_in(job, d, now)
    return rule


def oracle(sim: Sim, job: SimJob, now: float) -> str:
    """The objective's choice with true costs: the running jobs' true remainders, too."""
    cost = job.run["cost"]
    best, _ = objective.choose(cost, list(sim.machines.values()), sim.waits(now),
                               sim.policy.route["value_of_time"])
    return sim.book_in(job, Noted(best.machine, cost), now)


def arrivals(runs: list[dict[str, Any]], rate: float, n: int, seed: int
             ) -> list[tuple[float, dict[str, Any]]]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        out.append((t, rng.choice(runs)))
    return out


def figures(done: list[tuple[float, float]], vot: float) -> dict[str, float]:
    times = sorted(c for c, _ in done)
    money = statistics.fmean(m for _, m in done)
    mean = statistics.fmean(times)
    return {"mean_s": mean, "p95_s": times[int(0.95 * (len(times) - 1))], "money": money,
            "objective": money + vot * mean}


def simulate(runs: list[dict[str, Any]], model: Any, n_jobs: int, seed: int, vot: float
             ) -> dict[float, dict[str, dict[str, float]]]:
    threshold = sorted(r["cost"] for r in runs)[int(0.75 * len(runs))]
    policies = {rule: parse_policy(POLICY.format(threshold=threshold, rule=rule,
                                                 vot=vot), "routing_sim")
                for rule in ("threshold", "objective")}
    mean_cost = statistics.fmean(r["cost"] for r in runs)
    capacity = sum(m.slots * m.speed for m in policies["objective"].machines.values())
    rules = {"always-cheap": ("threshold", always("cheap")),
             "always-fast": ("threshold", always("fast")),
             "least-loaded": ("objective", least_loaded(mean_cost)),
             "threshold": ("threshold", decided(model)),
             "objective": ("objective", decided(model)),
             "oracle": ("objective", oracle)}
    out: dict[float, dict[str, dict[str, float]]] = {}
    for load in LOADS:
        stream = arrivals(runs, load * capacity / mean_cost, n_jobs, seed)
        out[load] = {name: figures(Sim(policies[p], seed).run(stream, rule), vot)
                     for name, (p, rule) in rules.items()}
    return out


def medians(rounds: list[dict[float, dict[str, dict[str, float]]]]
            ) -> dict[float, dict[str, dict[str, float]]]:
    """Each figure's median over the rounds."""
    return {load: {name: {k: statistics.median(r[load][name][k] for r in rounds) for k in f}
                   for name, f in by_rule.items()}
            for load, by_rule in rounds[0].items()}


def report(rounds: list[dict[float, dict[str, dict[str, float]]]]) -> dict[str, Any]:
    """The table of medians; the JSON's ratios are taken in each round, then their median."""
    print(f"{'load':>5} {'rule':<13} {'mean s':>9} {'p95 s':>9} {'money':>8} {'objective':>10}")
    for load, by_rule in medians(rounds).items():
        for name, f in by_rule.items():
            print(f"{load:>5.0%} {name:<13} {f['mean_s']:>9.2f} {f['p95_s']:>9.2f} "
                  f"{f['money']:>8.2f} {f['objective']:>10.2f}")
    vs_oracle = {load: [r[load]["objective"]["objective"] / r[load]["oracle"]["objective"] - 1
                        for r in rounds] for load in LOADS}
    gain = [1 - r[0.70]["objective"]["objective"]
            / min(f["objective"] for n, f in r[0.70].items() if n not in ("objective", "oracle"))
            for r in rounds]
    return {"objective_vs_oracle_max": round(max(statistics.median(v)
                                                 for v in vs_oracle.values()), 4),
            "gain_vs_best_other_70": round(statistics.median(gain), 4),
            "objective_vs_oracle_rounds": {f"{load:.0%}": [round(x, 4) for x in v]
                                           for load, v in vs_oracle.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=4000, help="arrivals per load")
    ap.add_argument("--seed", type=int, default=1, help="the first round's arrivals")
    ap.add_argument("--rounds", type=int, default=5,
                    help="arrival streams per load (seeds from --seed on); ratios are medians")
    ap.add_argument("--value-of-time", type=float, default=VALUE_OF_TIME,
                    help="money per second of completion (price is per reference CPU second)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "sweeps.db"
        runs = measure(store)
        model = trained_model(runs, store, Path(tmp))
    print(f"{len(runs)} measured runs of {len(SWEEPS)} sweeps, x{SCALE:g}; model: router "
          f"train on half of each sweep; value_of_time {args.value_of_time:g}; medians over "
          f"{args.rounds} arrival streams")
    summary = report([simulate(runs, model, args.jobs, args.seed + i, args.value_of_time)
                      for i in range(args.rounds)])
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
