"""A full disk (a small tmpfs under the history and the spool): a submit gets one error line
and no hang, output still reaches its submitter, the slot is freed, a job's end is recorded
once space returns, SIGTERM still stops the daemon, and a start on a full disk says so."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import need_root  # noqa: E402
from daemon_fixture import ROUTER, RunningDaemon, wait_for  # noqa: E402

from router.errors import StoreError  # noqa: E402
from router.store import Store  # noqa: E402

POLICY = """
machines:
  only: {backend: local, slots: 1}
threshold: 1.0
daemon: {drain_timeout: 5, model_poll_s: 0.2}
"""
RUN = {"time": 1.0, "user": "t", "template": "x", "features": [], "machine": "only",
       "source": "collect"}


@pytest.fixture
def disk(tmp_path):
    need_root()
    path = tmp_path / "disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path, store: Path) -> Path:
    """Everything the tmpfs has left, in one file; then what the store has spare, in rows."""
    filler = disk / "filler"
    with Store(store) as s:
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        try:
            while True:
                s.add_run(dict(RUN, argv=["x" * 100_000]))
        except StoreError:
            pass
    return filler


def test_a_full_disk_refuses_in_one_line_and_loses_no_end(tmp_path, disk):
    d = RunningDaemon(tmp_path, POLICY, {"ROUTER_STORE": str(disk / "history.db")})
    go = tmp_path / "go"
    d.start()
    try:
        job = int(d.router("submit", "--parsable", "--detach", "--", "/bin/sh", "-c",
                           f"while [ ! -e {go} ]; do sleep 0.05; done; echo ended").stdout)
        wait_for(lambda: d.status(job)["state"] == "running", what="running")
        filler = fill(disk, disk / "history.db")
        r = d.router("submit", "--", "/bin/echo", "while full", timeout=30)
        if r.returncode != 0:
            assert "disk full" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        else:
            assert r.stdout == "while full\n"       # the history had room: output came
        go.touch()
        wait_for(lambda: f"job {job}: end not recorded" in d.log.read_text(),
                 what="the end refused by the full disk")
        assert d.status(job)["state"] == "running"
        filler.unlink()
        wait_for(lambda: d.status(job)["state"] == "done", what="the end recorded")
        r = d.router("submit", "--", "/bin/echo", "after", timeout=30)
        assert r.returncode == 0 and r.stdout == "after\n"      # the one slot is free
        d.signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()


def test_a_start_on_a_full_disk_says_so(tmp_path, disk):
    """It cannot start (one line), or it starts and warns: either way it names the disk."""
    d = RunningDaemon(tmp_path, POLICY, {"ROUTER_STORE": str(disk / "history.db")})
    fill(disk, disk / "history.db")
    d.proc = subprocess.Popen([*ROUTER, "daemon"], env=d.env, cwd=tmp_path,
                              stdout=open(d.log, "ab"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: d.proc.poll() is not None or "submits are refused" in d.log.read_text(),
                 what="the daemon's word on the full disk")
        log = d.log.read_text()
        assert f"disk full at {disk}" in log and "Traceback" not in log, log
        if d.proc.poll() is not None:
            assert d.proc.returncode != 0 and len(log.strip().splitlines()) == 1, log
    finally:
        d.stop()
