"""Two real hosts over ssh: routing by a trained model, remote CPU in the history, a cheap host
that really runs slower, and fallback when the fast host's sshd dies."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

import hosts as test_hosts
from conftest import EXAMPLES, need, need_program, need_root
from daemon_fixture import ROUTER, RunningDaemon, wait_for

from router.policy import load_policy
from router.store import Store


@pytest.fixture(scope="module")
def hosts():
    need_root()
    need_program("/usr/sbin/sshd", "ssh", "ip", "unshare", "setpriv")
    need(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists(), "needs cgroup v1 cpu controller")
    made = None
    try:
        made = test_hosts.setup()
        yield made
    finally:
        test_hosts.teardown(made)
        if made is not None:
            shutil.rmtree(made.tmp, ignore_errors=True)


def policy(h: test_hosts.Hosts) -> str:
    opts = json.dumps(h.ssh_options())
    return f"""
machines:
  cheap:
    backend: ssh
    price: 1.0
    slots: 2
    options: {{host: {h.address('cheap')}, user: {test_hosts.USER}, ssh_options: {opts}}}
  fast:
    backend: ssh
    price: 3.0
    slots: 2
    fallback: cheap
    options: {{host: {h.address('fast')}, user: {test_hosts.USER}, ssh_options: {opts}}}
threshold: 0.04
route: {{over: fast, under: cheap}}
daemon: {{drain_timeout: 10}}
"""


def job(h: test_hosts.Hosts, n: str) -> list[str]:
    """Prints the host it ran on, then burns examples/prog's CPU for input n."""
    return ["/bin/sh", "-c", 'hostname; exec "$0" "$1"', str(h.tmp / "prog"), n]


def test_routes_to_real_hosts_measures_remote_cpu_and_falls_back(hosts, tmp_path):
    for name in ("prog", "_work.py"):
        shutil.copy(EXAMPLES / name, hosts.tmp / name)
    d = RunningDaemon(tmp_path, policy(hosts))
    lines = "".join(f"{n}\n" for n in range(10, 65, 2))
    r = d.router("collect", "--", *job(hosts, "{}")[:-1], input=lines, timeout=300)
    assert r.returncode == 0, r.stderr
    assert d.router("train", timeout=300).returncode == 0
    d.start()
    try:
        hi = d.router("submit", "--", *job(hosts, "30"), timeout=60)
        lo = d.router("submit", "--", *job(hosts, "12"), timeout=60)
        assert hi.returncode == 0 and hi.stdout.split("\n")[0] == "fast", hi.stdout + hi.stderr
        assert lo.returncode == 0 and lo.stdout.split("\n")[0] == "cheap", lo.stdout + lo.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            rows = [r for r in s.all_runs() if r["source"] == "job"]
        assert [r["machine"] for r in rows] == ["fast", "cheap"]
        assert rows[0]["cpu_user_s"] > 0.03 and rows[0]["cost"] > rows[1]["cost"] > 0

        cal = json.loads(d.router("calibrate", "--json", "--write", "--repeat", "1",
                                  timeout=120).stdout)
        # 25% of a core: its wall time is at least ~4x its CPU, however loaded the machine is
        # (a bound the quota sets, not a race between two measured runs)
        assert cal["cheap"]["wall_s"] > 3.0 * cal["cheap"]["cpu_s"], cal
        assert 0.5 < cal["fast"]["speed"] < 2.0, cal                          # same CPUs
        written = load_policy(d.policy).machines
        assert [written[m].speed for m in ("cheap", "fast")] == \
            [cal[m]["speed"] for m in ("cheap", "fast")]

        hosts.kill_sshd("fast")
        r = d.router("submit", "--", *job(hosts, "30"), timeout=60)
        assert r.returncode == 0 and r.stdout.split("\n")[0] == "cheap", r.stdout + r.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            last = s.all_runs()[-1]
        assert last["machine"] == "cheap" and last["reason"] == "fast down: fallback"
    finally:
        d.stop()
        test_hosts.start_sshd(hosts, "fast")


def test_unreachable_host_without_fallback_fails_in_one_line(hosts, tmp_path):
    text = policy(hosts).replace(hosts.address("cheap"), "10.201.0.9")   # nobody there
    d = RunningDaemon(tmp_path, text.replace("route: {over: fast, under: cheap}",
                                             "route: {over: cheap, under: cheap}")).start()
    try:
        r = d.router("submit", "--", "/bin/true", timeout=60)
        assert r.returncode == 127 and "cheap: host 10.201.0.9 unreachable" in r.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            row = s.all_runs()[-1]
        assert row["state"] == "failed" and "unreachable" in row["stderr_tail"]
    finally:
        d.stop()


def test_a_host_without_the_agents_python_fails_in_one_line(hosts, tmp_path):
    text = policy(hosts).replace("route: {over: fast, under: cheap}",
                                 "route: {over: cheap, under: cheap}")
    text = text.replace(f"user: {test_hosts.USER},", f"user: {test_hosts.USER}, "
                        "python: /nonexistent/python3,")
    d = RunningDaemon(tmp_path, text).start()
    try:
        r = d.router("submit", "--", "/bin/true", timeout=60)
        assert r.returncode == 127 and "no agent" in r.stderr and "python3" in r.stderr, r.stderr
    finally:
        d.stop()


def test_ctrl_c_kills_the_remote_process_group(hosts, tmp_path):
    text = policy(hosts).replace("route: {over: fast, under: cheap}",
                                 "route: {over: cheap, under: cheap}")
    d = RunningDaemon(tmp_path, text).start()

    def remote_sleeps() -> list[str]:
        """The test user's live sleeps (killed ones stay zombies until the subreaper reaps)."""
        ps = subprocess.run(["ps", "-u", test_hosts.USER, "-o", "stat=,comm="],
                            capture_output=True, text=True).stdout.splitlines()
        return [line for line in ps if line.split()[-1] == "sleep" and "Z" not in line.split()[0]]
    try:
        client = subprocess.Popen([*ROUTER, "submit", "--", "/bin/sh", "-c",
                                   "sleep 4242 & sleep 4243; wait"], env=d.env)
        wait_for(lambda: len(remote_sleeps()) == 2, what="the remote job and its child")
        client.send_signal(signal.SIGINT)
        assert client.wait(timeout=30) != 0
        wait_for(lambda: not remote_sleeps(), what="the remote process group killed")
        with Store(d.env["ROUTER_STORE"]) as s:
            assert wait_for(lambda: s.all_runs()[-1]["state"] == "cancelled", what="cancelled")
    finally:
        d.stop()
