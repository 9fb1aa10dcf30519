"""`router submit` with no daemon runs the job here and prices it like any other run."""

from __future__ import annotations

import os
import subprocess
import sys

from router.policy import load_policy
from router.reports import accounting
from router.store import Store

POLICY = """\
machines:
  capped:
    backend: local
    price: 1.0
    speed: 2.0
    options: {cpu_quota: 0.25}
  box:
    backend: local
    price: 3.0
    speed: 4.0
threshold: 0.04
route:
  over: box
  under: capped
"""
BUSY = ["/usr/bin/python3", "-S", "-c", "x = 0\nfor i in range(300000):\n    x += i\n"]


def test_a_run_without_a_daemon_is_priced_on_this_hosts_machine_at_its_speed(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    store = tmp_path / "history.db"
    env = dict(os.environ, ROUTER_POLICY=str(policy), ROUTER_STORE=str(store),
               ROUTER_MODEL=str(tmp_path / "model.rmod"),
               ROUTER_SOCKET=str(tmp_path / "no-daemon.sock"))
    done = subprocess.run([sys.executable, "-m", "router", "submit", "--here", "--", *BUSY], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "running here" in done.stderr
    with Store(store) as s:
        rows = s.all_runs()
    (row,) = rows
    cpu = row["cpu_user_s"] + row["cpu_sys_s"]
    assert cpu > 0
    # the uncapped local machine is this host as it ran the job; its speed prices it
    assert (row["machine"], row["cost"]) == ("box", round(cpu * 4.0, 6))
    summary = accounting.summary(rows, load_policy(policy))
    assert summary["machines"]["box"]["cost"] == accounting.price(load_policy(policy), "box",
                                                                   row["cost"]) > 0
