"""The metrics' labels stay bounded and speak the CLI's words, without a daemon: one-off
command lines beyond daemon.metrics_templates count as `other`, and no `_created` series."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from router.policy import Decision, parse_policy
from router.reports.metrics import Metrics

POLICY = """
machines:
  cheap: {price: 1.0, slots: 2, fallback: fast}
  fast: {price: 3.0, slots: 1}
route: {over: fast, under: cheap}
daemon: {metrics_templates: 2}
"""


def test_templates_are_bounded_and_reasons_are_the_clis():
    m = Metrics(parse_policy(POLICY), CollectorRegistry())
    unknown = Decision("cheap", "no model for template", kind="unknown_template")
    for _ in range(3):
        m.decided(unknown, "busy", 1e-4)
    m.sample({"cheap": 0, "fast": 0}, {"cheap": 1, "fast": 0}, None, {})   # busy gets a series
    m.decided(unknown, "busy", 1e-4)
    for i in range(50):
        m.decided(Decision("fast", "model p=0.9 >= 0.5", 0.9), f"prog --id={i:06x}", 1e-4)
        m.sample({"cheap": 0, "fast": 1}, {"cheap": 1, "fast": 1}, None, {})
    m.decided(unknown, "prog --id=000000", 1e-4)   # the second and last with a series
    job = SimpleNamespace(id=1, machine="fast", reason="cheap down: fallback", template="x")
    m.job_finished(job, {"state": "done", "cost": 1.0, "wall_s": 0.5, "timed_out": 1}, True)
    text = generate_latest(m.registry).decode()
    templates = {line.split('"')[1] for line in text.splitlines()
                 if line.startswith("router_template_jobs_total{")}
    assert templates == {"busy", "prog --id=000000", "other"}
    assert 'reason="no model for template"' in text and 'reason="model: over"' in text
    assert "unknown_template" not in text and "_created" not in text
    assert 'router_fallbacks_total{machine="fast",machine_down="cheap"} 1.0' in text
    assert 'router_free_slots{machine="cheap"} 1.0' in text
    assert 'router_jobs_timed_out_total{machine="fast"} 1.0' in text
