"""The policy: every error at once with file:line and key path, defaults, and the decision."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROUTER
from router.errors import PolicyError
from router.learn.modelfile import Prediction
from router.policy import decide, parse_policy

BAD = """\
machines:
  cheap:
    backend: local
    price: 0
    slots: two
  fast:
    backend: locl
    price: 3
    fallback: nowhere
route:
  over: gpu
  ovr: fast
  rule: weird
templates:
  - match: "*prog*"
threshold: -1
"""


def test_check_reports_every_error_with_its_line_and_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    r = subprocess.run([*ROUTER, "policy", "check", str(path)], capture_output=True, text=True)
    assert r.returncode != 0
    got = [line.removeprefix("router policy: ") for line in r.stderr.splitlines()]
    assert sorted(got) == sorted(f"{path}:{line}" for line in [
        "5: machines.cheap.slots: expected int, got 'two'",
        "12: route.ovr: unknown key (known: over, under, no_model, unknown_template, "
        "uncertain, max_sd, p_over, rule, value_of_time)",
        "4: machines.cheap.price: must be > 0",
        "7: machines.fast.backend: unknown backend 'locl' (known: local, ssh, slurm)",
        "9: machines.fast.fallback: no machine named 'nowhere'",
        "11: route.over: no machine named 'gpu'",
        "13: route.rule: expected one of threshold, objective",
        "15: templates[0]: needs match and a threshold or a value_of_time",
        "16: threshold: must be > 0",
    ])


def test_a_key_left_out_is_reported_at_its_section():
    with pytest.raises(PolicyError) as err:
        parse_policy("version: 1\nmachines: {}\n", "p.yaml")
    assert str(err.value) == "p.yaml:2: machines: at least one machine is required"
    with pytest.raises(PolicyError) as err:
        parse_policy("machines:\n  a: {price: 1}\n  b:\n    speed: 0\n", "p.yaml")
    assert str(err.value) == "p.yaml:4: machines.b.speed: must be > 0"


def test_routes_default_to_the_cheapest_and_the_fastest_machine():
    p = parse_policy("machines:\n  slow: {price: 1, speed: 1}\n  quick: {price: 4, speed: 3}\n"
                     "threshold: 2\ntemplates:\n  - {match: '*sim*', threshold: 30}\n")
    assert (p.route["under"], p.route["over"]) == ("slow", "quick")
    assert (p.route["no_model"], p.route["unknown_template"], p.route["uncertain"]) == \
        ("slow", "slow", "quick")
    assert p.threshold_for(["./sim", "8"]) == 30
    assert p.threshold_for(["./prog", "8"]) == 2


class OneTemplateModel:
    """What decide() reads of a model file, with a prediction chosen by the test."""

    def __init__(self, p: float, sd: float, threshold: float = 2.0):
        self.index, self.n_features = {"/p {num}": 0}, [1]
        self.pred, self.trained_for = Prediction(p, sd), threshold

    def threshold(self, template: str) -> float | None:
        return self.trained_for if template in self.index else None

    def predict(self, template: str, features: object, threshold: float) -> Prediction:
        return self.pred


@pytest.mark.parametrize("model, template, features, machine, reason", [
    (None, "/p {num}", (1.0,), "slow", "no model"),
    (OneTemplateModel(0.9, 0.01), "/q {num}", (1.0,), "slow", "no model for template"),
    (OneTemplateModel(0.93, 0.01, 5.0), "/p {num}", (1.0,), "quick",   # any threshold
     "model p=0.93 >= 0.50"),
    (OneTemplateModel(0.9, 0.01), "/p {num}", (1.0, 2.0), "slow", "model for other features"),
    (OneTemplateModel(0.6, 0.31), "/p {num}", (1.0,), "quick", "uncertain: sd 0.31"),
    (OneTemplateModel(0.93, 0.01), "/p {num}", (1.0,), "quick", "model p=0.93 >= 0.50"),
    (OneTemplateModel(0.07, 0.01), "/p {num}", (1.0,), "slow", "model p=0.07 < 0.50"),
])
def test_decision_and_its_reason(model, template, features, machine, reason):
    p = parse_policy("machines:\n  slow: {price: 1, speed: 1}\n  quick: {price: 4, speed: 3}\n"
                     "threshold: 2\n")
    d = decide(template, features, ["./p", "1"], model, p)
    assert (d.machine, d.reason) == (machine, reason)
