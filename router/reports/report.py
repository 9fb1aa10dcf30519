"""`router report`: one self-contained HTML page, laid out like a dashboard.

Charts are inline SVG (see `plots`) and everything else is HTML tables, so the file needs no
network to view and can be mailed or archived as is. Template names and command lines live in
table cells, where they wrap at any width instead of being cut. The order is what an operator
looks for first: totals and failures, money against time per machine and alternative, then
per template, then the model and its retrains.
"""

from __future__ import annotations

import html
import logging
import os
import time
from collections import Counter, defaultdict
from typing import Any

from router import atomic
from router.learn import retrainlog
from router.policy import Policy
from router.reports import accounting as usage
from router.reports import plots

log = logging.getLogger(__name__)

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1f2937;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,600px),1fr));
gap:16px;padding:16px}
.panel{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);
padding:12px 16px;min-width:0}
.panel.wide{grid-column:1/-1}
.panel h2{font-size:15px;margin:0 0 8px} .panel svg{width:100%;height:auto;display:block}
.panel p{font-size:12px;color:#555;margin:6px 0 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;width:100%}
td,th{padding:4px 8px;text-align:right;vertical-align:top}
th{background:#eef0f3} td:first-child,th:first-child{text-align:left}
td.name{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere;
min-width:12ch}
.kpi{display:flex;gap:24px;flex-wrap:wrap}.kpi div{font-size:13px;color:#555}
.kpi b{display:block;font-size:22px;color:#111}
"""


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _clock(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def table(head: list[str], rows: list[list[Any]], names: int = 1) -> str:
    """Cells are text, escaped; the first `names` columns are names that may wrap anywhere."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f"<td{' class=name' if i < names else ''}>{html.escape(_fmt(c))}</td>"
        for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<div class=scroll><table><tr>{th}</tr>{body}</table></div>"


def _kpis(s: dict[str, Any]) -> str:
    o, c = s["outcomes"], s["cost"]
    items = (("finished jobs", s["jobs"]), (f"routed cost ({s['unit']})", f"{c['routed']:.4g}"),
             ("saved vs all on the fast machine", f"{s['saved_vs_always_fast']:.4g}"),
             ("routing accuracy", "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"),
             ("failed", o["failed"]), ("cancelled", o["cancelled"]),
             ("timed out", o["timed out"]), ("lost", o["lost"]))
    return "<div class='kpi'>" + "".join(f"<div><b>{html.escape(str(v))}</b>"
                                         f"{html.escape(k)}</div>" for k, v in items) + "</div>"


def _money_and_time(s: dict[str, Any]) -> str:
    machines = table(["machine", "jobs", "CPU s", f"cost ({s['unit']})", "wall s", "mean wait s",
                      "mean turnaround s"],
                     [[n, int(m["jobs"]), m["cpu_s"], m["cost"], m["wall_s"], m["mean_wait_s"],
                       m["mean_turnaround_s"]] for n, m in sorted(s["machines"].items())])
    alts = table(["if every job had run", f"cost ({s['unit']})", "wall s", "mean wait s",
                  "mean turnaround s"],
                 [[b["label"], b["cost"], b["wall_s"], b["mean_wait_s"], b["mean_turnaround_s"]]
                  for b in s["baselines"]])
    return (machines + "<p>Turnaround is queue wait plus run, from submission to the end.</p>"
            + alts + "<p>Alternatives are replayed: each job at its submission time, its "
            "measured wall time scaled by machine speed, first come first served per slot.</p>")


def _templates(s: dict[str, Any]) -> str:
    rows = [[t["template"], t["jobs"], _pct(t["accuracy"]), _pct(t["recent_accuracy"]),
             t["drifting"], _pct(t["share_fast"]), t["predicted_cost"], t["measured_cost"],
             t["cost"]] for t in s["templates"][:50]]
    return table(["template", "jobs", "accuracy", "recent accuracy", "drifting", "sent fast",
                  "predicted cost (ref CPU s)", "measured cost (ref CPU s)",
                  f"cost ({s['unit']})"], rows)


def _outcomes(rows: list[dict[str, Any]]) -> str:
    jobs = [r for r in rows if r.get("source") == "job"]
    by: dict[str, Counter[str]] = defaultdict(Counter)
    for r in jobs:
        by[r["machine"]][r.get("state") or "?"] += 1
        by[r["machine"]]["timed out"] += bool(r.get("timed_out"))
    cols = ["done", "failed", "cancelled", "timed out", "lost", "queued", "running"]
    return table(["machine", *cols], [[m, *(c[k] for k in cols)] for m, c in sorted(by.items())])


def _confusion(s: dict[str, Any]) -> str:
    cm = s["confusion"]
    return table(["measured \\ called", "called over", "called under"],
                 [["was over", cm["tp"], cm["fn"]], ["was under", cm["fp"], cm["tn"]]])


def _versions(jobs: list[dict[str, Any]]) -> str:
    seen: dict[str, list[float]] = defaultdict(list)
    for r in jobs:
        seen[r.get("model_version") or "(no model)"].append(r["time"])
    return table(["model", "jobs", "first job (UTC)", "last job (UTC)"],
                 [[v, len(t), _clock(min(t)), _clock(max(t))]
                  for v, t in sorted(seen.items(), key=lambda kv: min(kv[1]))])


def _retrains(records: list[dict[str, Any]]) -> str:
    rows = [[_clock(r.get("time")), "promoted" if r.get("promoted") else
             "rejected" if r.get("version") else "nothing to train", r.get("version"),
             r.get("candidate_accuracy"), r.get("current_accuracy"), r.get("holdout"),
             r.get("new_runs"), r.get("reason")] for r in records[-30:][::-1]]
    return table(["when (UTC)", "outcome", "candidate", "candidate score", "current score",
                  "held out", "new runs", "why"], rows, names=0)


def _charts(rows: list[dict[str, Any]], policy: Policy, s: dict[str, Any],
            cost_means: dict[str, list[float]]) -> list[tuple[str, str | None]]:
    jobs = sorted(usage.finished_jobs(rows), key=lambda r: r["time"])
    axis = plots.TimeAxis.over([r["time"] for r in jobs])
    colours = plots.machine_colours(policy, jobs)
    labels = {b["name"]: b["label"] for b in s["baselines"]}
    return [
        ("Jobs per machine", plots.jobs_over_time(jobs, axis, colours)),
        ("CPU per machine", plots.cpu_over_time(jobs, axis, colours)),
        ("Cost over time: routed and the alternatives",
         plots.cost_over_time(jobs, policy, axis, labels)),
        ("Routing accuracy over time", plots.accuracy_over_time(jobs, policy, axis)),
        ("Predicted against measured cost",
         plots.predicted_vs_measured(jobs, cost_means, colours)),
        ("Decision latency", plots.latency(jobs)),
    ]


def render(rows: list[dict[str, Any]], policy: Policy, *,
           cost_means: dict[str, list[float]] | None = None,
           retrains: list[dict[str, Any]] | None = None) -> str:
    """The whole page as one string."""
    s = usage.summary(rows, policy, cost_means)
    panels: list[tuple[str, str, bool]] = [("Summary", _kpis(s), True)]
    if s["jobs"]:
        charts = _charts(rows, policy, s, cost_means or {})
        panels += [("Money and time per machine and alternative", _money_and_time(s), True)]
        panels += [(t, c, False) for t, c in charts if c is not None]
        panels += [("Templates, most jobs first", _templates(s), True),
                   ("Model calls against measured cost", _confusion(s), False),
                   ("Model versions", _versions(usage.finished_jobs(rows)), False)]
    panels += [("Outcomes per machine", _outcomes(rows), False),
               ("Retrains (newest first)", _retrains(retrains or []), True)]
    body = "".join(f"<section class='panel{' wide' if wide else ''}'><h2>{html.escape(t)}</h2>"
                   f"{p}</section>" for t, p, wide in panels)
    times = [r["time"] for r in rows if r.get("source") == "job"]
    span = f"jobs {_clock(min(times))} to {_clock(max(times))} UTC" if times else "no jobs"
    return (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>router report</title><style>{STYLE}</style></head><body><header>"
            f"<h1>router report</h1><p>{html.escape(span)} &middot; made "
            f"{_clock(time.time())} UTC &middot; policy {html.escape(policy.path)}</p></header>"
            f"<div class='grid'>{body}</div></body></html>")


def model_inputs(model_path: str | None) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """The model's per-template cost means (for predicted cost) and the retrain log; both
    empty when there is no model, which a report must survive."""
    if not model_path:
        return {}, []
    cost_means: dict[str, list[float]] = {}
    if os.path.exists(model_path):
        from router.errors import RouterError
        from router.learn import modelfile
        try:
            cost_means = modelfile.load(model_path).meta.get("cost_means", {})
        except RouterError as exc:
            log.warning("report without predicted costs: %s", exc)
    return cost_means, retrainlog.read(model_path)[0]


def write_report(rows: list[dict[str, Any]], policy: Policy, out: str,
                 model_path: str | None = None) -> str:
    """Write atomically; returns the path."""
    cost_means, retrains = model_inputs(model_path)
    page = render(rows, policy, cost_means=cost_means, retrains=retrains)
    atomic.write(out, page.encode())
    return str(out)
