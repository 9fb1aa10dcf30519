"""`router submit` as sbatch, srun and xargs users script it (issue 17 items 2, 5, 7): a real
daemon, real jobs, the exit codes and the streams each mode promises."""

from __future__ import annotations

import json
import os
import re

import pytest

from daemon_fixture import POLICY, RunningDaemon, wait_for

from router.store import Store  # noqa: E402

EPOCH = re.compile(r"\b1[0-9]{9}\.[0-9]+")


@pytest.fixture
def daemon(tmp_path):
    d = RunningDaemon(tmp_path, POLICY)
    yield d.start()
    d.stop()


def _runs(d: RunningDaemon) -> list[dict]:
    with Store(d.env["ROUTER_STORE"]) as s:
        return s.all_runs()


def test_each_dry_run_runs_nothing(daemon, tmp_path):
    marker = tmp_path / "ran"
    r = daemon.router("submit", "--each", "--dry-run", "--", "/bin/sh", "-c",
                      f"touch {marker}", input="1\n2\n3\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3 and all(l.startswith("cheap\t") for l in
                                                   r.stdout.splitlines())
    assert not marker.exists() and _runs(daemon) == []


def test_parsable_returns_at_once_and_wait_stays_attached(daemon):
    r = daemon.router("submit", "--parsable", "--", "/bin/sleep", "300", timeout=30)
    assert r.returncode == 0 and r.stdout.strip().isdigit(), r.stderr
    job = int(r.stdout)
    assert daemon.status(job)["state"] in ("queued", "running")
    assert daemon.router("cancel", str(job)).returncode == 0
    wait_for(lambda: daemon.status(job)["state"] == "cancelled", what="cancelled")
    r = daemon.router("submit", "--parsable", "--wait", "--", "/bin/sh", "-c", "echo hi; exit 3")
    assert r.returncode == 3 and r.stdout.split() == [r.stdout.split()[0], "hi"]
    r = daemon.router("submit", "--each", "--parsable", "--", "/bin/true", input="1\n2\n3\n")
    ids = r.stdout.split()
    assert r.returncode == 0 and len(ids) == 3 and all(i.isdigit() for i in ids)


def test_json_events_on_stdout_job_output_on_stderr(daemon):
    for args, stdin in ((["submit", "--json"], None), (["submit", "--each", "--json"], "a\nb\n")):
        r = daemon.router(*args, "--", "/bin/sh", "-c", "echo Z$((20+22))", input=stdin)
        events = [json.loads(line) for line in r.stdout.splitlines()]
        assert r.returncode == 0 and events and events[-1]["event"] == "exit"
        assert "Z42" in r.stderr and "Z42" not in r.stdout


def test_exit_codes_of_jobs_and_of_router(daemon, tmp_path):
    noexec = tmp_path / "noexec"
    noexec.write_text("#!/bin/sh\necho x\n")
    os.chmod(noexec, 0o644)
    cases = [(["/bin/sh", "-c", "exit 3"], 3), (["/bin/sh", "-c", "kill -TERM $$"], 143),
             (["/nonexistent/prog"], 127), ([str(noexec)], 126)]
    for cmd, code in cases:
        r = daemon.router("submit", "--", *cmd)
        assert r.returncode == code, (cmd, r.returncode, r.stderr)
    r = daemon.router("submit", "-p", "nowhere", "--", "/bin/true")
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "nowhere" in r.stderr
    env = dict(daemon.env, ROUTER_SOCKET=str(tmp_path / "none.sock"))
    r = daemon.router("submit", "--", "/bin/true", env=env)
    assert r.returncode == 125 and "--here" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("script,code", [
    ("exit $(($0 % 2))", 123), ("[ $0 = 2 ] && exit 255; :", 124),
    ("[ $0 = 2 ] && kill -9 $$; :", 125), ("[ $0 = 2 ] && exec /nonexistent; :", 127)])
def test_each_exits_as_xargs(daemon, script, code):
    r = daemon.router("submit", "--each", "--", "/bin/sh", "-c", script, input="1\n2\n3\n")
    assert r.returncode == code, r.stderr


def test_machine_flag_forces_a_policy_machine(daemon):
    assert daemon.router("submit", "-p", "fast", "--", "/bin/true").returncode == 0
    assert daemon.router("submit", "--machine", "fast", "--", "/bin/true").returncode == 0
    assert [(r["machine"], r["reason"]) for r in _runs(daemon)] == [("fast", "forced by -p")] * 2


def test_failures_are_recorded_and_shown_as_what_they_are(daemon):
    r = daemon.router("submit", "--", "/bin/sh", "-c", "kill -TERM $$")
    assert r.returncode == 143
    job = _runs(daemon)[-1]["id"]
    assert daemon.status(job)["state"] == "failed"
    text = daemon.router("status", str(job)).stdout
    assert re.search(r"state: failed\n", text) and re.search(r"exit: exit 143\n", text)
    assert not EPOCH.search(text) and "{" not in text and "[" not in text
    jobs = daemon.router("jobs", "--all").stdout
    assert " failed " in jobs and not EPOCH.search(jobs)
    line = json.loads(daemon.router("jobs", "--all", "--json").stdout.splitlines()[-1])
    assert line["state"] == "failed" and line["exit"] == -15
    daemon_text = daemon.router("status").stdout
    assert "counters: " in daemon_text and "{" not in daemon_text


def test_joblog_resume_failed_and_retries(daemon, tmp_path):
    log = tmp_path / "joblog"
    cmd = ["--", "/bin/sh", "-c", "echo $0; exit $(($0 % 2))"]
    r = daemon.router("submit", "--each", "--joblog", str(log), *cmd, input="1\n2\n3\n4\n")
    assert r.returncode == 123
    rows = [l.split("\t") for l in log.read_text().splitlines()]
    assert rows[0][:3] == ["Seq", "Host", "Starttime"] and len(rows) == 5
    assert sorted((int(r[0]), r[6]) for r in rows[1:]) == [(1, "1"), (2, "0"), (3, "1"), (4, "0")]
    again = daemon.router("submit", "--each", "--joblog", str(log), "--resume-failed", "--",
                          "/bin/echo", "again", input="1\n2\n3\n4\n")
    assert again.returncode == 0 and sorted(again.stdout.split()) == ["1", "3", "again", "again"]
    flaky = tmp_path / "flaky"
    r = daemon.router("submit", "--each", "--retries", "2", "--", "/bin/sh", "-c",
                      f'echo x >> {flaky}; [ $(wc -l < {flaky}) -ge 3 ]', input="1\n")
    assert r.returncode == 0 and flaky.read_text().count("x") == 3


def test_halt_soon_stops_submitting(daemon):
    lines = "".join(f"{i}\n" for i in range(1, 41))
    r = daemon.router("submit", "--each", "--halt", "soon,fail=1", "--", "/bin/sh", "-c",
                      "[ $0 = 1 ] && exit 1; sleep 0.2", input=lines)
    assert r.returncode == 123 and "--halt soon" in r.stderr
    ran = [row for row in _runs(daemon) if row["state"] in ("done", "failed")]
    assert len(ran) < 40


def test_bar_shows_progress(daemon):
    r = daemon.router("submit", "--each", "--bar", "--", "/bin/true", input="1\n2\n3\n")
    assert r.returncode == 0 and "3/3 100%" in r.stderr


def test_time_limit_kills_and_records_timed_out(daemon):
    r = daemon.router("submit", "--time", "0:1", "--", "/bin/sleep", "300", timeout=60)
    assert r.returncode == 143, r.stderr
    job = _runs(daemon)[-1]
    assert job["state"] == "timed_out" and job["timed_out"]
    assert "timed_out" in daemon.router("log", "--state", "timed_out").stdout
    r = daemon.router("submit", "--time", "soon", "--", "/bin/true")
    assert r.returncode == 125 and "--time" in r.stderr


def test_log_filters_fields_and_json(daemon):
    daemon.router("submit", "--", "/bin/true")
    daemon.router("submit", "-p", "fast", "--", "/bin/sh", "-c", "exit 4")
    r = daemon.router("log", "-o", "id,state,exit,machine", "--noheader")
    assert [l.split() for l in r.stdout.splitlines()] == [
        ["1", "done", "exit", "0", "cheap"], ["2", "failed", "exit", "4", "fast"]]
    r = daemon.router("log", "--state", "failed", "--json")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [(row["id"], row["exit"], row["machine"]) for row in rows] == [(2, 4, "fast")]
    assert {"wait", "wall", "cpu", "maxrss", "p", "cost", "template"} <= set(rows[0])
    assert daemon.router("log", "--machine", "cheap", "--noheader").stdout.count("\n") == 1
    assert daemon.router("log", "--user", "nobody-else", "--noheader").stdout == ""
    assert daemon.router("log", "--since", "1h", "--noheader").stdout.count("\n") == 2
    head = daemon.router("log").stdout.splitlines()[0].split()
    assert head[:4] == ["ID", "USER", "STATE", "EXIT"] and "WAIT" in head and "MAXRSS" in head
    bad = daemon.router("log", "-o", "id,bogus")
    assert bad.returncode == 125 and "bogus" in bad.stderr


def test_after_waits_for_done_and_skips_after_a_failure(daemon, tmp_path):
    first = daemon.router("submit", "--parsable", "--", "/bin/sh", "-c",
                          f"sleep 1; echo a >> {tmp_path / 'order'}").stdout.strip()
    r = daemon.router("submit", "--after", first, "--", "/bin/sh", "-c",
                      f"echo b >> {tmp_path / 'order'}")
    assert r.returncode == 0 and (tmp_path / "order").read_text() == "a\nb\n", r.stderr
    bad = daemon.router("submit", "--parsable", "--", "/bin/false").stdout.strip()
    r = daemon.router("submit", "--after", bad, "--", "/bin/echo", "never")
    assert "never" not in r.stdout and f"job {bad} failed" in r.stderr
    assert _runs(daemon)[-1]["state"] == "cancelled"


def test_a_job_waiting_on_after_can_be_cancelled(daemon):
    first = daemon.router("submit", "--parsable", "--", "/bin/sleep", "300").stdout.strip()
    second = daemon.router("submit", "--parsable", "--after", first, "--", "/bin/true")
    job = second.stdout.strip()
    assert second.returncode == 0 and daemon.status(int(job))["state"] == "queued"
    assert daemon.router("cancel", job).returncode == 0
    wait_for(lambda: daemon.status(int(job))["state"] == "cancelled", what="cancelled")
    assert daemon.router("cancel", first).returncode == 0


def test_halt_now_cancels_the_running_jobs(daemon):
    r = daemon.router("submit", "--each", "--halt", "now,fail=1", "--", "/bin/sh", "-c",
                      "[ $0 = 1 ] && exit 1; sleep 300", input="1\n2\n3\n4\n", timeout=60)
    assert r.returncode == 123 and "--halt now" in r.stderr
    wait_for(lambda: {row["state"] for row in _runs(daemon)} <= {"failed", "cancelled"},
             what="every job ended")
