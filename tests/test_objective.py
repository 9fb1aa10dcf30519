"""The objective rule: expectations over a cost distribution, the choice by money + time, the
live queue estimates it weighs, its policy keys and errors, and the history's record of it."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROUTER
from router.daemon.queues import DOWN_S, ORPHAN_S, QueueBook, expected_wait
from router.errors import PolicyError
from router.learn.modelfile import Prediction
from router.objective import CostDistribution
from router.policy import decide, parse_policy
from router.store import MIGRATIONS, SCHEMA_VERSION, Store

T = "/p {num}"


@dataclass
class DistPrediction:
    """What the distribution model's fast path returns (issue 20's contract)."""

    p_over: float
    sd: float
    mu: float
    s: float


class Model:
    """What decide() reads of a model file; its prediction is chosen by the test."""

    def __init__(self, pred: object):
        self.index, self.n_features, self.pred = {T: 0}, [1], pred
        self.asked: list[float] = []

    def threshold(self, template: str) -> float | None:
        return 2.0 if template in self.index else None

    def predict(self, template: str, features: object, threshold: float) -> object:
        self.asked.append(threshold)
        return self.pred


def policy(route: str = "", machines: str = "", templates: str = "") -> object:
    machines = machines or ("  cheap: {price: 1, speed: 1, slots: 8}\n"
                            "  fast: {price: 4, speed: 4, slots: 1}\n")
    return parse_policy(f"machines:\n{machines}threshold: 2\n"
                        f"route: {{rule: objective, {route}}}\n{templates}", "p.yaml")


def cost(c: float, s: float = 0.05) -> Model:
    """A model sure the job costs about c reference seconds."""
    return Model(DistPrediction(0.5, 0.01, math.log(c), s))


# -- the distribution ------------------------------------------------------------------------

def test_mean_is_the_logistic_mean_not_the_median():
    d = CostDistribution(math.log(10.0), 0.3)
    assert d.quantile(0.5) == pytest.approx(10.0)
    assert d.p_over(d.quantile(0.9)) == pytest.approx(0.1)
    exact = 10.0 * math.pi * 0.3 / math.sin(math.pi * 0.3)   # E[e^X] of a logistic
    assert d.mean() == pytest.approx(exact, rel=0.03) and d.mean() > 11.0


def test_a_long_running_job_of_a_wide_distribution_is_expected_to_run_longer():
    wide, narrow = CostDistribution(0.0, 0.8), CostDistribution(0.0, 0.02)
    assert wide.residual(5.0) > wide.residual(1.0) > 1.0
    assert narrow.residual(0.5) == pytest.approx(0.5, rel=0.05)
    assert math.isfinite(CostDistribution(0.0, 2.0).mean())     # infinite mean, bounded here


def test_a_prediction_without_a_distribution_has_none():
    assert CostDistribution.of(Prediction(0.5, 0.1)) is None
    assert CostDistribution.of(DistPrediction(0.5, 0.1, 1.0, 0.2)) == CostDistribution(1.0, 0.2)


# -- the rule ------------------------------------------------------------------------------

def test_value_of_time_zero_is_the_old_expected_cost_rule():
    # 3x the speed for 2x the price: quick is cheaper per job whatever the job costs
    text = "  slow: {price: 1, speed: 1}\n  quick: {price: %s, speed: 3}\n"
    for c in (1.0, 10.0):
        d = decide(T, (1.0,), ["./p"], cost(c), policy(machines=text % 2))
        assert d.machine == "quick" and d.kind == "objective"
    d = decide(T, (1.0,), ["./p"], cost(10.0), policy(machines=text % 4))
    assert d.machine == "slow" and d.cost == pytest.approx(10.0, rel=0.01)


def test_the_fast_machine_until_its_queue_makes_the_slow_one_better():
    p = policy("value_of_time: 1")
    idle = decide(T, (1.0,), ["./p"], cost(40.0), p, {"cheap": 0.0, "fast": 0.0})
    assert idle.machine == "fast"        # fast: 10 s, 40 + 10 < cheap: 40 s, 40 + 40
    assert idle.reason == "fast: 10 s, 50 < cheap: 40 s, 80"
    busy = decide(T, (1.0,), ["./p"], cost(40.0), p, {"cheap": 0.0, "fast": 41.0})
    assert busy.machine == "cheap"
    assert busy.reason == "cheap: 40 s, 80 < fast: 51 s, 41 s wait, 91"
    assert busy.waits == {"cheap": 0.0, "fast": 41.0}
    # a short job still joins fast's queue: it costs little time on either machine
    short = decide(T, (1.0,), ["./p"], cost(0.1), p, {"cheap": 0.0, "fast": 41.0})
    assert short.machine == "cheap"
    no_hurry = decide(T, (1.0,), ["./p"], cost(40.0), policy(), {"cheap": 0.0, "fast": 0.0})
    assert no_hurry.machine == "cheap"   # value_of_time 0: money alone


def test_expected_money_uses_the_mean_of_a_wide_distribution():
    p = policy("value_of_time: 1")
    # median 30: fast wins at the median's figures (37.5 < 60) and at the mean's, which is
    # higher still; the decision's cost is the mean
    d = decide(T, (1.0,), ["./p"], cost(30.0, s=0.6), p, {"cheap": 0.0, "fast": 0.0})
    assert d.cost > 45.0


def test_machines_down_are_no_candidates_and_start_latency_counts():
    p = policy("value_of_time: 1")
    d = decide(T, (1.0,), ["./p"], cost(40.0), p, {"cheap": 0.0, "fast": 0.0}, {"fast"})
    assert d.machine == "cheap" and "fast" not in d.reason
    slow_start = policy("value_of_time: 1", "  cheap: {price: 1, speed: 1}\n"
                        "  fast: {price: 4, speed: 4, start_latency: 60}\n")
    assert decide(T, (1.0,), ["./p"], cost(40.0), slow_start).machine == "cheap"


def test_a_cpu_capped_machine_costs_the_same_money_and_more_time():
    p = policy("value_of_time: 2", "  fast: {price: 4, speed: 1}\n"
               "  slow: {price: 1, speed: 1, options: {cpu_quota: 0.25}}\n")
    d = decide(T, (1.0,), ["./p"], cost(10.0), p, {"fast": 0.0, "slow": 0.0})
    assert d.reason == "fast: 10 s, 60 < slow: 40 s, 90"
    d = decide(T, (1.0,), ["./p"], cost(10.0), p, {"fast": 20.0, "slow": 0.0})
    assert d.reason == "slow: 40 s, 90 < fast: 30 s, 20 s wait, 100"


def test_value_of_time_per_template():
    p = policy("value_of_time: 1", templates="templates:\n  - {match: './p *', value_of_time: 0}\n")
    assert decide(T, (1.0,), ["./p", "1"], cost(40.0), p).machine == "cheap"
    assert decide(T, (1.0,), ["./q", "1"], cost(40.0), p).machine == "fast"
    assert p.threshold_for(["./p", "1"]) == 2.0      # a rule without threshold keeps the global


def test_a_model_without_a_distribution_says_so_and_routes_by_threshold():
    d = decide(T, (1.0,), ["./p"], Model(Prediction(0.93, 0.01)), policy("value_of_time: 1"))
    assert (d.machine, d.reason) == ("fast", "no cost distribution (retrain): model p=0.93 >= 0.50")
    assert d.cost is None


def test_the_threshold_rule_stays_the_default_and_gets_the_policy_threshold():
    m = Model(DistPrediction(0.93, 0.01, math.log(40.0), 0.1))
    p = parse_policy("machines:\n  cheap: {price: 1}\n  fast: {price: 4, speed: 4}\nthreshold: 7\n")
    d = decide(T, (1.0,), ["./p"], m, p)
    assert (d.machine, d.reason, m.asked) == ("fast", "model p=0.93 >= 0.50", [7.0])


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line", [
    ("machines:\n  a: {speed: 1}\nroute:\n  rule: objective\n  value_of_time: -1\n",
     "p.yaml:5: route.value_of_time: must be >= 0 (money per second)"),
    ("machines:\n  a: {speed: 1}\ntemplates:\n  - match: x\n    value_of_time: -2\n",
     "p.yaml:5: templates[0].value_of_time: must be >= 0 (money per second)"),
    ("machines:\n  a: {speed: 1}\ntemplates:\n  - match: x\n    threshold: 1\n    vot: 2\n",
     "p.yaml:6: templates[0].vot: unknown key (known: match, threshold, value_of_time)"),
    ("machines:\n  a: {speed: 1}\n  b:\n    price: 2\nroute: {rule: objective}\n",
     "p.yaml:4: machines.b.speed: the objective rule needs every machine's speed "
     "(`router calibrate --write` measures it)"),
])
def test_bad_objective_input_is_one_line_with_file_line_and_key(text, line):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yaml")
    assert str(err.value) == line


def test_policy_check_refuses_a_negative_value_of_time(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("machines:\n  a: {speed: 1}\nroute: {value_of_time: -1}\n")
    r = subprocess.run([*ROUTER, "policy", "check", str(path)], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith(f"{path}:3: route.value_of_time: must be >= 0 "
                                     "(money per second)")


# -- queue estimates -----------------------------------------------------------------------

def machine(slots: int, speed: float = 1.0, start_latency: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(slots=slots, speed=speed, start_latency=start_latency)


def test_expected_wait_fills_slots_in_fifo_order():
    assert expected_wait([], [], machine(2)) == 0.0
    assert expected_wait([10.0], [], machine(2)) == 0.0
    assert expected_wait([10.0, 4.0], [], machine(2, speed=2)) == 2.0
    # slots free at 4 and 10; queued 6 takes the first (-> 10), queued 2 the next (-> 12)
    assert expected_wait([4.0, 10.0], [6.0, 2.0], machine(2)) == 10.0
    assert expected_wait([], [5.0, 5.0], machine(1, start_latency=1)) == 12.0


def test_queue_book_counts_each_job_from_its_decision_to_its_end():
    p = policy("value_of_time: 1")
    book = QueueBook()
    holds = [book.hold(decide(T, (1.0,), ["./p"], cost(c), p), now=100.0)
             for c in (40.0, 40.0, 8.0)]
    assert [h.machine for h in holds] == ["fast"] * 3
    # decided, not yet recorded or queued (a burst on one connection): they count already
    assert book.waits(p.machines, now=100.0)["fast"] == pytest.approx(88 / 4, rel=0.02)
    jobs = [SimpleNamespace(cancelled=False, started=None, listeners=[]) for _ in holds]
    for h, job in zip(holds, jobs):
        book.attach(h, job)
    jobs[0].started = 100.0               # ran 2 s at speed 4: 8 of its 40 used
    waits = book.waits(p.machines, now=102.0)
    assert waits["cheap"] == 0.0
    assert waits["fast"] == pytest.approx((32 + 40 + 8) / 4, rel=0.02)
    jobs[1].listeners[0]({"event": "rerouted", "machine": "cheap"})
    now = time.monotonic()
    assert "fast" in book.down(now) and "fast" not in book.down(now + DOWN_S + 1)
    assert book.waits(p.machines, now=102.0)["cheap"] == 0.0    # 8 slots: one taken
    jobs[2].listeners[0]({"event": "exit"})
    assert len(book.holds) == 2


def test_a_hold_whose_submit_failed_lapses():
    book = QueueBook()
    p = policy("value_of_time: 1")
    book.hold(decide(T, (1.0,), ["./p"], cost(40.0), p), now=0.0)
    assert book.waits(p.machines, now=1.0)["fast"] > 0
    assert book.waits(p.machines, now=ORPHAN_S + 1)["fast"] == 0 and not book.holds


# -- history -------------------------------------------------------------------------------

def test_a_v3_history_gains_the_decision_columns_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "h.db"
    db = sqlite3.connect(path)
    for version in range(3):
        MIGRATIONS[version](db)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO runs (time, user, argv, template, features, machine, source, cost) "
               "VALUES (1, 'u', '[\"p\"]', 'p', '[]', 'local', 'job', 1.5)")
    db.commit()
    db.close()
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.get(1)["cost"] == 1.5 and s.get(1)["expected_waits"] is None
        with s.transaction() as db:
            run = s.start_job(db, {"time": 2, "user": "u", "argv": ["p"], "template": "p",
                                   "features": [], "machine": "cheap", "predicted_cost": 4.5,
                                   "expected_waits": {"cheap": 0.0, "fast": 12.5}})
        assert s.get(run)["expected_waits"] == {"cheap": 0.0, "fast": 12.5}
        assert s.get(run)["predicted_cost"] == 4.5
