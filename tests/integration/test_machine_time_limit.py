"""A machine's default time limit (issue 17 item 6): a job submitted there without --time is
killed after the policy's `time_limit` and recorded timed_out; --time wins over it."""

from __future__ import annotations

import pytest

from daemon_fixture import POLICY, RunningDaemon
from router.store import Store

LIMITED = POLICY.replace("cheap: {backend: local,", "cheap: {backend: local, time_limit: '0:1',")


@pytest.fixture
def limited(tmp_path):
    d = RunningDaemon(tmp_path, LIMITED)
    yield d.start()
    d.stop()


def _last(d: RunningDaemon) -> dict:
    with Store(d.env["ROUTER_STORE"], readonly=True) as s:
        return s.all_runs()[-1]


def test_machine_default_time_limit_applies_without_time(limited):
    assert "time_limit: '0:1'" in LIMITED
    r = limited.router("submit", "-p", "cheap", "--", "/bin/sleep", "300", timeout=60)
    assert r.returncode == 143, r.stderr
    job = _last(limited)
    assert job["machine"] == "cheap" and job["state"] == "timed_out" and job["timed_out"]


def test_time_flag_wins_and_other_machines_have_none(limited):
    r = limited.router("submit", "-p", "cheap", "--time", "5:00", "--", "/bin/sleep", "3",
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert _last(limited)["state"] == "done"
    r = limited.router("submit", "-p", "fast", "--", "/bin/sleep", "3", timeout=60)
    assert r.returncode == 0, r.stderr
    assert _last(limited)["state"] == "done"
