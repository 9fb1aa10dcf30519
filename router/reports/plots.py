"""The report's charts, drawn by matplotlib as inline SVG with real text elements.

Every label may come from a user's command line, so mathtext is off (`$(seq 30)` is text,
and `kill -TERM $$` no longer stops the report). Every chart over time shares one clock-time
axis (UTC), and each colour has one meaning across the page: machines, baselines and routing
outcomes take theirs from separate lists.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402

from router.learn import verdict  # noqa: E402
from router.policy import Policy  # noqa: E402
from router.reports.accounting import UNIT, predicted_cost, price  # noqa: E402
from router.reports.baselines import over_threshold  # noqa: E402

plt.rcParams.update({"text.parse_math": False, "svg.fonttype": "none", "font.size": 10,
                     "font.family": "DejaVu Sans", "svg.hashsalt": "router"})

MACHINE_COLOURS = ("#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#393b79")
BASELINE_COLOURS = {"routed": "#111111", "always_fast": "#d62728", "always_cheap": "#2ca02c",
                    "hindsight": "#9467bd"}
OUTCOME_COLOURS = {"called over, was over": "#7f7f7f", "called under, was under": "#c7c7c7",
                   "called under, was over": "#bcbd22", "called over, was under": "#f0e442"}
LATENCY_COLOUR = "#08306b"
ACCURACY_COLOUR = "#6b3d9a"
UTC = dt.timezone.utc


def machine_colours(policy: Policy, jobs: list[dict[str, Any]]) -> dict[str, str]:
    """The policy's machines in its order, then any the history has that it lost."""
    names = list(policy.machines) + sorted({r["machine"] for r in jobs} - set(policy.machines))
    return {n: MACHINE_COLOURS[i % len(MACHINE_COLOURS)] for i, n in enumerate(names)}


@dataclass
class TimeAxis:
    """One set of bins over the whole history, shared by every chart over time."""

    edges: np.ndarray         # epoch seconds

    @classmethod
    def over(cls, times: list[float]) -> TimeAxis:
        lo, hi = min(times), max(times)
        width = max(hi - lo, 60.0) / 24
        return cls(np.arange(lo, lo + width * 25.001, width))

    @property
    def width_s(self) -> float:
        return float(self.edges[1] - self.edges[0])

    def x(self, seconds: Any) -> Any:
        return mdates.date2num(_dates(seconds))

    def apply(self, ax: Any) -> None:
        locator = mdates.AutoDateLocator(tz=UTC, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
        ax.set_xlim(self.x([self.edges[0], self.edges[-1]]))
        ax.set_xlabel("time (UTC)")

    def bin_label(self) -> str:
        w = self.width_s
        return f"{w:.0f} s" if w < 120 else f"{w / 60:.0f} min" if w < 7200 else f"{w / 3600:.1f} h"


def _dates(seconds: Any) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(float(s), UTC) for s in np.atleast_1d(seconds)]


def svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(height: float = 3.2) -> tuple[Any, Any]:
    return plt.subplots(figsize=(6.4, height), layout="constrained")


def _log(ax: Any, which: str, lo: float, hi: float) -> None:
    """Log scale with plain numbers (the default labels are mathtext, which is off) where the
    values span decades; under a decade a linear axis has more ticks to read."""
    if hi < 10 * lo:
        return
    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(mticker.NullFormatter())


def _legend(fig: Any, ax: Any, ncol: int = 4) -> None:
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside upper center", ncol=ncol, fontsize=9, frameon=False)


def _per_machine(jobs: list[dict[str, Any]], axis: TimeAxis, colours: dict[str, str],
                 weight: Any, ylabel: str) -> str:
    fig, ax = _figure()
    left = axis.x(axis.edges[:-1])
    width = axis.width_s / 86400
    bottom = np.zeros(len(left))
    for name, colour in colours.items():
        mine = [r for r in jobs if r["machine"] == name]
        if not mine:
            continue
        counts, _ = np.histogram([r["time"] for r in mine], axis.edges,
                                 weights=[weight(r) for r in mine])
        ax.bar(left, counts, width, bottom=bottom, align="edge", label=name, color=colour)
        bottom += counts
    ax.set_ylabel(ylabel)
    axis.apply(ax)
    _legend(fig, ax)
    return svg(fig)


def jobs_over_time(jobs: list[dict[str, Any]], axis: TimeAxis, colours: dict[str, str]) -> str:
    return _per_machine(jobs, axis, colours, lambda r: 1,
                        f"jobs submitted per {axis.bin_label()}")


def cpu_over_time(jobs: list[dict[str, Any]], axis: TimeAxis, colours: dict[str, str]) -> str:
    return _per_machine(jobs, axis, colours,
                        lambda r: (r["cpu_user_s"] or 0) + (r["cpu_sys_s"] or 0),
                        f"CPU s per {axis.bin_label()}")


def cost_over_time(jobs: list[dict[str, Any]], policy: Policy, axis: TimeAxis,
                   labels: dict[str, str]) -> str:
    """Cumulative cost as routed and under each alternative, job by job."""
    over, under = policy.route["over"], policy.route["under"]
    choose = {"routed": lambda r: r["machine"], "always_fast": lambda r: over,
              "always_cheap": lambda r: under,
              "hindsight": lambda r: over if over_threshold(r, policy) else under}
    fig, ax = _figure()
    times = [r["time"] for r in jobs]
    for name, pick in choose.items():
        paid = np.cumsum([price(policy, pick(r), r["cost"]) for r in jobs])
        ax.step(axis.x(times), paid, where="post", color=BASELINE_COLOURS[name],
                linestyle="-" if name == "routed" else "--", label=labels[name])
    ax.set_ylabel(f"cumulative cost ({UNIT})")
    axis.apply(ax)
    _legend(fig, ax, ncol=2)
    return svg(fig)


def accuracy_over_time(jobs: list[dict[str, Any]], policy: Policy, axis: TimeAxis) -> str:
    """Per bin the model's calls stacked by outcome, and the share right on a second axis."""
    judged = [r for r in jobs if r.get("p_over") is not None]
    fig, ax = _figure(3.4)
    left = axis.x(axis.edges[:-1])
    width = axis.width_s / 86400
    bottom, right = np.zeros(len(left)), np.zeros(len(left))
    for label, colour in OUTCOME_COLOURS.items():
        called_over, was_over = label.startswith("called over"), label.endswith("was over")
        sel = [r["time"] for r in judged
               if verdict.called_over(r["p_over"], verdict.cut(policy)) == called_over
               and over_threshold(r, policy) == was_over]
        counts, _ = np.histogram(sel, axis.edges)
        ax.bar(left, counts, width, bottom=bottom, align="edge", label=label, color=colour)
        bottom += counts
        if called_over == was_over:
            right += counts
    ax.set_ylabel(f"model decisions per {axis.bin_label()}")
    acc = ax.twinx()
    seen = bottom > 0
    acc.plot(left[seen] + width / 2, right[seen] / bottom[seen], color=ACCURACY_COLOUR,
             marker="o", markersize=3, label="accuracy (right axis)")
    acc.set_ylim(0, 1.05)
    acc.set_yticks([0.25, 0.5, 0.75, 1.0])   # none at 0, where the last time label is
    acc.set_ylabel("share right")
    axis.apply(ax)
    fig.legend(loc="outside upper center", ncol=2, fontsize=9, frameon=False)
    return svg(fig)


def predicted_vs_measured(jobs: list[dict[str, Any]], cost_means: dict[str, list[float]],
                          colours: dict[str, str]) -> str | None:
    """Each decided job: the model's expected cost against the measured one, on log axes."""
    points = [(p, r["cost"], r["machine"]) for r in jobs
              if (p := predicted_cost(r, cost_means)) is not None and p > 0 and r["cost"] > 0]
    if not points:
        return None
    fig, ax = _figure(3.6)
    for name, colour in colours.items():
        mine = [(p, c) for p, c, m in points if m == name]
        if mine:
            ax.scatter(*zip(*mine), s=12, color=colour, label=f"ran on {name}", alpha=0.8)
    lo = min(min(p, c) for p, c, _ in points)
    hi = max(max(p, c) for p, c, _ in points)
    ax.plot([lo, hi], [lo, hi], color="#999999", linewidth=1, label="predicted = measured")
    _log(ax, "x", lo, hi)   # one scale for both, so the diagonal is the diagonal
    _log(ax, "y", lo, hi)
    ax.set_xlabel("predicted cost (reference CPU s)")
    ax.set_ylabel("measured cost (reference CPU s)")
    _legend(fig, ax, ncol=3)
    return svg(fig)


def latency(jobs: list[dict[str, Any]]) -> str | None:
    lat = np.array([r["decision_us"] for r in jobs if r.get("decision_us") is not None])
    if not len(lat):
        return None
    fig, ax = _figure(3.0)
    lo, hi = max(float(lat.min()), 1.0), max(float(lat.max()), 1.0) * 1.01 + 1
    bins = np.logspace(np.log10(lo), np.log10(hi), 30) if hi >= 10 * lo else 30
    ax.hist(lat, bins=bins, color=LATENCY_COLOUR)
    _log(ax, "x", lo, hi)
    ax.set_xlabel("decision latency (µs)")
    ax.set_ylabel("jobs")
    return svg(fig)
