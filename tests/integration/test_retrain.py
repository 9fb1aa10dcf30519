"""Retraining: new templates join incrementally, the daemon picks the new model up, and a worse
candidate is kept aside rather than promoted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES
from daemon_fixture import POLICY, PROG, RunningDaemon, wait_for

from router.errors import RouterError
from router.features import template
from router.learn import modelfile, retrain
from router.learn.dataset import Dataset
from router.learn.train import TrainOptions, fit
from router.policy import parse_policy

SOLVE = [str(EXAMPLES / "solve"), "--mode=exact"]


def submit_each(d: RunningDaemon, cmd: list[str], values: list[int]) -> None:
    r = d.router("submit", "--each", "--", *cmd, input="".join(f"{v}\n" for v in values),
                 timeout=120)
    assert r.returncode == 0, r.stderr


def routed(d: RunningDaemon, *argv: str) -> str:
    return d.router("submit", "--dry-run", "--", *argv).stdout


def test_new_template_is_routed_by_the_model_after_retrain(tmp_path):
    rng = np.random.default_rng(3)
    d = RunningDaemon(tmp_path, POLICY).start()
    try:
        submit_each(d, [PROG], list(rng.permutation(np.arange(10, 65, 2))))
        r = d.router("retrain", "--json", timeout=300)     # no model yet: a full train
        assert '"promoted": true' in r.stdout, r.stdout + r.stderr
        wait_for(lambda: "model p=" in routed(d, PROG, "30"), timeout=30, what="first model")
        assert "no model for template" in routed(d, *SOLVE, "90")
        submit_each(d, SOLVE, list(rng.permutation(np.arange(2, 101, 2))))
        r = d.router("retrain", "--json", timeout=300)
        assert '"promoted": true' in r.stdout and '"new_runs": 50' in r.stdout, r.stdout
        assert '"reservoir": 28' in r.stdout      # the older prog runs, from the reservoir
        wait_for(lambda: "model p=" in routed(d, *SOLVE, "90"), timeout=30,
                 what="daemon routes the new template by the model")
        assert routed(d, *SOLVE, "95").startswith("fast")
        assert routed(d, *SOLVE, "3").startswith("cheap")
        assert routed(d, PROG, "30").startswith("fast") and routed(d, PROG, "12").startswith("cheap")
        assert "nothing finished since watermark" in d.router("retrain", timeout=120).stdout
    finally:
        d.stop()


def prog_data(flip: bool = False) -> Dataset:
    data = Dataset()
    t = template([PROG, "1"])
    for i, n in enumerate(np.linspace(1, 64, 120)):
        over = int(23.5 <= n < 40.5)
        data.add(t, (float(n),), 1 - over if flip else over, 0.0, 0.04, i + 1)
    return data


def test_a_worse_candidate_is_not_promoted(tmp_path):
    path = str(tmp_path / "model.rmod")
    good = fit(prog_data(), TrainOptions(epochs=800, members=3))
    modelfile.save(good, path)
    before = Path(path).read_bytes()
    worse = fit(prog_data(flip=True), TrainOptions(epochs=200, members=3))
    ok, why, cand, cur = retrain.promote_or_reject(worse, good, prog_data(), 0.02, path)
    assert not ok and "worse than current" in why and cand < cur
    assert Path(path).read_bytes() == before
    assert modelfile.load(path + ".rejected").version == worse.version


def test_two_retrains_never_overlap(tmp_path):
    lock = str(tmp_path / "lock")
    with retrain.exclusive(lock):
        with pytest.raises(RouterError, match="another retrain"):
            with retrain.exclusive(lock):
                pass


def test_incremental_reads_the_batch_and_the_reservoir(tmp_path):
    from router.store import Store
    policy = parse_policy(POLICY)
    path = str(tmp_path / "model.rmod")
    with Store(tmp_path / "h.db", reservoir_size=64) as store:
        with store.transaction() as db:
            for n in np.linspace(1, 64, 300):
                store.add_run_in(db, {"time": 1.0, "user": "u", "argv": [PROG, str(n)],
                                      "template": template([PROG, "1"]), "features": [float(n)],
                                      "machine": "cheap", "source": "collect",
                                      "cost": 0.08 if 23.5 <= n < 40.5 else 0.01})
        first = retrain.retrain(store, policy, path, opts=TrainOptions(epochs=200, members=3))
        assert first.promoted and first.new_runs == 300 and first.reservoir == 0
        with store.transaction() as db:
            for n in (5.0, 30.0, 50.0, 33.0):
                store.add_run_in(db, {"time": 2.0, "user": "u", "argv": [PROG, str(n)],
                                      "template": template([PROG, "1"]), "features": [n],
                                      "machine": "cheap", "source": "job",
                                      "cost": 0.08 if 23.5 <= n < 40.5 else 0.01})
        second = retrain.retrain(store, policy, path, opts=TrainOptions(epochs=200, members=3))
        assert second.new_runs == 4 and 60 <= second.reservoir <= 64 and second.holdout == 1
        assert modelfile.load(path).meta["watermark"] == 304
