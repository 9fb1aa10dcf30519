"""Build deploy/grafana/router.json with Grafana's own SDK (grafana-foundation-sdk).

A build-time tool, not part of the daemon: `pip install '.[dashboard]'`, then
`python deploy/grafana/dashboard.py --write` after changing a panel; tests/reports/
test_dashboard.py fails while the committed JSON differs from what this builds.

The dashboard works both imported by hand and provisioned from a file: the Prometheus data
source is a template variable (`datasource`), not an import-time `${DS_...}` input, and
`__requires` names what it needs. An `instance` variable filters every query. Counters are
only ever graphed through rate() or increase(), so a daemon restart is not a drop.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUT = Path(__file__).with_name("router.json")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'instance=~"$instance"'
RANGE = "$__range"
RATE = "$__rate_interval"
REQUIRES = [
    {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
    {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
    {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
]


def _q(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend)


def _ts(title: str, unit: str, *queries: prometheus.Dataquery, desc: str = "",
        width: int = 12) -> timeseries.Panel:
    p = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(width)
    for ref, q in zip("ABCDEFGH", queries):
        p = p.with_target(q.ref_id(ref))
    return p.description(desc) if desc else p


def _stat(title: str, unit: str, expr: str, desc: str) -> stat.Panel:
    return (stat.Panel().title(title).unit(unit).datasource(DS).height(4).span(6)
            .with_target(_q(expr, "").ref_id("A")).description(desc))


def _quantiles(metric: str, by: str = "machine") -> list[prometheus.Dataquery]:
    return [_q(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{SEL}}}"
               f"[{RATE}])))", f"p{int(q * 100)} {{{{{by}}}}}") for q in (0.5, 0.95)]


def _stats() -> list:
    """The top row: what it cost and saved, how right the model was, how old it is."""
    cost = f"sum(increase(router_cost_total{{{SEL}}}[{RANGE}]))"
    fast = f"sum(increase(router_always_fast_cost_total{{{SEL}}}[{RANGE}]))"
    right = f'sum(increase(router_predictions_total{{{SEL},outcome="right"}}[{RANGE}]))'
    judged = f"sum(increase(router_predictions_total{{{SEL}}}[{RANGE}]))"
    return [
        _stat("Cost in the time range", "none", cost, "price x CPU s of finished jobs"),
        _stat("Saved against all on the fast machine", "none", f"{fast} - {cost}",
              "what the same jobs would have cost on the over machine, less what they did"),
        _stat("Routing accuracy in the time range", "percentunit", f"{right} / {judged}",
              "model calls that the measured cost proved right"),
        _stat("Model age", "s", f"max(router_model_age_seconds{{{SEL}}})",
              "since the model in use was trained"),
    ]


def panels() -> list:
    """Top to bottom: what it cost and saved, traffic, the model, then capacity."""
    return _stats() + [
        _ts("Jobs routed by machine", "reqps",
            _q(f"sum by (machine) (rate(router_jobs_total{{{SEL}}}[{RATE}]))")),
        _ts("Jobs routed by reason", "reqps",
            _q(f"sum by (reason) (rate(router_jobs_total{{{SEL}}}[{RATE}]))"),
            desc="the CLI's words: model: over, no model for template, ..."),
        _ts("Jobs ended by state", "reqps",
            _q(f"sum by (state) (rate(router_jobs_finished_total{{{SEL}}}[{RATE}]))"),
            _q(f"sum(rate(router_jobs_timed_out_total{{{SEL}}}[{RATE}]))", "timed out"),
            _q(f"sum(rate(router_fallbacks_total{{{SEL}}}[{RATE}]))", "fallbacks")),
        _ts("Busiest templates (jobs/s)", "reqps",
            _q(f"topk(10, sum by (template) (rate(router_template_jobs_total{{{SEL}}}"
               f"[{RATE}])))"),
            desc="templates beyond daemon.metrics_templates count as other"),
        _ts("CPU by machine", "s",
            _q(f"sum by (machine) (rate(router_cpu_seconds_total{{{SEL}}}[{RATE}]))"),
            desc="CPU seconds used per second"),
        _ts("Cost rate: routed and the alternatives", "none",
            _q(f"sum(rate(router_cost_total{{{SEL}}}[{RATE}]))", "routed"),
            _q(f"sum(rate(router_always_fast_cost_total{{{SEL}}}[{RATE}]))", "all on fast"),
            _q(f"sum(rate(router_always_cheap_cost_total{{{SEL}}}[{RATE}]))", "all on cheap"),
            desc="price x CPU s per second"),
        _ts("Job duration", "s", *_quantiles("router_job_duration_seconds")),
        _ts("Queue wait", "s", *_quantiles("router_queue_wait_seconds")),
        _ts("Model right and wrong", "reqps",
            _q(f"sum by (outcome) (rate(router_predictions_total{{{SEL}}}[{RATE}]))")),
        _ts("Recent accuracy by template", "percentunit",
            _q(f"router_recent_accuracy{{{SEL}}}", "{{template}}")),
        _ts("Retrains", "short",
            _q(f"sum by (outcome) (increase(router_retrains_total{{{SEL}}}[1h]))"),
            desc="candidates promoted and rejected per hour"),
        _ts("Decision latency", "s",
            *_quantiles("router_decision_latency_seconds", "instance")),
        _ts("Queue depth", "short", _q(f"sum by (machine) (router_queue_depth{{{SEL}}})")),
        _ts("Free slots", "short", _q(f"sum by (machine) (router_free_slots{{{SEL}}})")),
        _ts("Model version", "short",
            _q(f"max by (version, retrain) (router_model_info{{{SEL}}})", "{{version}}"),
            width=24),
    ]


def build() -> dict:
    dash = (gd.Dashboard("router").uid("router").tags(["router"]).refresh("30s")
            .time("now-6h", "now").timezone("browser")
            .with_variable(gd.DatasourceVariable("datasource").label("Prometheus")
                           .type("prometheus"))
            .with_variable(gd.QueryVariable("instance").label("instance").datasource(DS)
                           .query("label_values(router_slots, instance)").multi(True)
                           .include_all(True).all_value(".*")
                           .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)))
    for i, p in enumerate(panels(), 1):
        dash = dash.with_panel(p.id(i))
    out = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    return {"__requires": REQUIRES, **out}


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        OUT.write_text(render())
    else:
        sys.stdout.write(render())
