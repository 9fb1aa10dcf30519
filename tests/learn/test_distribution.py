"""The cost distribution: one model for every threshold, censored samples, a scale learned per
input, the figures every training reports, and old model files refused with one line."""

from __future__ import annotations

import json
import math
import struct
import subprocess

import numpy as np
import pytest

from conftest import ROUTER
from router.errors import ModelError
from router.learn import modelfile
from router.learn.dataset import Dataset
from router.learn.train import TrainOptions, fit

OPTS = TrainOptions(members=3, steps=1500)


def noisy_and_clean(n: int = 150) -> Dataset:
    """Two programs with the same mean cost a/1000: one within 2%, one +-30% (log-normal)."""
    rng = np.random.default_rng(1)
    data = Dataset()
    for _ in range(n):
        for name, noise in (("/clean {num}", 0.02), ("/noisy {num}", 0.3)):
            a = float(rng.uniform(1, 100))
            cost = a / 1000 * float(np.exp(rng.normal(0, noise)))
            data.add(name, (a,), int(cost > 0.05), cost, 0.05)
    return data


@pytest.fixture(scope="module")
def model():
    return fit(noisy_and_clean(), OPTS)


def test_one_model_answers_at_any_threshold(model):
    for t in (0.01, 0.03, 0.08):
        a = t * 1000 * 1.6                          # 60% over t: clearly over, for both
        assert model.predict("/clean {num}", (a,), t).p_over > 0.9
        assert model.predict("/clean {num}", (a / 2.5,), t).p_over < 0.1
    p = model.predict("/clean {num}", (40.0,), 0.05)
    assert p.p_over == pytest.approx(p.p_over_at(0.05))
    assert 0.03 < p.quantile(0.5) < 0.05 and p.quantile(0.1) < p.quantile(0.5) < p.quantile(0.9)
    assert p.p_over_at(p.quantile(0.9)) == pytest.approx(0.1, abs=1e-6)


def test_a_noisy_program_gets_a_wider_distribution_not_flipped_labels(model):
    clean = model.predict("/clean {num}", (50.0,), 0.05)
    noisy = model.predict("/noisy {num}", (50.0,), 0.05)
    assert noisy.s > 3 * clean.s
    assert noisy.quantile(0.9) / noisy.quantile(0.1) > 1.5 > clean.quantile(0.9) / clean.quantile(0.1)


def test_training_reports_interval_coverage_and_calibration(model):
    m = model.meta
    assert m["val_samples"] > 0 and 0.6 <= m["coverage_10_90"] <= 0.95
    assert 0 <= m["calibration_error"] < 0.15 and m["val_accuracy"] > 0.85


def test_censored_samples_bound_the_distribution():
    """Label-only lines say only over or under; timed-out runs only that they cost more than
    they had used. Both still place the distribution on the right side."""
    rng = np.random.default_rng(2)
    data = Dataset()
    for _ in range(200):
        a = float(rng.uniform(1, 100))
        data.add("/labels {num}", (a,), int(a > 50), float("nan"), 0.05)
        b = float(rng.uniform(1, 100))
        if b > 70:   # killed at 0.05 s, whatever it would have cost
            data.add("/killed {num}", (b,), 1, 0.05, 0.05, timed_out=True)
        else:
            data.add("/killed {num}", (b,), int(b > 50), b / 1000, 0.05)
    m = fit(data, OPTS)
    assert m.predict("/labels {num}", (90.0,), 0.05).p_over > 0.9
    assert m.predict("/labels {num}", (10.0,), 0.05).p_over < 0.1
    killed = m.predict("/killed {num}", (95.0,), 0.05)
    assert killed.p_over > 0.9 and killed.quantile(0.5) > 0.05


def test_predict_at_the_policys_threshold_with_a_model_trained_at_another(env):
    lines = "".join(json.dumps({"argv": ["/bin/prog", str(a)], "cost": a / 1000}) + "\n"
                    for a in range(1, 201))
    r = subprocess.run([*ROUTER, "train", "--data", "-", "--threshold", "0.12"], input=lines,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "10-90% cost interval covers" in r.stdout
    p = subprocess.run([*ROUTER, "predict", "--json", "--", "/bin/prog"], input="20\n150\n",
                       env=env, capture_output=True, text=True, timeout=60)   # demo: 0.04
    assert p.returncode == 0, p.stderr
    low, high = (json.loads(line) for line in p.stdout.splitlines())
    assert low["threshold"] == 0.04 and low["reason"].startswith("model p=")
    assert low["p_over"] < 0.5 < high["p_over"]
    assert low["cost_p50"] < 0.04 < high["cost_p50"] < high["cost_p90"]
    text = subprocess.run([*ROUTER, "predict", "--", "/bin/prog", "150"], env=env,
                          capture_output=True, text=True, timeout=60).stdout.split("\t")
    assert float(text[3]) == pytest.approx(high["cost_p50"], rel=1e-3)


def test_an_old_model_file_is_refused_with_one_line_saying_retrain(env, tmp_path):
    path = tmp_path / "model.rmod"
    head = modelfile.MAGIC + struct.pack("<I32sQ", 1, b"\0" * 32, 0)
    path.write_bytes(head)
    with pytest.raises(ModelError, match="retrain"):
        modelfile.load(path)
    r = subprocess.run([*ROUTER, "predict", "--", "/bin/prog", "3"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "retrain" in r.stderr


def test_three_rows_make_no_validation_figure(env):
    r = subprocess.run([*ROUTER, "train", "--data", "-", "--threshold", "1", "--json", "--",
                        "./prog"], input="1 | 0\n5 | 1\n9 | 1\n", env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["val_accuracy"] is None and summary["val_samples"] == 0
    assert not math.isnan(summary["samples"])
