"""`router daemon`: accepts jobs on a unix socket, decides, queues, dispatches, records, reloads.

asyncio, one socket, callers identified by SO_PEERCRED. Requests are dispatched through one
table of handlers named after their op. The loop never blocks on a job (pidfds and pipes),
a model load (a thread) or a history write (the writer thread). No JAX is imported: the
model's NumPy fast path decides. SIGHUP reloads policy and model (a bad file is refused and
the old one stays); SIGTERM drains; systemd hears READY, RELOADING, STOPPING and WATCHDOG.
"""

from __future__ import annotations

import asyncio
import gc
import grp
import logging
import os
import pwd
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from router.learn import modelfile

from router.daemon import notify

from router import paths

from router.client import protocol
from router.backends import JobSpec
from router.exec import spawn
from router.learn.drift import Drift
from router.errors import ProtocolError, RouterError
from router.features import shape
from router.daemon.dispatcher import Dispatcher, Job, Spool
from router.daemon.queues import QueueBook
from router.policy import Policy, decide, load_policy
from router.daemon.writer import StoreWriter

log = logging.getLogger(__name__)

RETRAIN_COOLDOWN_S = 600.0   # a drift-triggered retrain at most this often


class Peer:
    """One client connection: who it is, and a serialised way to answer it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        self.pid, self.uid, self.gid = struct.unpack("3i", creds)
        self.jobs: set[Job] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.env: dict[str, str] = {}         # a submit without env gets the last one sent
        self.closed = False
        self.pending: list[bytes] = []
        self._account: tuple[str, int, list[int]] | None = None

    def account(self) -> tuple[str, int, list[int]]:
        """User name, primary group and groups of the caller, looked up once per connection."""
        if self._account is None:
            try:
                pw = pwd.getpwuid(self.uid)
                self._account = (pw.pw_name, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid))
            except KeyError:
                self._account = (str(self.uid), self.gid, [self.gid])
        return self._account

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a message; everything queued in one loop turn leaves in one write."""
        if self.closed:
            return
        if msg.get("event") == "out" and isinstance(msg.get("data"), bytes):
            msg = protocol.out_event(msg.get("tag", 0), msg["id"], msg["fd"], msg["data"])
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.pending.append(protocol.encode(msg))

    def _flush(self) -> None:
        data, self.pending = b"".join(self.pending), []
        if not self.closed and data:
            self.writer.write(data)


class Daemon:
    def __init__(self, policy: Policy, *, store: str | None = None, model: str | None = None,
                 sock: str | None = None):
        self.policy = policy
        d = policy.daemon
        self.store_path = os.path.abspath(store or d["store"] or paths.store())
        self.model_path = Path(os.path.abspath(model or d["model"] or paths.model()))
        self.socket_path = Path(os.path.abspath(sock or d["socket"] or paths.socket()))
        self.models = modelfile.ModelCache(self.model_path)
        self.model: modelfile.ModelFile | None = None
        self.stopping = asyncio.Event()
        self.draining = False
        self.counters: dict[str, int] = {"jobs": 0, "failed": 0, "refused": 0}
        self.handlers = {op: getattr(self, f"op_{op}") for op in protocol.OPS}
        self.drift = Drift(policy.retrain["drift_window"], policy.retrain["min_accuracy"])
        self.metrics: Any = None
        self.retraining = False
        self.last_retrain = -RETRAIN_COOLDOWN_S
        self.queue_book = QueueBook()

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.writer = StoreWriter(self.store_path, loop)
        lost = await self.writer.submit(lambda s, db: s.mark_lost_in(db))
        if lost:
            log.warning("%d jobs of a previous daemon were lost; marked so in the history", lost)
        await self._load_model()
        spool = Spool(Path(self.store_path).parent / "spool")
        self.dispatcher = Dispatcher(self.policy.machines, self.writer, spool, self._finished)
        self.spool = spool
        server = await self._listen()
        for sig, handler in ((signal.SIGTERM, self._term), (signal.SIGINT, self._term),
                             (signal.SIGHUP, self._hup)):
            loop.add_signal_handler(sig, handler)
        tasks = [asyncio.create_task(self._poll_model()), asyncio.create_task(self._prune())]
        port = self.policy.daemon["metrics_port"]
        if port:
            from router.reports.metrics import Metrics   # prometheus_client only when asked for
            self.metrics = Metrics(self.policy)
            self.metrics.serve(port)
            tasks.append(asyncio.create_task(self._sample_metrics()))
            log.warning("metrics on http://127.0.0.1:%d/metrics", port)
        interval = notify.watchdog_interval()
        if interval and self.policy.daemon["watchdog"]:
            tasks.append(asyncio.create_task(self._watchdog(interval)))
        gc.freeze()   # what start-up built lives as long as we do: no collection scans it
        notify.ready()
        log.warning("router daemon ready on %s (pid %d)", self.socket_path, os.getpid())
        await self.stopping.wait()
        notify.stopping()
        server.close()
        await self._drain()
        for task in tasks:
            task.cancel()
        await self.dispatcher.close()
        spawn.close()
        self.writer.close()
        self.socket_path.unlink(missing_ok=True)
        log.warning("router daemon stopped")

    async def _listen(self) -> asyncio.AbstractServer:
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(path))
                raise RouterError(f"another daemon is listening on {path}")
            except (ConnectionRefusedError, FileNotFoundError):
                path.unlink()
            finally:
                probe.close()
        server = await asyncio.start_unix_server(self._serve, str(path), limit=protocol.MAX_LINE)
        os.chmod(path, self.policy.daemon["socket_mode"])
        group = self.policy.daemon["socket_group"]
        if group:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        return server

    def _term(self) -> None:
        if not self.draining:
            log.warning("draining: no new jobs; running jobs get %.0fs",
                        self.policy.daemon["drain_timeout"])
            self.draining = True
            self.stopping.set()

    async def _drain(self) -> None:
        jobs = list(self.dispatcher.running.values())
        for job in jobs:
            if job.state == "queued":
                self.dispatcher.cancel(job)
        pending = [asyncio.create_task(j.done.wait()) for j in jobs]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.policy.daemon["drain_timeout"])
            if late:
                log.warning("drain timeout: cancelling %d running jobs", len(late))
                for job in jobs:
                    if not job.done.is_set():
                        self.dispatcher.cancel(job)
                await asyncio.wait(late, timeout=15)

    def _hup(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        """Policy and model, each replaced only by a good new version."""
        notify.reloading()
        try:
            policy = await asyncio.to_thread(load_policy, self.policy.path)
            if set(policy.machines) != set(self.policy.machines):
                raise RouterError("machines changed: restart the daemon to apply that")
            self.policy = policy
            self.dispatcher.machines = policy.machines
            log.warning("policy %s reloaded", policy.path)
        except RouterError as exc:
            log.error("policy reload refused, keeping the old one: %s", exc)
        self.models.forget()
        await self._load_model()
        notify.ready()

    async def _load_model(self) -> None:
        """In a thread: a stat, and a load only when the file changed; a bad file is refused."""
        self.model = await asyncio.to_thread(self.models.get)

    async def _poll_model(self) -> None:
        while True:
            await asyncio.sleep(self.policy.daemon["model_poll_s"])
            await self._load_model()

    async def _prune(self) -> None:
        """Finished jobs' output older than daemon.spool_days goes, hourly, in a thread."""
        while True:
            keep = set(self.dispatcher.running)
            removed = await asyncio.to_thread(
                self.spool.prune, self.policy.daemon["spool_days"] * 86400, keep)
            if removed:
                log.warning("spool: removed the output of %d old jobs", removed)
            await asyncio.sleep(3600)

    async def _sample_metrics(self) -> None:
        while True:
            d = self.dispatcher
            self.metrics.sample({n: q.qsize() for n, q in d.queues.items()}, dict(d.busy),
                                self.model.version if self.model else None, self.drift.accuracy())
            await asyncio.sleep(1.0)

    async def _watchdog(self, interval: float) -> None:
        while True:
            notify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    # -- connections ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    peer.send(protocol.error("request too large"))
                    break
                if not line:
                    break
                await self._dispatch(peer, line)
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            peer._flush()
            peer.closed = True
            for job in list(peer.jobs):
                if not job.detach and not job.done.is_set():
                    self.dispatcher.cancel(job)
            writer.close()

    async def _dispatch(self, peer: Peer, line: bytes) -> None:
        """Submits are pipelined: the next request is read while one waits for its job id."""
        try:
            req = protocol.check_request(protocol.decode(line))
        except RouterError as exc:
            self._refuse(peer, exc, 0)
            return
        if req["op"] != "submit":
            await self._handle(peer, req)
            return
        task = asyncio.create_task(self._handle(peer, req))
        peer.tasks.add(task)
        task.add_done_callback(peer.tasks.discard)

    async def _handle(self, peer: Peer, req: dict[str, Any]) -> None:
        try:
            await self.handlers[req["op"]](peer, req)
        except RouterError as exc:
            self._refuse(peer, exc, req["tag"])

    def _refuse(self, peer: Peer, exc: RouterError, tag: int) -> None:
        self.counters["refused"] += 1
        peer.send(protocol.error(str(exc).splitlines()[0], tag))

    def _may_see(self, peer: Peer, owner_uid: int | None) -> bool:
        return peer.uid == 0 or peer.uid == owner_uid

    # -- handlers, one per op ----------------------------------------------------------------

    async def op_ping(self, peer: Peer, req: dict[str, Any]) -> None:
        peer.send({"ok": True, "tag": req["tag"], "pid": os.getpid(),
                   "model": self.model.version if self.model else None})

    async def op_submit(self, peer: Peer, req: dict[str, Any]) -> None:
        if self.draining:
            raise ProtocolError("daemon is shutting down: not accepting jobs")
        if os.geteuid() != 0 and peer.uid != os.geteuid():
            raise ProtocolError(f"this daemon runs as uid {os.geteuid()} and serves only it")
        if not self.policy.allows(peer.uid):
            raise ProtocolError(f"uid {peer.uid} may not submit (policy access)")
        if req["env"] is not None:
            peer.env = req["env"]
        env = peer.env            # read now: a later request on this connection may change it
        start = time.perf_counter()
        argv, cwd = req["argv"], req["cwd"]
        sh = shape(argv, cwd)
        load = self.queue_book.load(self.policy)
        d = decide(sh.template, sh.features, argv, self.model, self.policy, *(load or ()))
        decision_us = (time.perf_counter() - start) * 1e6
        if self.metrics is not None:
            self.metrics.decided(d, sh.template, decision_us / 1e6)
        head = {"tag": req["tag"], "machine": d.machine, "reason": d.reason, "p_over": d.p_over,
                "sd": d.sd, "template": sh.template, "decision_us": round(decision_us, 1)}
        if req["dry_run"]:
            peer.send({"event": "decision", **head})
            return
        hold = self.queue_book.hold(d)
        user, gid, groups = peer.account()
        record = {"time": time.time(), "user": user, "argv": argv, "template": sh.template,
                  "features": list(sh.features), "machine": d.machine, "p_over": d.p_over,
                  "sd": d.sd, "reason": d.reason, "threshold": d.threshold, "cwd": cwd,
                  "model_version": self.model.version if self.model else None,
                  "decision_us": decision_us, "uid": peer.uid, "predicted_cost": d.cost,
                  "expected_waits": d.waits}
        job_id = await self.writer.submit(lambda s, db: s.start_job(db, record))
        spec = JobSpec(job_id, argv, cwd, env, peer.uid, gid, groups, user)
        job = Job(job_id, spec, d.machine, d.reason, req["detach"], peer, template=sh.template,
                  p_over=d.p_over, threshold=d.threshold)
        self.counters["jobs"] += 1
        self.queue_book.attach(hold, job)
        if not req["detach"]:
            peer.jobs.add(job)
            job.listeners.append(lambda ev: peer.send({**ev, "tag": req["tag"]}))
        if not req["quiet"]:
            peer.send({"event": "queued", "id": job_id, **head})
        self.dispatcher.enqueue(job)
        if self.draining or (peer.closed and not req["detach"]):
            self.dispatcher.cancel(job)      # its submitter left while it was being recorded

    async def op_jobs(self, peer: Peer, req: dict[str, Any]) -> None:
        rows = await self.writer.read(lambda s: s.active() if not req["all"] else s.recent_jobs())
        peer.send({"ok": True, "tag": req["tag"], "jobs": [_public(r) for r in rows]})

    async def _job_row(self, peer: Peer, job_id: int) -> dict[str, Any]:
        row = await self.writer.read(lambda s: s.get(job_id))
        if row is None or row["source"] != "job":
            raise ProtocolError(f"no job {job_id}")
        if not self._may_see(peer, row.get("uid")):
            raise ProtocolError(f"job {job_id} belongs to another user")
        return row

    async def op_status(self, peer: Peer, req: dict[str, Any]) -> None:
        if req["id"] is None:
            d = self.dispatcher
            peer.send({"ok": True, "tag": req["tag"], "daemon": {
                "pid": os.getpid(), "model": self.model.version if self.model else None,
                "queued": {n: q.qsize() for n, q in d.queues.items()}, "busy": dict(d.busy),
                "counters": self.counters, "recent_accuracy": self.drift.accuracy(),
                "drifting": self.drift.drifting()}})
            return
        row = await self._job_row(peer, req["id"])
        peer.send({"ok": True, "tag": req["tag"], "job": _public(row)})

    async def op_cancel(self, peer: Peer, req: dict[str, Any]) -> None:
        row = await self._job_row(peer, req["id"])
        job = self.dispatcher.running.get(req["id"])
        if job is None:
            raise ProtocolError(f"job {req['id']} is not running ({row['state']})")
        self.dispatcher.cancel(job)
        peer.send({"ok": True, "tag": req["tag"], "id": job.id})

    async def op_follow(self, peer: Peer, req: dict[str, Any]) -> None:
        row = await self._job_row(peer, req["id"])
        job = self.dispatcher.running.get(req["id"])
        tag = req["tag"]
        if job is not None:   # replay what was written so far, then go live: one loop turn
            sizes = dict(job.written)
            job.listeners.append(lambda ev: peer.send({**ev, "tag": tag}))
        for fd in (1, 2):
            data = self.spool.read(req["id"], fd, sizes[fd] if job is not None else None)
            if data:
                peer.send(protocol.out_event(tag, req["id"], fd, data))
        if job is None:
            peer.send({"event": "exit", "tag": tag, "id": row["id"], "state": row["state"],
                       "exit": row["exit"], "cost": row["cost"], "machine": row["machine"]})

    def _finished(self, job: Job, fields: dict[str, Any]) -> None:
        if fields["state"] != "done":
            self.counters["failed"] += 1
        if job.owner_conn is not None:
            job.owner_conn.jobs.discard(job)
        right = None
        if fields["state"] == "done":
            right = self.drift.record(job.template, job.p_over, fields.get("cost"), job.threshold,
                                      self.policy.route["p_over"])
        if self.metrics is not None:
            self.metrics.job_finished(job, fields, right)
        if right is False and job.template in self.drift.drifting():
            self._retrain_soon(job.template)

    def _retrain_soon(self, template: str) -> None:
        """A drifting template asks for a retrain now rather than at the next timer."""
        now = time.monotonic()
        if self.retraining or now - self.last_retrain < RETRAIN_COOLDOWN_S:
            return
        self.retraining, self.last_retrain = True, now
        log.warning("template %s: recent accuracy under %.2f; retraining", template,
                    self.drift.bound)
        asyncio.get_running_loop().create_task(self._retrain())

    async def _retrain(self) -> None:
        cmd = [sys.executable, "-m", "router", "retrain", "--policy", self.policy.path,
               "--store", self.store_path, "--model", str(self.model_path)]
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
            log.warning("drift retrain: %s", out.decode(errors="replace").strip()[-500:])
        finally:
            self.retraining = False
        await self._load_model()


PUBLIC = ("id", "time", "user", "argv", "template", "machine", "state", "p_over", "sd", "reason",
          "exit", "cost", "cpu_user_s", "cpu_sys_s", "wall_s", "max_rss_kb", "ended",
          "model_version", "remote_id")


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in PUBLIC}


def main(policy_path: str | Path, *, store: str | None = None, model: str | None = None,
         sock: str | None = None) -> int:
    policy = load_policy(os.path.abspath(policy_path))
    daemon = Daemon(policy, store=store, model=model, sock=sock)
    asyncio.run(daemon.run())
    return 0
