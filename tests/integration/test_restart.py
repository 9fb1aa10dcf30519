"""kill -9 of the daemon: the next one runs the detached jobs still queued (same ids, once),
kills and records as killed the jobs that were running unsupervised, cancels the attached
ones whose submitters left with it; nothing is left both running and marked lost. A queued
job's environment waits in the daemon's private spool, never in the history."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from daemon_fixture import ROUTER, RunningDaemon, wait_for  # noqa: E402

from router.daemon import process  # noqa: E402
from router.store import Store  # noqa: E402

POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 2}
threshold: 0.04
daemon: {drain_timeout: 1, model_poll_s: 0.2}
"""
SECRET = "hunter2-3f9c1b"


def alive(pid: int, started: int) -> bool:
    """Still that process, and not a zombie waiting for init."""
    if process.start_time(pid) != started:
        return False
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"


def rows(d: RunningDaemon, ids: list[int]) -> list[dict]:
    with Store(d.env["ROUTER_STORE"]) as s:
        return [s.get(i) for i in ids]


def test_kill_9_requeues_queued_jobs_and_kills_running_ones(tmp_path):
    d = RunningDaemon(tmp_path, POLICY).start()
    pids: list[tuple[int, int]] = []
    try:
        blockers, queued, limited, attached = _load(d)
        attached_id = limited + 1
        wait_for(lambda: rows(d, [attached_id])[0], what="the attached job recorded")
        pids = [(r["pid"], r["pid_start"]) for r in rows(d, blockers)]
        _assert_env_private(d, queued)
        d.kill9()
        attached.wait(timeout=30)
        assert all(alive(*p) for p in pids)             # unsupervised until the next daemon
        d.start()
        wait_for(lambda: all(r["state"] == "done" for r in rows(d, queued)),
                 what="the queued jobs run by the new daemon")
        assert [r["state"] for r in rows(d, blockers)] == ["killed", "killed"]
        wait_for(lambda: rows(d, [limited])[0]["state"] == "timed_out", timeout=30,
                 what="the --time job timed out after the restart")
        wait_for(lambda: not any(alive(*p) for p in pids), what="the blockers' end")
        assert rows(d, [attached_id])[0]["state"] == "cancelled"
        for n, job in enumerate(queued[:-1]):
            r = d.router("follow", str(job))
            assert r.stdout == f"job{n}\n" and r.returncode == 0
        assert d.router("follow", str(queued[-1])).stdout == SECRET + "\n"   # its env survived
        assert not list((d.tmp / "spool").glob("*.env"))
        r = d.router("submit", "--", "/bin/echo", "next")
        assert r.returncode == 0 and r.stdout == "next\n"
    finally:
        d.stop()
        for pid, started in pids or _recorded_pids(d):
            process.kill_group(pid, started)


def _load(d: RunningDaemon) -> tuple[list[int], list[int], int, subprocess.Popen]:
    """Two running blockers (recorded with their pids), six queued jobs behind them (the last
    reads a secret from its environment), one with a time limit, and an attached one."""
    submit = ["submit", "--parsable", "--detach", "--"]
    blockers = [int(d.router(*submit, "/bin/sleep", "300").stdout) for _ in range(2)]
    queued = [int(d.router(*submit, "/bin/echo", f"job{n}").stdout) for n in range(5)]
    secret_env = dict(d.env, ROUTER_TEST_SECRET=SECRET)
    queued.append(int(d.router(*submit, "/usr/bin/printenv", "ROUTER_TEST_SECRET",
                               env=secret_env).stdout))
    limited = int(d.router(*submit[:-1], "--time", "0:01", "--", "/bin/sleep", "60").stdout)
    attached = subprocess.Popen([*ROUTER, "submit", "--", "/bin/echo", "attached"],
                                env=d.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: all(r["pid_start"] is not None for r in rows(d, blockers)),
             what="blockers recorded running with their pids")
    return blockers, queued, limited, attached


def _assert_env_private(d: RunningDaemon, queued: list[int]) -> None:
    """Each queued job's environment in a 0600 file of the 0700 spool; not a byte of it in the
    history (its WAL included), which the daemon's group may read."""
    spool = d.tmp / "spool"
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    for job in queued:
        assert stat.S_IMODE((spool / f"{job}.env").stat().st_mode) == 0o600
    assert all(r["env"] is None for r in rows(d, queued))
    for path in d.tmp.glob("history.db*"):
        assert SECRET.encode() not in path.read_bytes(), path


def _recorded_pids(d: RunningDaemon) -> list[tuple[int, int]]:
    """What a failed test leaves: every job recorded with a pid, so none outlives it."""
    with Store(d.env["ROUTER_STORE"]) as s:
        return [(r["pid"], r["pid_start"]) for r in s.all_runs() if r.get("pid_start")]
