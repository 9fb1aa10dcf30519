"""A hand-made history with hostile labels (`$` in command lines, long templates) and a retrain
log, for the report's page tests and its browser test."""

from __future__ import annotations

from hand_history import POLICY  # noqa: F401 - the same two machines (re-exported)

T0 = 1_700_000_000.0
KILL = "sh -c 'kill -TERM $$'"
SEQ = ("sh -c 'for i in $(seq 30); do /opt/tools/bin/simulate-the-whole-weather-of-the-"
       "planet --steps {num}; done'")


def job(i: int, machine: str, cost: float, p_over: float | None, template: str = "/p {num}",
        **extra):
    cpu = cost / (2.0 if machine == "fast" else 1.0)
    return {"time": T0 + 60 * i, "ended": T0 + 60 * i + cpu + 0.5, "wall_s": cpu, "user": "u",
            "argv": ["/p", "1"], "template": template, "features": [1.0], "machine": machine,
            "source": "job", "state": "done", "cost": cost, "cpu_user_s": cpu, "cpu_sys_s": 0.0,
            "threshold": 1.0, "p_over": p_over, "decision_us": 40.0 + i,
            "model_version": "v1-abc" if i < 10 else "v2-def", "exit": 0, **extra}


def history() -> list[dict]:
    rows = []
    for i in range(20):
        over = i % 3 == 0
        rows.append(job(i, "fast" if (over or i % 5 == 0) else "cheap",
                        3.0 + i / 10 if over else 0.4, 0.8 if i % 5 == 0 or over else 0.2))
    rows.append(job(20, "cheap", 0.01, 0.1, KILL, argv=["sh", "-c", "kill -TERM $$"],
                    exit=-15))
    rows.append({**job(23, "cheap", 0.01, None, "/gone {num}", state="failed", exit=127),
                 "cost": None})
    rows.append(job(21, "cheap", 0.5, 0.3, SEQ, timed_out=1))
    rows.append(job(22, "fast", 0.5, 0.9, SEQ, state="cancelled"))
    rows.append(job(24, "fast", 40.0, 0.95, decision_us=900.0))   # decades: log axes
    return rows


def retrains() -> list[dict]:
    return [{"time": T0 + 600, "promoted": True, "version": "v2-def", "reason": "not worse",
             "candidate_accuracy": 0.91, "current_accuracy": 0.88, "holdout": 40,
             "new_runs": 160, "reservoir": 0, "seconds": 3.0},
            {"time": T0 + 1200, "promoted": False, "version": "v3-0123",
             "reason": "worse than current by 0.100 > margin 0.02", "candidate_accuracy": 0.81,
             "current_accuracy": 0.91, "holdout": 25, "new_runs": 100, "reservoir": 50,
             "seconds": 2.0}]
