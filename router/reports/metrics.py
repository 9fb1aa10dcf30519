"""Prometheus metrics of the daemon, served on 127.0.0.1 at the policy's `daemon.metrics_port`.

Labels stay bounded: the routing reason is its kind (over, under, no_model, ...), never the
text with a probability in it. Costs are price x CPU seconds on the machine that ran the job;
the always-fast and always-cheap counters price the same jobs on the policy's over and under
machines, so a dashboard can show what routing saved.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram,
                               start_http_server)

from router.policy import Decision, Policy
from router.reports.accounting import price

LATENCY_BUCKETS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2)


class Metrics:
    def __init__(self, policy: Policy, registry: CollectorRegistry | None = None):
        self.policy = policy
        r = self.registry = registry or CollectorRegistry()
        self.jobs = Counter("router_jobs", "Jobs routed", ["machine", "template", "reason"],
                            registry=r)
        self.finished = Counter("router_jobs_finished", "Jobs finished", ["machine", "state"],
                                registry=r)
        self.cpu = Counter("router_cpu_seconds", "CPU seconds of finished jobs", ["machine"],
                           registry=r)
        self.cost = Counter("router_cost", "Price x CPU seconds of finished jobs", ["machine"],
                            registry=r)
        self.always_fast = Counter("router_always_fast_cost",
                                   "What the finished jobs would have cost on the over machine",
                                   registry=r)
        self.always_cheap = Counter("router_always_cheap_cost",
                                    "What they would have cost on the under machine", registry=r)
        self.predictions = Counter("router_predictions", "Model decisions judged by the measured "
                                   "cost", ["template", "outcome"], registry=r)
        self.latency = Histogram("router_decision_latency_seconds", "Time to decide a job",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Gauge("router_queue_depth", "Jobs waiting", ["machine"], registry=r)
        self.busy = Gauge("router_busy_slots", "Jobs running", ["machine"], registry=r)
        self.slots = Gauge("router_slots", "Slots", ["machine"], registry=r)
        self.model = Gauge("router_model_info", "The model in use", ["version"], registry=r)
        self.accuracy = Gauge("router_recent_accuracy", "Recent routing accuracy",
                              ["template"], registry=r)
        for name, m in policy.machines.items():
            self.slots.labels(name).set(m.slots)

    def serve(self, port: int) -> None:
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def decided(self, d: Decision, template: str, seconds: float) -> None:
        self.jobs.labels(d.machine, template, d.kind).inc()
        self.latency.observe(seconds)

    def job_finished(self, job: Any, fields: dict[str, Any], right: bool | None) -> None:
        self.finished.labels(job.machine, fields["state"]).inc()
        if fields.get("cost") is None:
            return
        cpu = (fields.get("cpu_user_s") or 0) + (fields.get("cpu_sys_s") or 0)
        ref = fields["cost"]
        self.cpu.labels(job.machine).inc(cpu)
        self.cost.labels(job.machine).inc(price(self.policy, job.machine, ref))
        self.always_fast.inc(price(self.policy, self.policy.route["over"], ref))
        self.always_cheap.inc(price(self.policy, self.policy.route["under"], ref))
        if right is not None:
            self.predictions.labels(job.template, "right" if right else "wrong").inc()

    def sample(self, queues: dict[str, int], busy: dict[str, int], version: str | None,
               accuracy: dict[str, float]) -> None:
        """Gauges that describe the present, refreshed before each scrape could need them."""
        for name in queues:
            self.queue.labels(name).set(queues[name])
            self.busy.labels(name).set(busy[name])
        self.model.clear()
        self.model.labels(version or "none").set(1)
        for template, value in accuracy.items():
            self.accuracy.labels(template).set(value)
