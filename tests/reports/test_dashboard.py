"""deploy/grafana/router.json is what deploy/grafana/dashboard.py builds with Grafana's SDK, and
every panel is usable as provisioned: a data source variable, an instance filter, a unit, and
counters only through rate() or increase()."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = json.loads((ROOT / "deploy/grafana/router.json").read_text())


def _builder():
    pytest.importorskip("grafana_foundation_sdk")
    spec = importlib.util.spec_from_file_location("dashboard", ROOT / "deploy/grafana/dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_json_is_what_the_code_builds():
    assert (ROOT / "deploy/grafana/router.json").read_text() == _builder().render(), \
        "run: python deploy/grafana/dashboard.py --write"


def test_provisionable_without_inputs():
    text = json.dumps(COMMITTED)
    assert "${DS_" not in text and "__inputs" not in COMMITTED
    names = {v["name"]: v for v in COMMITTED["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource"
    assert names["datasource"]["query"] == "prometheus"
    assert {r["id"] for r in COMMITTED["__requires"]} >= {"grafana", "prometheus"}
    assert "instance" in names


def test_every_panel_has_a_unit_the_filter_and_rates_over_counters():
    for p in COMMITTED["panels"]:
        assert p["fieldConfig"]["defaults"].get("unit"), p["title"]
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            expr = t["expr"]
            assert 'instance=~"$instance"' in expr, (p["title"], expr)
            for m in re.finditer(r"(\w+)\s*\(\s*router_\w+_(total|bucket)\b", expr):
                assert m.group(1) in ("rate", "increase"), (p["title"], expr)
            bare = re.sub(r"(rate|increase)\(router_\w+\{[^}]*\}\[[^\]]+\]\)", "", expr)
            assert not re.search(r"router_\w+_(total|bucket)", bare), (p["title"], expr)
