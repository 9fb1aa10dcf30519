"""What the routing cost, and what the alternatives would have: the numbers behind every report.

A job's price is its CPU seconds on the machine it ran on times that machine's price; its
reference cost (CPU x speed) says what it would have used anywhere else. The alternatives are
named by what they are (see `baselines`): every job on the `over` machine, every job on the
`under` machine, and hindsight routing (each job on `over` exactly when its measured cost was
over its threshold). Hindsight routing is not a lower bound on money: it sends every expensive
job to the fast machine, which buys time, so it may cost more than what was routed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from router.learn import verdict
from router.policy import Policy
from router.reports import baselines

UNIT = "price × CPU s"
STATES = ("done", "failed", "cancelled", "lost")


def price(policy: Policy, machine: str, reference_cost: float) -> float:
    """What a job of this reference cost pays on machine; 0 for a machine the policy lost."""
    m = policy.machines.get(machine)
    if m is None:
        return 0.0
    return reference_cost / m.speed * m.price


def finished_jobs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Jobs that ran to their end and were measured: the only ones with a cost to compare."""
    return [r for r in rows if r.get("source") == "job" and r.get("state") == "done"
            and r.get("cost") is not None]


def model_right(row: dict[str, Any], policy: Policy) -> bool | None:
    """Whether the model's call (over or under) matched the measured cost; None when no model
    decided the job."""
    if row.get("p_over") is None:
        return None
    return verdict.right(row["p_over"], row["cost"], verdict.run_threshold(row, policy),
                         verdict.cut(policy))


def predicted_cost(row: dict[str, Any], cost_means: dict[str, list[float]]) -> float | None:
    """The model's expected reference cost: recorded with the decision where the history has
    it, else p-weighted over the template's mean cost of its under and over runs (the model's
    `cost_means`)."""
    if row.get("predicted_cost") is not None:
        return row["predicted_cost"]
    means = cost_means.get(row["template"])
    if row.get("p_over") is None or not means:
        return None
    return row["p_over"] * means[1] + (1 - row["p_over"]) * means[0]


def _outcomes(rows: list[dict[str, Any]]) -> dict[str, int]:
    jobs = [r for r in rows if r.get("source") == "job"]
    counts = Counter(r.get("state") for r in jobs)
    out = {s: counts.get(s, 0) for s in STATES}
    out["timed out"] = sum(1 for r in jobs if r.get("timed_out"))
    out["active"] = counts.get("queued", 0) + counts.get("running", 0)
    return out


def _machines(jobs: list[dict[str, Any]], policy: Policy) -> dict[str, dict[str, float]]:
    per: dict[str, dict[str, float]] = defaultdict(lambda: {
        "jobs": 0, "cpu_s": 0.0, "cost": 0.0, "wall_s": 0.0, "turnaround_s": 0.0, "wait_s": 0.0})
    for r in jobs:
        m = per[r["machine"]]
        m["jobs"] += 1
        m["cpu_s"] += (r["cpu_user_s"] or 0) + (r["cpu_sys_s"] or 0)
        m["cost"] += price(policy, r["machine"], r["cost"])
        turnaround, wait = baselines.measured_times(r)
        m["wall_s"] += r.get("wall_s") or 0.0
        m["turnaround_s"] += turnaround
        m["wait_s"] += wait
    for m in per.values():
        m["mean_turnaround_s"] = m["turnaround_s"] / m["jobs"]
        m["mean_wait_s"] = m["wait_s"] / m["jobs"]
    return dict(per)


def _templates(jobs: list[dict[str, Any]], policy: Policy,
               cost_means: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One row per template, most jobs first: what an operator checks when routing goes off."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in jobs:
        by[r["template"]].append(r)
    window, bound = policy.retrain["drift_window"], policy.retrain["min_accuracy"]
    out = []
    for template, mine in by.items():
        calls = [c for c in (model_right(r, policy) for r in mine) if c is not None]
        recent = calls[-window:]
        predicted = [p for p in (predicted_cost(r, cost_means) for r in mine) if p is not None]
        out.append({
            "template": template, "jobs": len(mine), "judged": len(calls),
            "accuracy": sum(calls) / len(calls) if calls else None,
            "recent_accuracy": sum(recent) / len(recent) if recent else None,
            "drifting": bool(recent) and sum(recent) / len(recent) < bound,
            "share_fast": sum(r["machine"] == policy.route["over"] for r in mine) / len(mine),
            "predicted_cost": sum(predicted) / len(predicted) if predicted else None,
            "measured_cost": sum(r["cost"] for r in mine) / len(mine),
            "cost": sum(price(policy, r["machine"], r["cost"]) for r in mine),
        })
    return sorted(out, key=lambda t: (-t["jobs"], t["template"]))


def summary(rows: list[dict[str, Any]], policy: Policy,
            cost_means: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """Totals per machine, per template and against the baselines; accuracy; outcomes."""
    jobs = sorted(finished_jobs(rows), key=lambda r: r["time"])
    confusion: Counter[str] = Counter()
    for r in jobs:
        right = model_right(r, policy)
        if right is not None:
            called_over = verdict.called_over(r["p_over"], verdict.cut(policy))
            confusion[("t" if right else "f") + ("p" if called_over else "n")] += 1
    judged = sum(confusion.values())
    alts = baselines.compare(jobs, policy)
    cost = {b["name"]: round(b["cost"], 6) for b in alts}
    templates = _templates(jobs, policy, cost_means or {})
    return {
        "jobs": len(jobs), "unit": UNIT, "machines": _machines(jobs, policy),
        "cost": cost, "baselines": alts,
        "saved_vs_always_fast": round(cost["always_fast"] - cost["routed"], 6),
        "accuracy": round((confusion["tp"] + confusion["tn"]) / judged, 4) if judged else None,
        "confusion": {k: confusion[k] for k in ("tp", "fp", "tn", "fn")},
        "judged": judged, "templates": templates,
        "top_templates": sorted(((t["template"], t["cost"]) for t in templates),
                                key=lambda kv: -kv[1])[:10],
        "outcomes": _outcomes(rows),
    }


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 600 else f"{s / 60:.1f}min" if s < 36000 else f"{s / 3600:.1f}h"


def text(s: dict[str, Any]) -> str:
    """The summary for a terminal: money beside the time it bought, per machine and baseline."""
    o = s["outcomes"]
    lines = [f"{s['jobs']} finished jobs; {o['failed']} failed, {o['cancelled']} cancelled, "
             f"{o['timed out']} timed out, {o['lost']} lost, {o['active']} queued or running",
             f"cost in {s['unit']}; turnaround = queue wait + run, mean per job", "",
             f"  {'machine':<12}{'jobs':>7}{'CPU s':>11}{'cost':>11}{'wall':>10}"
             f"{'wait':>10}{'turnaround':>12}"]
    for name, m in sorted(s["machines"].items()):
        lines.append(f"  {name:<12}{int(m['jobs']):>7}{m['cpu_s']:>11.3f}{m['cost']:>11.4f}"
                     f"{_seconds(m['wall_s']):>10}{_seconds(m['mean_wait_s']):>10}"
                     f"{_seconds(m['mean_turnaround_s']):>12}")
    lines += ["", f"  {'if every job had run':<46}{'cost':>11}{'wall':>10}{'wait':>10}"
                  f"{'turnaround':>12}"]
    for b in s["baselines"]:
        lines.append(f"  {b['label']:<46}{b['cost']:>11.4f}{_seconds(b['wall_s']):>10}"
                     f"{_seconds(b['mean_wait_s']):>10}{_seconds(b['mean_turnaround_s']):>12}")
    lines.append(f"\nsaved against all on the fast machine: {s['saved_vs_always_fast']:.4f}")
    if s["accuracy"] is not None:
        cm = s["confusion"]
        lines.append(f"routing accuracy {s['accuracy']:.1%} of {s['judged']} model decisions "
                     f"(called over: {cm['tp']} right, {cm['fp']} wrong; called under: "
                     f"{cm['tn']} right, {cm['fn']} wrong)")
    return "\n".join(lines)
