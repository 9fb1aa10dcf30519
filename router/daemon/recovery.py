"""What a daemon does at start with the jobs a dead one (kill -9, a crash, a power cut) left
queued or running in the history.

A detached job still queued runs now, as Slurm keeps its queue across restarts: it keeps
its id, its decision, its time limit and its environment (from the spool: see spool.py). An
attached one was cancelled when its submitter's connection ended with the daemon. A Slurm job
that was running still runs in Slurm: it is watched again (the rest of its output, its end
and CPU from sacct), as any backend that can `adopt` allows, and cancelled with `scancel`
first when it was attached (its submitter left); one whose machine left the policy is
cancelled with `scancel` and recorded as killed. A local job that was running has no
supervisor any more (its output pipes and its measurement died with the spawner): it is
killed, process group and all, and recorded as killed; an ssh job's agent ends it when its
connection closes, and one that ended unseen is recorded as lost. A job that started in the
last instants before the death and was not yet recorded running is run again: the one window
where a job may run twice.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from router import backends
from router.exec.jobspec import JobSpec
from router.daemon import process
from router.daemon.job import Job
from router.daemon.peer import account
from router.daemon.state import State

log = logging.getLogger(__name__)


def _ended(row: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The final record of a job left running, after killing what is left of it."""
    pid, started = row.get("pid"), row.get("pid_start")
    fields: dict[str, Any] = {"ended": time.time(), "env": None}
    if pid and started is not None and process.kill_group(pid, started):
        fields.update(state="killed", exit=-9,
                      stderr_tail="killed at restart: the daemon that supervised it died")
        return fields, "killed"
    remote = row.get("remote_id")
    if remote:          # only Slurm gives a job a remote id; its machine left the policy
        from router.backends.slurm import cancel_left
        if cancel_left(remote):
            fields.update(state="killed", exit=-9, stderr_tail=f"cancelled at restart "
                          f"(scancel {remote}): machine {row['machine']} left the policy")
            return fields, "killed"
    why = (f"no daemon watches it any more: it may still run in Slurm as {remote}" if remote
           else "ended while no daemon watched it: not measured")
    fields.update(state="lost", stderr_tail=why)
    return fields, "lost"


def _env(st: State, row: dict[str, Any]) -> dict[str, str] | None:
    """The job's environment from the spool, or once from where an older daemon kept it (the
    history), moved to the spool; its `env` field is cleared by the caller."""
    env = st.spool.env(row["id"])
    if env is None and row.get("env") is not None:
        env = row["env"]
        st.spool.save_env(row["id"], env)
    return env


def _job(row: dict[str, Any], env: dict[str, str], **kw: Any) -> Job:
    uid = row["uid"] if row["uid"] is not None else 0
    user, gid, groups = account(uid, uid)
    spec = JobSpec(row["id"], row["argv"], row["cwd"] or "/", env, uid, gid, groups, user)
    return Job(row["id"], spec, row["machine"], row["reason"] or "", bool(row.get("detach")),
               None, template=row["template"], p_over=row["p_over"],
               threshold=row["threshold"], time_limit=row.get("time_limit"), **kw)


def _requeued(st: State, row: dict[str, Any]) -> Job | None:
    if not row.get("detach") or row["machine"] not in st.policy.machines:
        return None
    env = _env(st, row)
    return None if env is None else _job(row, env)


def _adopted(st: State, row: dict[str, Any]) -> Job | None:
    """A running job its machine's backend can watch again, with the environment its helper
    commands (sacct, scancel) need: the job's own when detached, else the daemon's PATH and
    SLURM_CONF. An attached one is cancelled: its submitter left with the dead daemon."""
    machine = st.policy.machines.get(row["machine"])
    if not row.get("remote_id") or machine is None or not backends.can_adopt(machine):
        return None
    env = _env(st, row) or {k: os.environ[k] for k in ("PATH", "SLURM_CONF")
                            if k in os.environ}
    job = _job(row, env, adopt=row["remote_id"])
    job.written = st.spool.sizes(row["id"])
    job.cancelled = not row.get("detach")
    return job


def _unrun(st: State, row: dict[str, Any]) -> dict[str, Any]:
    why = ("its submitter's connection ended with the daemon" if not row.get("detach")
           else f"machine {row['machine']} is no longer in the policy"
           if row["machine"] not in st.policy.machines
           else "its environment file is missing (not kept at its submit, or lost in a crash)")
    return {"state": "cancelled", "ended": time.time(), "exit": -15, "env": None,
            "stderr_tail": f"not run: {why}"}


def _settle(st: State, row: dict[str, Any]) -> tuple[Job | None, dict[str, Any] | None, str]:
    """A job left behind: the Job to run or watch again, the fields to record, and what
    became of it."""
    legacy = {"env": None} if row.get("env") is not None else None
    if row["state"] == "running":
        job = _adopted(st, row)
        if job is not None:
            return job, legacy, "adopted"
        fields, what = _ended(row)
        return None, fields, what
    job = _requeued(st, row)
    if job is not None:
        return job, legacy, "requeued"
    return None, _unrun(st, row), "cancelled"


async def recover(st: State) -> list[Job]:
    """Record the end of every job left behind; the Jobs to enqueue again (detached queued
    ones, and running ones to watch again), in their order."""
    rows = await st.writer.read(lambda s: s.unfinished())
    updates: list[tuple[int, dict[str, Any]]] = []
    requeue: list[Job] = []
    counts = {"adopted": 0, "killed": 0, "lost": 0, "requeued": 0, "cancelled": 0}
    for row in rows:
        job, fields, what = _settle(st, row)
        counts[what] += 1
        if job is not None:
            requeue.append(job)
        if fields:
            updates.append((row["id"], fields))
    requeue.sort(key=lambda job: job.adopt is None)    # what runs already takes a slot first
    st.spool.drop_envs(keep={job.id for job in requeue})
    if updates:
        await st.writer.submit(lambda s, db: [s.update_job(db, i, f) for i, f in updates])
    if rows:
        log.warning("jobs a previous daemon left: %s",
                    ", ".join(f"{n} {what}" for what, n in counts.items() if n))
    return requeue
