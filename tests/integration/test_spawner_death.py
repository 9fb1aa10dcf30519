"""`kill -9` of the job spawner under a real daemon: what it ran is killed, recorded `lost`
(its end was never seen, so it is no measured run and no training sample), and the next job
gets a new spawner."""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

from daemon_fixture import POLICY, RunningDaemon, wait_for

from router.store import Store  # noqa: E402



def _spawner(daemon_pid: int) -> int | None:
    """The daemon's child that runs the spawner, if it has one now."""
    with open(f"/proc/{daemon_pid}/task/{daemon_pid}/children") as f:
        children = [int(p) for p in f.read().split()]
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawner" in f.read():
                    return pid
        except FileNotFoundError:
            continue
    return None


def _pid_in(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def test_a_killed_spawners_jobs_are_killed_and_lost_never_measured(tmp_path):
    d = RunningDaemon(tmp_path, POLICY).start()
    try:
        pidfile = tmp_path / "job.pid"
        r = d.router("submit", "--detach", "--parsable", "--", "sh", "-c",
                     f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec sleep 300")
        assert r.returncode == 0, r.stderr
        job_id = int(r.stdout.split()[0])
        pid = wait_for(lambda: _pid_in(pidfile), what="the job's pid")
        watch = os.pidfd_open(pid)          # names this process only, whatever reuses its pid
        try:
            wait_for(lambda: d.status(job_id)["state"] == "running", what="running")
            assert d.proc is not None
            spawner = wait_for(lambda: _spawner(d.proc.pid), what="the spawner")
            os.kill(spawner, signal.SIGKILL)
            job = wait_for(lambda: (lambda j: j if j["state"] != "running" else None)(
                d.status(job_id)), what="the job's end")
            orphaned = select.select([watch], [], [], 20)[0] != [watch]
            assert not orphaned, "the job runs on without a parent"
        finally:
            if select.select([watch], [], [], 0)[0] != [watch]:
                signal.pidfd_send_signal(watch, signal.SIGKILL)   # ours, by its pidfd
            os.close(watch)
        assert (job["state"], job["exit"], job["cost"]) == ("lost", None, None), job
        with Store(tmp_path / "history.db") as store:
            assert store.get(job_id)["done_seq"] is None
            assert job_id not in [row["id"] for row in store.runs()]
            assert job_id not in [row["id"] for row in store.reservoir()]
        again = d.router("submit", "--", "echo", "again")
        assert (again.returncode, again.stdout) == (0, "again\n"), again.stderr
    finally:
        d.stop()
