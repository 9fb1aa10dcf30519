"""A member of the daemon's group reads the system history while the daemon writes it: the
state directory is 0750 (root and the group), the user may not write there, and
`router report` opens the history read-only (it used to fail: "attempt to write a readonly
database" once the daemon had stopped)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import ROOT, ROUTER, need_root
from daemon_fixture import POLICY, PROG, RunningDaemon

from router.store import Store

NOBODY = 65534


def _reachable_tree(mount: Path, env: dict[str, str]) -> list[str]:
    """A clone made by root in a 0700 directory is out of the member's reach, .venv and all:
    in a mount namespace of its own the tree is bound where it can be reached."""
    if not sys.executable.startswith(str(ROOT) + os.sep):
        return []
    mount.mkdir(mode=0o755)
    env["PYTHONPATH"] = str(mount)
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(ROOT), str(mount)]


def _router(mount: Path) -> list[str]:
    if not sys.executable.startswith(str(ROOT) + os.sep):
        return ROUTER
    return [str(mount / os.path.relpath(sys.executable, ROOT)), "-m", "router"]


def test_group_member_reports_on_the_running_daemons_history():
    need_root()
    tmp_path = Path(tempfile.mkdtemp(prefix="router-shared-"))   # pytest's are 0700 all up
    os.chmod(tmp_path, 0o755)
    state = tmp_path / "state"
    state.mkdir()
    d = RunningDaemon(tmp_path, POLICY, {"ROUTER_STORE": str(state / "history.db")})
    d.start()
    try:
        r = d.router("submit", "--each", "--", PROG, input="3\n5\n")
        assert r.returncode == 0, r.stderr
        os.chown(state, 0, NOBODY)
        os.chmod(state, 0o750)
        for f in state.iterdir():
            os.chown(f, 0, NOBODY)
            os.chmod(f, 0o640)
        env = {**d.env, "HOME": str(tmp_path)}
        as_member = [*_reachable_tree(tmp_path / "tree", env), "setpriv", f"--reuid={NOBODY}",
                     f"--regid={NOBODY}", "--clear-groups", *_router(tmp_path / "tree"),
                     "report", "--text", "--policy", str(d.policy)]
        for daemon_running in (True, False):   # stopped, the WAL's files are gone
            if not daemon_running:
                assert d.stop() == 0 and not (state / "history.db-shm").exists()
            r = subprocess.run(as_member, env=env, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, (daemon_running, r.stderr)
            assert r.stdout.startswith("2 finished jobs"), r.stdout
    finally:
        d.stop()
        shutil.rmtree(tmp_path)


LOOP = ["/bin/sh", "-c", 'i=0; while [ "$i" -lt "$1" ]; do i=$((i + 1)); done', "sweep"]


def test_group_member_adds_a_sweep_to_the_system_history_through_the_socket():
    """The system history is written by the daemon alone: a member's sweep goes in as jobs
    (`router submit --each`), measured by the daemon and recorded under the member's uid;
    writing the file directly (`router collect` into it) is refused in one line."""
    need_root()
    tmp_path = Path(tempfile.mkdtemp(prefix="router-shared-"))
    os.chmod(tmp_path, 0o755)
    state = tmp_path / "state"
    state.mkdir()
    policy = POLICY + "  socket_group: nogroup\n  socket_mode: 0660\n"
    policy = policy.replace("daemon: {drain_timeout: 20, model_poll_s: 0.2}",
                            "daemon:\n  drain_timeout: 20\n  model_poll_s: 0.2")
    d = RunningDaemon(tmp_path, policy, {"ROUTER_STORE": str(state / "history.db")})
    d.start()
    try:
        os.chown(state, 0, NOBODY)
        os.chmod(state, 0o750)
        env = {**d.env, "HOME": str(tmp_path)}
        member = [*_reachable_tree(tmp_path / "tree", env), "setpriv", f"--reuid={NOBODY}",
                  f"--regid={NOBODY}", "--clear-groups", *_router(tmp_path / "tree")]
        r = subprocess.run([*member, "submit", "--each", "--json", "--", *LOOP], env=env,
                           input="20000\n40000\n", cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        with Store(state / "history.db") as s:
            rows = [row for row in s.all_runs() if row["argv"][:3] == LOOP[:3]]
        assert [(row["uid"], row["user"], row["source"], row["state"]) for row in rows] == \
            [(NOBODY, "nobody", "job", "done")] * 2
        assert all(row["cost"] > 0 for row in rows)
        for daemon_running in (True, False):   # stopped, the WAL's files are gone
            if not daemon_running:
                assert d.stop() == 0
            r = subprocess.run([*member, "collect", "--", *LOOP], env=env, input="10\n",
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert r.returncode != 0 and len(r.stderr.splitlines()) == 1, r.stderr
            assert str(state) in r.stderr and "submit --each" in r.stderr, r.stderr
    finally:
        d.stop()
        shutil.rmtree(tmp_path)
