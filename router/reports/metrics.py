"""Prometheus metrics of the daemon, served at the policy's `daemon.metrics_address` (127.0.0.1
unless set) and `daemon.metrics_port`.

Labels stay bounded. The routing reason is the CLI's words without numbers (`no model for
template`, `model: over`, ...). A template is a label only for the `daemon.metrics_templates`
templates with most jobs: each second, while fewer than that many have a series, the busiest
templates without one get theirs, for the daemon's life; every other job counts under
`other`. So a flood of one-off command lines (dates, ids, whole `sh -c` strings) makes no
series. Costs are price x CPU seconds on the machine that ran the job; the always-fast and
always-cheap counters price the same jobs on the policy's over and under machines. Counters
carry no `_created` series.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter as Tally
from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, start_http_server)

from router.learn import retrainlog
from router.policy import Decision, Policy
from router.reports.accounting import price

LATENCY_BUCKETS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600)
REASONS = {"over": "model: over", "under": "model: under", "no_model": "no model",
           "unknown_template": "no model for template", "uncertain": "uncertain",
           "expected_cost": "expected cost"}
FALLBACK = " down: fallback"   # the dispatcher's reason for a job sent to a machine's fallback
OTHER = "other"
STATES = ("done", "failed", "cancelled")


class TopTemplates:
    """Which templates get a series of their own: at most n, the busiest when there was room."""

    def __init__(self, n: int):
        self.n = n
        self.jobs: Tally[str] = Tally()
        self.named: set[str] = set()

    def seen(self, template: str) -> None:
        if len(self.named) < self.n:
            self.jobs[template] += 1

    def refresh(self) -> None:
        for template, _ in self.jobs.most_common():
            if len(self.named) >= self.n:
                self.jobs.clear()
                return
            self.named.add(template)

    def label(self, template: str) -> str:
        return template if template in self.named else OTHER


class Metrics:
    def __init__(self, policy: Policy, registry: CollectorRegistry | None = None,
                 model_path: str | None = None):
        disable_created_metrics()
        self.policy = policy
        self.top = TopTemplates(policy.daemon["metrics_templates"])
        self.submitted: dict[int, float] = {}
        self.model_path = model_path
        self.retrain_offset = retrainlog.read(model_path)[1] if model_path else 0
        self._declare(registry or CollectorRegistry())
        for name, m in policy.machines.items():   # series that exist before their first event
            self.slots.labels(name).set(m.slots)
            self.timed_out.labels(name)
            for state in STATES:
                self.finished.labels(name, state)
            if m.fallback:
                self.fallbacks.labels(name, m.fallback)
        for outcome in ("promoted", "rejected"):
            self.retrains.labels(outcome)

    def _declare(self, r: CollectorRegistry) -> None:
        machine = ["machine"]
        self.registry = r
        self.jobs = Counter("router_jobs", "Jobs routed, by machine and the CLI's reason",
                            ["machine", "reason"], registry=r)
        self.template_jobs = Counter("router_template_jobs", "Jobs routed, by template (the "
                                     "busiest, the rest as other)", ["template"], registry=r)
        self.finished = Counter("router_jobs_finished", "Jobs ended, by state",
                                ["machine", "state"], registry=r)
        self.timed_out = Counter("router_jobs_timed_out", "Jobs stopped at their time limit",
                                 machine, registry=r)
        self.fallbacks = Counter("router_fallbacks", "Jobs sent on because their machine was "
                                 "down", ["machine_down", "machine"], registry=r)
        self.cpu = Counter("router_cpu_seconds", "CPU seconds of finished jobs", machine,
                           registry=r)
        self.cost = Counter("router_cost", "Price x CPU seconds of finished jobs", machine,
                            registry=r)
        self.always_fast = Counter("router_always_fast_cost",
                                   "What the finished jobs would have cost on the over machine",
                                   registry=r)
        self.always_cheap = Counter("router_always_cheap_cost",
                                    "What they would have cost on the under machine", registry=r)
        self.predictions = Counter("router_predictions", "Model decisions judged by the measured "
                                   "cost", ["template", "outcome"], registry=r)
        self.retrains = Counter("router_retrains", "Retrains that made a candidate, by outcome "
                                "(promoted, rejected)", ["outcome"], registry=r)
        self.latency = Histogram("router_decision_latency_seconds", "Time to decide a job",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.duration = Histogram("router_job_duration_seconds", "Wall time of finished jobs",
                                  machine, buckets=DURATION_BUCKETS, registry=r)
        self.wait = Histogram("router_queue_wait_seconds", "Submission to start of finished "
                              "jobs", machine, buckets=WAIT_BUCKETS, registry=r)
        self.queue = Gauge("router_queue_depth", "Jobs waiting", machine, registry=r)
        self.busy = Gauge("router_busy_slots", "Jobs running", machine, registry=r)
        self.free = Gauge("router_free_slots", "Slots with no job", machine, registry=r)
        self.slots = Gauge("router_slots", "Slots", machine, registry=r)
        self.model = Gauge("router_model_info", "The model in use (1), by version",
                           ["version", "generation", "retrain"], registry=r)
        self.model_age = Gauge("router_model_age_seconds", "Since the model in use was trained",
                               registry=r)
        self.accuracy = Gauge("router_recent_accuracy", "Recent routing accuracy (busiest "
                              "templates)", ["template"], registry=r)

    def serve(self, port: int) -> str:
        """Listen; returns the address, for the log."""
        addr = self.policy.daemon["metrics_address"]
        start_http_server(port, addr=addr, registry=self.registry)
        return f"{addr}:{port}"

    def decided(self, d: Decision, template: str, seconds: float) -> None:
        self.jobs.labels(d.machine, REASONS.get(d.kind, d.kind)).inc()
        self.top.seen(template)
        self.template_jobs.labels(self.top.label(template)).inc()
        self.latency.observe(seconds)

    def queued(self, job_id: int, submitted: float) -> None:
        self.submitted[job_id] = submitted

    def job_finished(self, job: Any, fields: dict[str, Any], right: bool | None) -> None:
        submitted = self.submitted.pop(job.id, None)
        self.finished.labels(job.machine, fields["state"]).inc()
        if job.reason.endswith(FALLBACK):
            self.fallbacks.labels(job.reason[:-len(FALLBACK)], job.machine).inc()
        if fields.get("timed_out"):
            self.timed_out.labels(job.machine).inc()
        if fields.get("cost") is None:
            return
        wall = fields.get("wall_s") or 0.0
        self.duration.labels(job.machine).observe(wall)
        if submitted is not None:
            ended = fields.get("ended") or time.time()
            self.wait.labels(job.machine).observe(max(ended - submitted - wall, 0.0))
        ref = fields["cost"]
        self.cpu.labels(job.machine).inc((fields.get("cpu_user_s") or 0)
                                         + (fields.get("cpu_sys_s") or 0))
        self.cost.labels(job.machine).inc(price(self.policy, job.machine, ref))
        self.always_fast.inc(price(self.policy, self.policy.route["over"], ref))
        self.always_cheap.inc(price(self.policy, self.policy.route["under"], ref))
        if right is not None:
            self.predictions.labels(self.top.label(job.template),
                                    "right" if right else "wrong").inc()

    def sample(self, queues: dict[str, int], busy: dict[str, int], model: Any,
               accuracy: dict[str, float]) -> None:
        """Gauges that describe the present, refreshed before each scrape could need them."""
        self.top.refresh()
        for name in queues:
            self.queue.labels(name).set(queues[name])
            self.busy.labels(name).set(busy[name])
            machine = self.policy.machines.get(name)
            if machine is not None:
                self.free.labels(name).set(max(machine.slots - busy[name], 0))
        self._model(model)
        for template, value in accuracy.items():
            if self.top.label(template) != OTHER:
                self.accuracy.labels(template).set(value)
        if self.model_path:
            records, self.retrain_offset = retrainlog.read(self.model_path, self.retrain_offset)
            for rec in records:
                if rec.get("version"):
                    self.retrains.labels("promoted" if rec.get("promoted") else "rejected").inc()

    def _model(self, model: Any) -> None:
        self.model.clear()
        if model is None:
            self.model.labels("none", "0", "none").set(1)
            return
        meta = model.meta
        self.model.labels(model.version, str(meta.get("generation", 1)),
                          meta.get("retrain", "train")).set(1)
        trained = meta.get("date")
        if trained:
            self.model_age.set(time.time() - dt.datetime.fromisoformat(trained).timestamp())
