"""`router collect` says when runs failed (issue 17 item 7): non-zero exit, a count, and
`--text` lines that mark them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from router.store import Store

ROOT = Path(__file__).resolve().parents[2]


def test_collect_text_marks_failures_and_exits_non_zero(env):
    r = subprocess.run([sys.executable, "-m", "router", "collect", "--text", "--", "/bin/sh", "-c",
                        "exit $(($0 % 2))"], input="1\n2\n3\n", env=env, capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and "2 of 3 runs failed" in r.stderr
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines["1"].endswith(" failed exit 1") and lines["2"].split() == [lines["2"].split()[0]]
    with Store(env["ROUTER_STORE"]) as s:
        assert sorted(row["state"] for row in s.all_runs()) == ["done", "failed", "failed"]
    r = subprocess.run([sys.executable, "-m", "router", "collect", "--timeout", "0.2", "--text",
                        "--", "/bin/sleep"], input="30\n", env=env, capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 1 and " timed_out exit " in r.stdout
