"""A history built by hand whose totals are computed in the comments: the report's unit tests
check its numbers, the browser test draws it."""

from __future__ import annotations

from typing import Any

POLICY = """
machines:
  cheap: {price: 1.0, speed: 1.0}
  fast: {price: 4.0, speed: 2.0}
threshold: 1.0
route: {over: fast, under: cheap}
"""


def job(machine: str, cost: float, p_over: float, **extra: Any) -> dict[str, Any]:
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
