"""The report's numbers against a history built by hand, and its text and JSON forms."""

import json
import subprocess

import pytest

from conftest import ROUTER
from router.policy import parse_policy
from router.store import Store
from router.reports.accounting import summary

POLICY = """
machines:
  cheap: {price: 1.0, speed: 1.0}
  fast: {price: 4.0, speed: 2.0}
threshold: 1.0
route: {over: fast, under: cheap}
"""


def job(machine, cost, p_over, **extra):
    return {"time": 1_700_000_000.0, "user": "u", "argv": ["/p", "1"], "template": "/p {num}",
            "features": [1.0], "machine": machine, "source": "job", "state": "done",
            "cost": cost, "cpu_user_s": cost / (2.0 if machine == "fast" else 1.0),
            "cpu_sys_s": 0.0, "threshold": 1.0, "p_over": p_over, "decision_us": 50.0,
            "model_version": "v1-abc", "exit": 0, **extra}


HISTORY = [
    job("fast", 4.0, 0.9),     # over, predicted over: right; paid 4/2*4 = 8
    job("cheap", 0.5, 0.1),    # under, predicted under: right; paid 0.5
    job("cheap", 3.0, 0.2),    # over, predicted under: wrong; paid 3
    job("fast", 0.2, 0.7),     # under, predicted over: wrong; paid 0.2/2*4 = 0.4
]


def test_totals_match_the_hand_computation():
    s = summary(HISTORY, parse_policy(POLICY))
    assert s["jobs"] == 4
    assert s["cost"]["routed"] == pytest.approx(8 + 0.5 + 3 + 0.4)
    assert s["cost"]["always_fast"] == pytest.approx((4 + 0.5 + 3 + 0.2) / 2 * 4)
    assert s["cost"]["always_cheap"] == pytest.approx(4 + 0.5 + 3 + 0.2)
    assert s["cost"]["hindsight"] == pytest.approx(8 + 0.5 + 6 + 0.2)
    assert s["confusion"] == {"tp": 1, "tn": 1, "fn": 1, "fp": 1} and s["accuracy"] == 0.5
    assert s["machines"]["fast"]["jobs"] == 2 and s["machines"]["cheap"]["cost"] == 3.5
    assert s["saved_vs_always_fast"] == pytest.approx(15.4 - 11.9)


def test_text_and_json_from_the_store(tmp_path, env):
    (tmp_path / "p.yaml").write_text(POLICY)
    with Store(env["ROUTER_STORE"]) as st:
        for row in HISTORY:
            st.add_run(row)
    r = subprocess.run([*ROUTER, "report", "--json", "--policy", str(tmp_path / "p.yaml")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cost"]["routed"] == pytest.approx(11.9)
    r = subprocess.run([*ROUTER, "report", "--text", "--policy", str(tmp_path / "p.yaml")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert "routing accuracy 50.0%" in r.stdout and "oracle" not in r.stdout
    fast = next(line for line in r.stdout.splitlines() if "all on fast" in line)
    assert "15.4000" in fast and "turnaround" in r.stdout
    r = subprocess.run([*ROUTER, "report", "--since", "yesterday-ish"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--since" in r.stderr and len(r.stderr.splitlines()) == 1
