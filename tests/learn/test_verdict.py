"""One judge of "was the model right": retraining's gate, drift and the usage summary agree,
all with the policy's route.p_over and one threshold fallback."""

from __future__ import annotations

import numpy as np

from router.learn import retrain, verdict
from router.learn.dataset import Dataset
from router.learn.distribution import S_MIN
from router.learn.drift import Drift
from router.learn.modelfile import ModelFile
from router.policy import parse_policy
from router.reports import accounting

POLICY = parse_policy("machines:\n  slow: {price: 1, speed: 1}\n  quick: {price: 4, speed: 3}\n"
                      "threshold: 2\ntemplates:\n  - {match: '*sim*', threshold: 30}\n"
                      "route: {p_over: 0.9}\n")


def constant_model(p: float, template: str = "/p {num}") -> ModelFile:
    """A one-member model whose p_over at threshold 2 is p for every input."""
    h = 2
    logit = float(np.log(p / (1 - p)))
    raw_scale = float(np.log(np.expm1(1.0 - S_MIN)))        # scale 1 in log units
    weights = {"embed": np.zeros((1, 1, 1)), "w1": np.zeros((1, 2, h)), "b1": np.zeros((1, h)),
               "w2": np.zeros((1, h, h)), "b2": np.zeros((1, h)), "w3": np.zeros((1, h, 2)),
               "b3": np.array([[logit, raw_scale]])}
    return ModelFile(weights, [template], [2.0], [1], np.zeros((1, 1)), np.ones((1, 1)),
                     {"log_cost": [float(np.log(2.0)), 1.0]})


def test_retraining_judges_a_call_with_the_policys_cut_not_half():
    data = Dataset()
    data.add("/p {num}", (1.0,), 1, 3.0, 2.0)     # over, and the model says 0.7: under 0.9
    model = constant_model(0.7)
    assert retrain.accuracy(model, data, verdict.cut(POLICY)) == 0.0
    assert retrain.accuracy(model, data) == 1.0   # without a policy: its default, 0.5


def test_drift_and_usage_agree_with_the_one_judge_on_a_run_without_its_threshold():
    run = {"time": 0.0, "source": "job", "state": "done", "cost": 10.0, "machine": "slow", "argv": ["./sim"],
           "template": "./sim", "cpu_user_s": 10.0, "cpu_sys_s": 0.0, "p_over": 0.8}
    threshold = verdict.run_threshold(run, POLICY)
    assert threshold == 30
    want = verdict.right(run["p_over"], run["cost"], threshold, verdict.cut(POLICY))
    s = accounting.summary([run], POLICY)
    assert (s["confusion"]["tn"] == 1) == want
    d = Drift()
    assert d.record("./sim", run["p_over"], run["cost"], threshold, verdict.cut(POLICY)) == want
    run["p_over"] = 0.85                          # under 0.9: called under, and it was under
    assert accounting.summary([run], POLICY)["confusion"]["tn"] == 1
