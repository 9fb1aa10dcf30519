"""The system daemon is found from an ordinary login (issue 17 item 1): with XDG_RUNTIME_DIR
set and no daemon of the user's own there, `router submit` reaches /run/router/router.sock
instead of running the job on the submit host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import need, need_root  # noqa: E402
from daemon_fixture import ROUTER, RunningDaemon  # noqa: E402

from router import paths  # noqa: E402
from router.store import Store  # noqa: E402

POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 2}
  fast: {backend: local, price: 3.0, slots: 2}
threshold: 0.04
"""


def test_a_login_with_xdg_runtime_dir_reaches_the_system_daemon(tmp_path):
    need_root()
    system = Path(paths.SYSTEM_SOCKET)
    need(not system.exists(), f"{system} is in use on this machine")
    made = not system.parent.exists()
    system.parent.mkdir(exist_ok=True)
    d = RunningDaemon(tmp_path, POLICY)
    d.sock = system
    d.env["ROUTER_SOCKET"] = str(system)
    try:
        d.start()
        xdg = tmp_path / "xdg"
        xdg.mkdir(mode=0o700)
        env = {k: v for k, v in d.env.items() if k != "ROUTER_SOCKET"}
        env.update(XDG_RUNTIME_DIR=str(xdg), HOME=str(tmp_path))
        r = subprocess.run([*ROUTER, "submit", "--", "/bin/echo", "hi"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == "hi\n" and "running here" not in r.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            assert [(row["machine"], row["source"]) for row in s.all_runs()] == [("cheap", "job")]
        jobs = subprocess.run([*ROUTER, "jobs", "--all"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert jobs.returncode == 0 and "/bin/echo hi" in jobs.stdout
    finally:
        d.stop()
        system.unlink(missing_ok=True)
        if made:
            os.rmdir(system.parent)
