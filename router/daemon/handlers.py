"""One handler per protocol op, each named after it: `HANDLERS[op](state, peer, request)`.

A handler gets a request already checked by `protocol.check_request`, answers on the peer,
and raises a RouterError (the server turns it into one error line) for anything refused.
The submit path is a row of small steps (admit, decide, record, enqueue) over one
`Submission`, so a step can be added (a forced machine, a queue estimate) without
touching the others.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from router.exec.jobspec import JobSpec
from router.client import protocol
from router.daemon.admit import admit, may_see
from router.daemon.job import Job
from router.daemon.peer import Peer
from router.daemon.state import State
from router.daemon.stream import OutputStream
from router.errors import ProtocolError
from router.features import Shape, shape
from router.policy import Decision, decide

Handler = Callable[[State, Peer, dict[str, Any]], Awaitable[None]]

PUBLIC = ("id", "time", "user", "argv", "template", "machine", "state", "p_over", "sd", "reason",
          "exit", "cost", "cpu_user_s", "cpu_sys_s", "wall_s", "max_rss_kb", "ended",
          "model_version", "remote_id")


def public(row: dict[str, Any]) -> dict[str, Any]:
    """What a job's row shows on the socket."""
    return {k: row.get(k) for k in PUBLIC}


async def ping(st: State, peer: Peer, req: dict[str, Any]) -> None:
    peer.send({"ok": True, "tag": req["tag"], "pid": os.getpid(), "model": st.model_version()})


@dataclass
class Submission:
    """One submit on its way: what was asked, where it goes and why, what the caller hears."""

    req: dict[str, Any]
    env: dict[str, str]
    shape: Shape
    decision: Decision
    decision_us: float

    def head(self) -> dict[str, Any]:
        """The fields of the "decision" and "queued" events."""
        d = self.decision
        return {"tag": self.req["tag"], "machine": d.machine, "reason": d.reason,
                "p_over": d.p_over, "sd": d.sd, "template": self.shape.template,
                "decision_us": round(self.decision_us, 1)}


async def submit(st: State, peer: Peer, req: dict[str, Any]) -> None:
    admit(st, peer)
    if req["env"] is not None:
        peer.env = req["env"]
    sub = _decide(st, peer, req, peer.env)   # env read now: a later request may change peer.env
    if req["dry_run"]:
        peer.send({"event": "decision", **sub.head()})
        return
    job = await _record(st, peer, sub)
    _enqueue(st, peer, sub, job)


def _decide(st: State, peer: Peer, req: dict[str, Any], env: dict[str, str]) -> Submission:
    start = time.perf_counter()
    reader = (peer.uid, peer.account()[2]) if os.geteuid() == 0 and peer.uid != 0 else None
    sh = shape(req["argv"], req["cwd"], reader)
    load = st.queue_book.load(st.policy)
    d = decide(sh.template, sh.features, req["argv"], st.model, st.policy, *(load or ()))
    if req["machine"] is not None:      # `submit -p NAME`: a machine of the policy only
        if req["machine"] not in st.policy.machines:
            raise ProtocolError(f"-p {req['machine']}: not a machine of the policy "
                                f"(it has {', '.join(st.policy.machines)})")
        d.machine, d.reason = req["machine"], "forced by -p"
    seconds = time.perf_counter() - start
    if st.metrics is not None:
        st.metrics.decided(d, sh.template, seconds)
    return Submission(req, env, sh, d, seconds * 1e6)


async def _record(st: State, peer: Peer, sub: Submission) -> Job:
    """The job is in the history before it is queued: a crash cannot lose it."""
    req, d = sub.req, sub.decision
    hold = st.queue_book.hold(d)
    user, gid, groups = peer.account()
    record = {"time": time.time(), "user": user, "argv": req["argv"],
              "template": sub.shape.template, "features": list(sub.shape.features),
              "machine": d.machine, "p_over": d.p_over, "sd": d.sd, "reason": d.reason,
              "threshold": d.threshold, "cwd": req["cwd"], "model_version": st.model_version(),
              "decision_us": sub.decision_us, "uid": peer.uid, "detach": req["detach"],
              "predicted_cost": d.cost, "expected_waits": d.waits,
              "time_limit": req["time_limit"]}
    job_id = await st.writer.submit(lambda s, db: s.start_job(db, record))
    if req["detach"]:
        st.spool.save_env(job_id, sub.env)      # a restart runs it again
    if st.metrics is not None:
        st.metrics.queued(job_id, record["time"])
    feed = peer.feed(req["tag"]) if req["stdin"] else None
    spec = JobSpec(job_id, req["argv"], req["cwd"], sub.env, peer.uid, gid, groups, user,
                   stdin=feed)
    job = Job(job_id, spec, d.machine, d.reason, req["detach"], peer,
              template=sub.shape.template, p_over=d.p_over, threshold=d.threshold,
              time_limit=req["time_limit"])
    st.queue_book.attach(hold, job)
    if feed is not None:
        job.listeners.append(lambda ev: ev["event"] == "exit" and peer.end_feed(req["tag"]))
    return job


def _enqueue(st: State, peer: Peer, sub: Submission, job: Job) -> None:
    req = sub.req
    st.counters["jobs"] += 1
    if not req["detach"]:
        peer.jobs.add(job)
        job.listeners.append(OutputStream(peer, req["tag"], st.spool, job.id, job.written, job))
    if not req["quiet"]:
        peer.send({"event": "queued", "id": job.id, **sub.head()})
    if req["after"]:
        st.dispatcher.active[job.id] = job      # listed and cancellable as it waits
        asyncio.get_running_loop().create_task(_after(st, job, req["after"]))
    else:
        st.dispatcher.enqueue(job)
    if st.draining or (peer.closed and not req["detach"]):
        st.dispatcher.cancel(job)      # its submitter left while it was being recorded


async def _after(st: State, job: Job, ids: list[int]) -> None:
    """`submit --after`: queue the job once every job it names has ended done."""
    for dep in ids:
        waiting = st.dispatcher.active.get(dep)
        ended = asyncio.ensure_future(waiting.done.wait() if waiting else asyncio.sleep(0))
        while not ended.done() and not job.cancelled:   # a cancel is seen within a second
            await asyncio.wait([ended], timeout=1.0)
        ended.cancel()
        row = await st.writer.read(lambda s: s.get(dep))
        state = row["state"] if row and row["source"] == "job" else "not a job"
        if state != "done" or job.cancelled:
            st.dispatcher.finish_unstarted(job, f"job {dep} {state}: not run (--after)")
            return
    st.dispatcher.enqueue(job)


async def stdin(st: State, peer: Peer, req: dict[str, Any]) -> None:
    peer.feed(req["tag"]).put(req["data"], req["eof"])


async def jobs(st: State, peer: Peer, req: dict[str, Any]) -> None:
    rows = await st.writer.read(lambda s: s.active() if not req["all"] else s.recent_jobs())
    everyone = st.policy.daemon["show_others_jobs"] and st.policy.allows(peer.uid)
    shown = [public(r) for r in rows if everyone or may_see(peer, r.get("uid"))]
    peer.send({"ok": True, "tag": req["tag"], "jobs": shown})


async def _job_row(st: State, peer: Peer, job_id: int) -> dict[str, Any]:
    row = await st.writer.read(lambda s: s.get(job_id))
    if row is None or row["source"] != "job":
        raise ProtocolError(f"no job {job_id}")
    if not may_see(peer, row.get("uid")):
        raise ProtocolError(f"job {job_id} belongs to another user")
    return row


async def status(st: State, peer: Peer, req: dict[str, Any]) -> None:
    if req["id"] is None:
        d = st.dispatcher
        peer.send({"ok": True, "tag": req["tag"], "daemon": {
            "pid": os.getpid(), "model": st.model_version(),
            "queued": {n: q.qsize() for n, q in d.queues.items()}, "busy": dict(d.busy),
            "counters": st.counters, "recent_accuracy": st.drift.accuracy(),
            "drifting": st.drift.drifting()}})
        return
    row = await _job_row(st, peer, req["id"])
    peer.send({"ok": True, "tag": req["tag"], "job": public(row)})


async def cancel(st: State, peer: Peer, req: dict[str, Any]) -> None:
    row = await _job_row(st, peer, req["id"])
    job = st.dispatcher.active.get(req["id"])
    if job is None:
        raise ProtocolError(f"job {req['id']} is not running ({row['state']})")
    st.dispatcher.cancel(job)
    peer.send({"ok": True, "tag": req["tag"], "id": job.id})


async def follow(st: State, peer: Peer, req: dict[str, Any]) -> None:
    """What was written so far, from the spool, then live: no byte twice, none missed."""
    row = await _job_row(st, peer, req["id"])
    job = st.dispatcher.active.get(req["id"])
    if job is not None:
        stream = OutputStream(peer, req["tag"], st.spool, job.id, job.written, job)
        job.listeners.append(stream)
    else:
        stream = OutputStream(peer, req["tag"], st.spool, row["id"], st.spool.sizes(row["id"]))
        stream.held.append({"event": "exit", "id": row["id"], "state": row["state"],
                            "exit": row["exit"], "cost": row["cost"], "machine": row["machine"]})
    stream.replay()


HANDLERS: dict[str, Handler] = {op: globals()[op] for op in protocol.OPS}
