"""A real daemon that ran jobs, scraped by Debian's Prometheus: every PromQL expression of the
Grafana dashboard returns data through Prometheus's HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request

from conftest import need_program
from daemon_fixture import POLICY, PROG, ROOT, RunningDaemon, free_port, prog_model, wait_for


def query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "deploy/grafana/router.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_every_dashboard_query_returns_data(tmp_path):
    need_program("prometheus")
    metrics_port, prom_port = free_port(), free_port()
    policy = POLICY.replace("daemon: {", f"daemon: {{metrics_port: {metrics_port}, ")
    d = RunningDaemon(tmp_path, policy)
    prog_model(tmp_path / "model.rmod")
    d.start()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: router\n"
                      f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for round_ in range(3):   # jobs across several scrapes, so rates have two samples
            r = d.router("submit", "--each", "--", PROG, input="".join(f"{n}\n" for n in
                                                                      (12, 30, 16, 35)))
            assert r.returncode == 0, r.stderr
            time.sleep(1.2)
        wait_for(lambda: _ok(prom_port, "router_cost_total"), timeout=30, what="first scrape")
        empty = []
        for expr in dashboard_exprs():
            e = expr.replace("$__rate_interval", "1m")
            if not wait_for(lambda: _ok(prom_port, e), timeout=20, what=e):
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
