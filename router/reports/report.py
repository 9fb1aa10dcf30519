"""`router report`: one self-contained HTML page, laid out like a dashboard.

Every plot is drawn by matplotlib as inline SVG, so the file needs no network to view and can
be mailed or archived as is. Panels: jobs and CPU per machine over time; cost against
always-fast, always-cheap and the hindsight oracle; routing accuracy over time and the
confusion matrix; model versions; top templates by cost; decision latency.
"""

from __future__ import annotations

import html
import io
import time
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from router import atomic  # noqa: E402

from router.reports import accounting as usage  # noqa: E402
from router.learn import verdict  # noqa: E402
from router.policy import Policy  # noqa: E402

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1f2937;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#cbd5e1;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px;padding:16px}
.panel{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 16px}
.panel h2{font-size:15px;margin:0 0 8px} .panel svg{width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;width:100%} td,th{padding:4px 8px;text-align:right}
th{background:#eef0f3} td:first-child,th:first-child{text-align:left}
.kpi{display:flex;gap:24px;flex-wrap:wrap}.kpi div{font-size:13px;color:#555}
.kpi b{display:block;font-size:22px;color:#111}
"""
SCRIPT = """
document.addEventListener('DOMContentLoaded', function () {
  var drawn = 0;
  document.querySelectorAll('section.panel').forEach(function (p) {
    var c = p.querySelector('svg, table, .kpi');
    if (c && c.getBoundingClientRect().height > 10) drawn++;
  });
  document.getElementById('status').textContent = drawn + ' panels drawn';
  document.body.setAttribute('data-panels', drawn);
});
"""


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _bins(times: list[float]) -> tuple[np.ndarray, float, str]:
    """About 24 bins over the span, labelled in seconds, minutes or hours since the first."""
    lo, hi = min(times), max(times)
    span = max(hi - lo, 1e-3)
    unit, scale = ("s", 1.0) if span < 120 else ("min", 60.0) if span < 7200 else ("h", 3600.0)
    width = span / 24
    return np.arange(lo, hi + width * 1.001, width), scale, unit


def _over_time(jobs: list[dict[str, Any]]) -> str:
    edges, scale, unit = _bins([r["time"] for r in jobs])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 4.2), sharex=True)
    x = (edges[:-1] - edges[0]) / scale
    width = (edges[1] - edges[0]) / scale
    bottom_n, bottom_c = np.zeros(len(x)), np.zeros(len(x))
    for name in sorted({r["machine"] for r in jobs}):
        mine = [r for r in jobs if r["machine"] == name]
        count, _ = np.histogram([r["time"] for r in mine], edges)
        cpu, _ = np.histogram([r["time"] for r in mine], edges,
                              weights=[(r["cpu_user_s"] or 0) + (r["cpu_sys_s"] or 0) for r in mine])
        ax1.bar(x, count, width, bottom=bottom_n, align="edge", label=name)
        ax2.bar(x, cpu, width, bottom=bottom_c, align="edge", label=name)
        bottom_n += count
        bottom_c += cpu
    ax1.set_ylabel("jobs")
    ax2.set_ylabel("CPU s")
    ax2.set_xlabel(f"{unit} since first job")
    ax1.legend(loc="upper right", fontsize=8)
    return _svg(fig)


def _costs(s: dict[str, Any]) -> str:
    labels = ["routed", "always-fast", "always-cheap", "oracle"]
    values = [s["cost"][k] for k in ("actual", "always_fast", "always_cheap", "oracle")]
    fig, ax = plt.subplots(figsize=(7, 3))
    bars = ax.bar(labels, values, color=["#2563eb", "#dc2626", "#16a34a", "#9ca3af"])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_ylabel("cost (price x CPU s)")
    return _svg(fig)


def _accuracy(jobs: list[dict[str, Any]], policy: Policy, s: dict[str, Any]) -> str:
    """Per time bin: the confusion counts (stacked) and the accuracy they make; overall matrix."""
    judged = [r for r in jobs if r.get("p_over") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.5, 3), gridspec_kw={"width_ratios": [2, 1]})
    if judged:
        edges, scale, unit = _bins([r["time"] for r in judged])
        x = (edges[:-1] - edges[0]) / scale
        width = (edges[1] - edges[0]) / scale
        kinds = {"over, right": (True, True), "under, right": (False, False),
                 "over, called under": (True, False), "under, called over": (False, True)}
        bottom = np.zeros(len(x))
        right = np.zeros(len(x))
        for label, (truth, called) in kinds.items():
            sel = [r["time"] for r in judged
                   if verdict.was_over(r["cost"], verdict.run_threshold(r, policy)) == truth
                   and verdict.called_over(r["p_over"], verdict.cut(policy)) == called]
            count, _ = np.histogram(sel, edges)
            ax1.bar(x, count, width, bottom=bottom, align="edge", label=label)
            bottom += count
            if truth == called:
                right += count
        acc = ax1.twinx()
        seen = bottom > 0
        acc.plot(x[seen] + width / 2, right[seen] / bottom[seen], color="k", marker=".")
        acc.set_ylim(0, 1.05)
        acc.set_ylabel("accuracy")
        ax1.set_xlabel(f"{unit} since first job")
        ax1.legend(fontsize=7, loc="lower left")
    ax1.set_ylabel("jobs judged")
    cm = s["confusion"]
    grid = np.array([[cm["tp"], cm["fn"]], [cm["fp"], cm["tn"]]])
    ax2.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax2.text(j, i, str(v), ha="center", va="center")
    ax2.set_xticks([0, 1], ["pred over", "pred under"], fontsize=8)
    ax2.set_yticks([0, 1], ["over", "under"], fontsize=8)
    ax2.set_title("confusion, all", fontsize=9)
    return _svg(fig)


def _templates(s: dict[str, Any]) -> str:
    top = s["top_templates"][:8][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * max(len(top), 2) + 0.8))
    ax.barh([t[-48:] for t, _ in top], [v for _, v in top], color="#7c3aed")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("cost")
    return _svg(fig)


def _latency(jobs: list[dict[str, Any]]) -> str:
    lat = np.array([r["decision_us"] for r in jobs if r.get("decision_us") is not None])
    fig, ax = plt.subplots(figsize=(7, 2.8))
    if len(lat):
        ax.hist(lat, bins=np.logspace(np.log10(max(lat.min(), 1)), np.log10(lat.max() + 1), 30))
        ax.set_xscale("log")
        for q, style in ((50, "--"), (99, ":")):
            v = np.percentile(lat, q)
            ax.axvline(v, color="k", linestyle=style, label=f"p{q} {v:.0f} us")
        ax.legend(fontsize=8)
    ax.set_xlabel("decision latency (us)")
    return _svg(fig)


def _versions(jobs: list[dict[str, Any]]) -> str:
    seen: dict[str, list[float]] = defaultdict(list)
    for r in jobs:
        seen[r.get("model_version") or "(no model)"].append(r["time"])
    rows = "".join(
        f"<tr><td>{html.escape(v)}</td><td>{len(t)}</td>"
        f"<td>{time.strftime('%Y-%m-%d %H:%M', time.localtime(min(t)))}</td>"
        f"<td>{time.strftime('%Y-%m-%d %H:%M', time.localtime(max(t)))}</td></tr>"
        for v, t in sorted(seen.items(), key=lambda kv: min(kv[1])))
    return f"<table><tr><th>model</th><th>jobs</th><th>first</th><th>last</th></tr>{rows}</table>"


def render(rows: list[dict[str, Any]], policy: Policy) -> str:
    """The whole page as one string."""
    s = usage.summary(rows, policy)
    jobs = usage.finished_jobs(rows)
    c = s["cost"]
    kpis = "".join(f"<div><b>{v}</b>{html.escape(k)}</div>" for k, v in (
        ("finished jobs", s["jobs"]), ("routed cost", f"{c['actual']:.4g}"),
        ("saved vs always-fast", f"{s['saved_vs_always_fast']:.4g}"),
        ("routing accuracy", "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}")))
    panels = [("Summary", f"<div class='kpi'>{kpis}</div>")]
    if jobs:
        panels += [
            ("Jobs and CPU per machine over time", _over_time(jobs)),
            ("Cost: routed, always-fast, always-cheap, hindsight oracle", _costs(s)),
            ("Routing accuracy over time, and the confusion matrix", _accuracy(jobs, policy, s)),
            ("Top templates by cost", _templates(s)),
            ("Decision latency", _latency(jobs)),
            ("Model versions", _versions(jobs)),
        ]
    body = "".join(f"<section class='panel'><h2>{html.escape(t)}</h2>{p}</section>"
                   for t, p in panels)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>router report</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body><header>"
            f"<h1>router report</h1><p>{stamp} &middot; policy {html.escape(policy.path)} "
            f"&middot; <span id='status'></span></p></header><div class='grid'>{body}</div>"
            f"</body></html>")


def write_report(rows: list[dict[str, Any]], policy: Policy, out: str) -> str:
    """Write atomically; returns the path."""
    page = render(rows, policy)
    atomic.write(out, page.encode())
    return str(out)
