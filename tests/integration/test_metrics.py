"""A real daemon that ran jobs, scraped by Debian's Prometheus: every PromQL expression of the
Grafana dashboard returns data through Prometheus's HTTP API, and the exposition is what the
metrics module promises (bounded labels, the CLI's words, no `_created`, the policy's address).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import need_program
from daemon_fixture import PROG, ROOT, RunningDaemon, free_port, prog_model, wait_for

from router.learn import retrainlog

ADDRESS = "127.0.0.2"      # not the default: the policy's address is the one listened on
POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 2, fallback: fast}
  fast: {backend: local, price: 3.0, slots: 2}
threshold: 0.04
route: {over: fast, under: cheap}
daemon: {drain_timeout: 20, model_poll_s: 0.2, metrics_templates: 2, metrics_address: %s,
         metrics_port: %d}
"""


def query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "deploy/grafana/router.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def grafana_to_promql(expr: str) -> str:
    return (expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
            .replace("$instance", ".*"))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{ADDRESS}:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def submit_jobs(d: RunningDaemon) -> None:
    for _ in range(3):   # jobs across several scrapes, so rates have two samples
        r = d.router("submit", "--each", "--", PROG, input="".join(f"{n}\n" for n in
                                                                  (12, 30, 16, 35)))
        assert r.returncode == 0, r.stderr
        time.sleep(1.2)
    for i in range(4):   # one-off command lines: each its own template
        r = d.router("submit", "--", "/bin/sh", "-c", f"exit 0 # run {i} of 2026-12-02T15:0{i}")
        assert r.returncode == 0, r.stderr


def check_exposition(text: str) -> None:
    assert "_created" not in text
    templates = set(re.findall(r'^router_template_jobs_total\{template="([^"]*)"', text, re.M))
    assert "other" in templates and len(templates - {"other"}) <= 2, templates
    reasons = set(re.findall(r'^router_jobs_total\{[^}]*reason="([^"]*)"', text, re.M))
    assert reasons <= {"model: over", "model: under", "no model", "no model for template",
                       "uncertain", "expected cost"} and "no model for template" in reasons
    for series in ('router_job_duration_seconds_bucket{le="+Inf",machine="fast"}',
                   'router_queue_wait_seconds_count{machine="cheap"}',
                   'router_free_slots{machine="fast"}',
                   'router_retrains_total{outcome="promoted"} 1.0',
                   'router_fallbacks_total{machine="fast",machine_down="cheap"} 0.0',
                   "router_model_age_seconds", 'router_model_info{generation="1"'):
        assert series in text, series


def test_every_dashboard_query_returns_data(tmp_path):
    need_program("prometheus")
    metrics_port, prom_port = free_port(), free_port()
    d = RunningDaemon(tmp_path, POLICY % (ADDRESS, metrics_port))
    prog_model(tmp_path / "model.rmod")
    d.start()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: router\n"
                      f"    static_configs: [{{targets: ['{ADDRESS}:{metrics_port}']}}]\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        retrainlog.append(str(tmp_path / "model.rmod"), {"time": time.time(), "promoted": True,
                                                         "version": "v2-test", "holdout": 3})
        submit_jobs(d)
        wait_for(lambda: 'router_retrains_total{outcome="promoted"} 1.0' in scrape(metrics_port),
                 what="the retrain counted")
        check_exposition(scrape(metrics_port))
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", metrics_port)) != 0   # only where the policy says
        wait_for(lambda: _ok(prom_port, "router_cost_total"), timeout=30, what="first scrape")
        empty = []
        for expr in dashboard_exprs():
            e = grafana_to_promql(expr)
            try:
                wait_for(lambda: _ok(prom_port, e), timeout=20, what=e)
            except AssertionError:
                empty.append(expr)
        assert not empty
        accuracy = float(query(prom_port, 'sum(router_predictions_total{outcome="right"}) / '
                                          'sum(router_predictions_total)')[0]["value"][1])
        assert accuracy >= 0.75   # the flow of data is tested here, not the model
    finally:
        prom.terminate()
        prom.wait(timeout=20)
        d.stop()


def _ok(port: int, expr: str) -> bool:
    try:
        return bool(query(port, expr))
    except OSError:
        return False


def test_scrape_config_is_valid():
    need_program("promtool")
    r = subprocess.run(["promtool", "check", "config", str(ROOT / "deploy/prometheus/router.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
