"""What the routing cost, and what the alternatives would have: the numbers behind every report.

A job's price is its CPU seconds on the machine it ran on times that machine's price; its
reference cost (CPU x speed) says what it would have used anywhere else. Baselines: every job on
the `over` machine (always-fast), every job on the `under` machine (always-cheap), and the
hindsight oracle: the policy's own routing with a perfect model (each job on `over` exactly when
its measured cost was over its threshold). With prices linear in CPU, "the cheapest machine"
alone would be the same machine for every job; the oracle instead prices what routing is for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from router.learn import verdict
from router.policy import Policy


def price(policy: Policy, machine: str, reference_cost: float) -> float:
    m = policy.machines.get(machine)
    if m is None:
        return 0.0
    return reference_cost / m.speed * m.price


def finished_jobs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("source") == "job" and r.get("state") == "done"
            and r.get("cost") is not None]


def summary(rows: list[dict[str, Any]], policy: Policy) -> dict[str, Any]:
    """Totals per machine and against the baselines, routing accuracy, top templates."""
    jobs = finished_jobs(rows)
    over, under = policy.route["over"], policy.route["under"]
    per_machine: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "cpu_s": 0.0,
                                                                   "cost": 0.0})
    totals = {"actual": 0.0, "always_fast": 0.0, "always_cheap": 0.0, "oracle": 0.0}
    confusion: Counter[str] = Counter()
    templates: dict[str, float] = defaultdict(float)
    for r in jobs:
        ref = r["cost"]
        paid = price(policy, r["machine"], ref)
        m = per_machine[r["machine"]]
        m["jobs"] += 1
        m["cpu_s"] += (r["cpu_user_s"] or 0) + (r["cpu_sys_s"] or 0)
        m["cost"] += paid
        truth = verdict.was_over(ref, verdict.run_threshold(r, policy))
        totals["actual"] += paid
        totals["always_fast"] += price(policy, over, ref)
        totals["always_cheap"] += price(policy, under, ref)
        totals["oracle"] += price(policy, over if truth else under, ref)
        templates[r["template"]] += paid
        if r.get("p_over") is not None:
            predicted = verdict.called_over(r["p_over"], verdict.cut(policy))
            confusion[("t" if predicted == truth else "f") + ("p" if predicted else "n")] += 1
    judged = sum(confusion.values())
    return {
        "jobs": len(jobs), "machines": dict(per_machine),
        "cost": {k: round(v, 6) for k, v in totals.items()},
        "saved_vs_always_fast": round(totals["always_fast"] - totals["actual"], 6),
        "accuracy": round((confusion["tp"] + confusion["tn"]) / judged, 4) if judged else None,
        "confusion": {k: confusion[k] for k in ("tp", "fp", "tn", "fn")},
        "judged": judged,
        "top_templates": sorted(templates.items(), key=lambda kv: -kv[1])[:10],
        "states": dict(Counter(r.get("state") for r in rows if r.get("source") == "job")),
    }


def text(s: dict[str, Any]) -> str:
    """The summary for a terminal."""
    lines = [f"{s['jobs']} finished jobs"]
    for name, m in sorted(s["machines"].items()):
        lines.append(f"  {name:<10} {int(m['jobs']):>6} jobs {m['cpu_s']:>10.3f} CPU s "
                     f"cost {m['cost']:>10.4f}")
    c = s["cost"]
    lines.append(f"cost: routed {c['actual']:.4f}   always-fast {c['always_fast']:.4f}   "
                 f"always-cheap {c['always_cheap']:.4f}   oracle {c['oracle']:.4f}")
    lines.append(f"saved against always-fast: {s['saved_vs_always_fast']:.4f}")
    if s["accuracy"] is not None:
        cm = s["confusion"]
        lines.append(f"routing accuracy {s['accuracy']:.1%} of {s['judged']} model decisions "
                     f"(over: {cm['tp']} right, {cm['fp']} wrong; under: {cm['tn']} right, "
                     f"{cm['fn']} wrong)")
    return "\n".join(lines)
