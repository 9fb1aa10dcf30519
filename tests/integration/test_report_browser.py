"""`router report` in Debian's headless Chromium: the page draws its panels without script
errors, and the screenshot is not blank."""

from __future__ import annotations

import re
import subprocess
import tempfile

from conftest import ROUTER, need_program
from hand_history import HISTORY, POLICY

from router.store import Store

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(["chromium", *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def test_report_renders_its_panels(tmp_path, env):
    need_program("chromium")
    (tmp_path / "p.yaml").write_text(POLICY)
    with Store(env["ROUTER_STORE"]) as st:
        for i, row in enumerate(HISTORY * 5):
            st.add_run({**row, "time": row["time"] + 60 * i})
    page = tmp_path / "report.html"
    r = subprocess.run([*ROUTER, "report", "--policy", str(tmp_path / "p.yaml"), "--out",
                        str(page)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']https?://|url\(["']?https?://|<link""", html)
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert 'data-panels="7"' in dom and "7 panels drawn" in dom
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    from PIL import Image
    pixels = Image.open(shot).convert("L")
    lo, hi = pixels.getextrema()
    assert hi - lo > 100 and len(pixels.getcolors(256)) > 20   # drawn, not blank
