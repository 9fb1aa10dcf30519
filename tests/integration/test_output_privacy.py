"""A job's output and record are its owner's (issue 19 item 3): the spool is readable by the
daemon alone, and what `router jobs` shows of other users' jobs is the policy's choice, off by
default and never to users the policy refuses."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess

from daemon_fixture import POLICY, RunningDaemon, wait_for
from users import Client, setpriv, shared_dir

SHARED = POLICY.replace("daemon: {", "daemon: {socket_mode: 0666, ")


def _as(user: pwd.struct_passwd, d: RunningDaemon, others: Client,
        *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(others.argv(user, "-m", "router", *args),
                          env=others.env(d.env, HOME="/", USER=user.pw_name),
                          capture_output=True, text=True, timeout=60, cwd="/")


def _listed(user: pwd.struct_passwd, d: RunningDaemon, others: Client) -> set[str]:
    r = _as(user, d, others, "jobs", "--all", "--json")
    assert r.returncode == 0, r.stderr
    return {json.loads(line)["argv"][-1] for line in r.stdout.splitlines()}


def _run_detached(user: pwd.struct_passwd, d: RunningDaemon, others: Client, word: str) -> int:
    r = _as(user, d, others, "submit", "--parsable", "--detach", "--", "/bin/echo", word)
    assert r.returncode == 0, r.stderr
    job = int(r.stdout)
    wait_for(lambda: d.status(job)["state"] == "done", what=f"job {job} done")
    return job


def test_spool_and_job_list_are_private_by_default(other_users, others):
    a, b = other_users
    tmp = shared_dir("router-privacy-")
    d = RunningDaemon(tmp, SHARED)
    d.start()
    try:
        job_a = _run_detached(a, d, others, "secret-a")
        _run_detached(b, d, others, "secret-b")
        spool = tmp / "spool"
        assert stat.S_IMODE(spool.stat().st_mode) == 0o700
        out = spool / f"{job_a}.out"
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        peek = subprocess.run([*setpriv(b), "cat", str(out)], capture_output=True, text=True,
                              timeout=60, cwd="/")
        assert peek.returncode != 0 and "secret-a" not in peek.stdout
        r = _as(a, d, others, "follow", str(job_a))
        assert r.returncode == 0 and "secret-a" in r.stdout, r.stderr
        assert _listed(a, d, others) == {"secret-a"}
        assert _listed(b, d, others) == {"secret-b"}
        root = d.router("jobs", "--all", "--json")
        assert {json.loads(l)["argv"][-1] for l in root.stdout.splitlines()} == \
            {"secret-a", "secret-b"}

        # shown to those the policy lets submit, and only when it says so
        d.policy.write_text(SHARED.replace("daemon: {", "daemon: {show_others_jobs: true, ")
                            + f"access: {{users: [{a.pw_name}]}}\n")
        d.signal(signal.SIGHUP)
        wait_for(lambda: _listed(a, d, others) == {"secret-a", "secret-b"}, what="reload")
        assert _listed(b, d, others) == {"secret-b"}
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_an_old_world_readable_spool_is_made_private(tmp_path):
    from router.daemon.spool import Spool
    old = tmp_path / "spool"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    Spool(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o700
