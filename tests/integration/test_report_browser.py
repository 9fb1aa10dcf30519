"""`router report` in Debian's headless Chromium, at a desktop and a phone width: every panel
has its title, every chart its axis labels, no two pieces of text overlap, nothing spills out
of its panel, and the charts over time share one clock-time axis.

The boxes are read in the browser: a copy of the page, in a same-origin frame of the width
under test (Chromium's window is at least 500 px wide), gets a script that measures every text
element and writes the measurements into the outer page, which `--dump-dom` returns.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import need_program
from page_history import POLICY, history, retrains

from router.policy import parse_policy
from router.reports.report import render

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
AXES = {   # chart panel title -> the starts of the axis labels it must show
    "Jobs per machine": ["time (UTC)", "jobs submitted per"],
    "CPU per machine": ["time (UTC)", "CPU s per"],
    "Cost over time: routed and the alternatives": ["time (UTC)", "cumulative cost (price"],
    "Routing accuracy over time": ["time (UTC)", "model decisions per", "share right"],
    "Predicted against measured cost": ["predicted cost (", "measured cost ("],
    "Decision latency": ["decision latency (µs)", "jobs"],
}
MEASURE = """<script>
function box(e) { var r = e.getBoundingClientRect();
  return {t: e.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom,
          inSvg: !!e.ownerSVGElement}; }
var out = {width: document.documentElement.clientWidth,
           scroll: document.documentElement.scrollWidth, panels: []};
document.querySelectorAll('section.panel').forEach(function (p) {
  var svg = p.querySelector('svg');
  out.panels.push({title: p.querySelector('h2').textContent, panel: box(p),
    svg: svg ? box(svg) : null,
    texts: Array.from(p.querySelectorAll('h2, p, svg text')).map(box)
             .filter(function (b) { return b.t && b.x1 > b.x0; })});
});
var outer = window.parent.document, pre = outer.createElement('pre'); pre.id = 'measured';
pre.textContent = JSON.stringify(out); outer.body.appendChild(pre);
</script>"""


def measure(page: Path, width: int) -> dict:
    probe = page.with_name(f"probe-{width}.html")
    inner = page.read_text().replace("</body>", MEASURE + "</body>")
    probe.write_text(f"<!doctype html><html><body style='margin:0'><iframe style='border:0;"
                     f"width:{width}px;height:4000px' srcdoc=\"{html.escape(inner)}\">"
                     f"</iframe></body></html>")
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(["chromium", *FLAGS, f"--user-data-dir={profile}",
                            "--window-size=1400,2000", "--dump-dom", probe.as_uri()],
                           capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="measured">(.*?)</pre>', r.stdout, re.S)
    assert found, r.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


def overlaps(texts: list[dict]) -> list[tuple[str, str]]:
    """Pairs of text boxes that share more than a sliver (1 px each way)."""
    bad = []
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            w = min(a["x1"], b["x1"]) - max(a["x0"], b["x0"])
            h = min(a["y1"], b["y1"]) - max(a["y0"], b["y0"])
            if w > 1 and h > 1:
                bad.append((a["t"], b["t"]))
    return bad


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    need_program("chromium")
    out = tmp_path_factory.mktemp("report") / "report.html"
    out.write_text(render(history(), parse_policy(POLICY), cost_means={"/p {num}": [0.3, 3.5]},
                          retrains=retrains()))
    return out


@pytest.mark.parametrize("width", [1280, 390])
def test_panels_are_titled_labelled_and_do_not_overlap(page, width):
    m = measure(page, width)
    assert m["width"] == width and m["scroll"] <= width, "the page is wider than the window"
    titles = [p["title"] for p in m["panels"]]
    assert set(AXES) <= set(titles), titles
    ticks = []
    for p in m["panels"]:
        assert p["title"].strip()
        texts = [t["t"] for t in p["texts"]]
        for label in AXES.get(p["title"], []):
            assert any(t.startswith(label) for t in texts), (p["title"], label, texts)
        assert not overlaps(p["texts"]), (width, p["title"], overlaps(p["texts"]))
        for t in p["texts"]:
            box = p["svg"] if t["inSvg"] else p["panel"]
            assert box["x0"] - 1 <= t["x0"] and t["x1"] <= box["x1"] + 1, (width, p["title"], t)
            assert box["y0"] - 1 <= t["y0"] and t["y1"] <= box["y1"] + 1, (width, p["title"], t)
        if "time (UTC)" in AXES.get(p["title"], []):
            ticks.append([t["t"] for t in p["texts"] if re.fullmatch(r"\d\d:\d\d", t["t"])])
    assert ticks and all(t == ticks[0] for t in ticks), ticks   # one clock-time axis
