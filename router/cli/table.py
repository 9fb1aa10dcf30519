"""How a job's record reads on a terminal: clock times instead of epoch floats, durations,
`exit 143` as `router submit` returned it, states as recorded. Shared by `jobs`, `status` and
`log` so the three agree."""

from __future__ import annotations

import shlex
import time
from typing import Any

from router.client.client import exit_code

JOB_HEADER = (f"{'JOBID':>8} {'USER':<10} {'STATE':<9} {'MACHINE':<10} {'P':>5} "
              f"{'SUBMITTED':<19} {'TIME':>8} COMMAND")


def clock(epoch: float | None) -> str:
    """Local time: HH:MM:SS today, else the date too."""
    if epoch is None:
        return "-"
    t = time.localtime(epoch)
    if time.strftime("%Y-%m-%d", t) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M:%S", t)
    return time.strftime("%Y-%m-%d %H:%M:%S", t)


def duration(seconds: float | None) -> str:
    """1.25s, 3m04s, 2h05m, 3d04h: short, and exact enough for a glance."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def state(job: dict[str, Any]) -> str:
    """The recorded state; a run that older versions recorded `done` with a non-zero exit
    reads as what it was."""
    recorded = job.get("state") or "-"
    if recorded == "done" and job.get("timed_out"):
        return "timed_out"
    if recorded == "done" and job.get("exit") not in (None, 0):
        return "failed"
    return recorded


def exit_text(job: dict[str, Any]) -> str:
    value = job.get("exit")
    return "-" if value is None else f"exit {exit_code(value)}"


def elapsed(job: dict[str, Any]) -> float | None:
    """Wall time of a finished job; time since submission of a live one."""
    if job.get("wall_s") is not None:
        return float(job["wall_s"])
    if job.get("state") in ("queued", "running") and job.get("time"):
        return max(0.0, time.time() - job["time"])
    return None


def cpu(job: dict[str, Any]) -> float | None:
    if job.get("cpu_user_s") is None:
        return None
    return float(job["cpu_user_s"]) + float(job.get("cpu_sys_s") or 0.0)


def rss(kb: float | None) -> str:
    if kb is None:
        return "-"
    return f"{kb / 1024:.1f}M" if kb < 1 << 20 else f"{kb / (1 << 20):.2f}G"


def job_line(job: dict[str, Any]) -> str:
    p = "-" if job.get("p_over") is None else f"{job['p_over']:.2f}"
    return (f"{job['id']:>8} {job.get('user') or '-':<10} {state(job):<9} "
            f"{job.get('machine') or '-':<10} {p:>5} {clock(job.get('time')):<19} "
            f"{duration(elapsed(job)):>8} {shlex.join(job.get('argv') or [])}")


def job_record(job: dict[str, Any]) -> list[tuple[str, str]]:
    """`router status ID`: one field a line, in the order a person asks about them."""
    p = "-" if job.get("p_over") is None else f"{job['p_over']:.3f}"
    sd = "" if job.get("sd") is None else f" (sd {job['sd']:.3f})"
    cost = "-" if job.get("cost") is None else f"{job['cost']:.3f}s"
    return [("id", str(job["id"])), ("state", state(job)), ("exit", exit_text(job)),
            ("user", job.get("user") or "-"), ("machine", job.get("machine") or "-"),
            ("reason", job.get("reason") or "-"), ("p_over", p + sd),
            ("command", shlex.join(job.get("argv") or [])),
            ("template", job.get("template") or "-"), ("submitted", clock(job.get("time"))),
            ("ended", clock(job.get("ended"))), ("wall", duration(elapsed(job))),
            ("cpu", duration(cpu(job))), ("max_rss", rss(job.get("max_rss_kb"))),
            ("cost", cost), ("model", job.get("model_version") or "-"),
            *([("remote_id", str(job["remote_id"]))] if job.get("remote_id") else [])]


def _pairs(mapping: dict[str, Any] | None, fmt: str = "{}") -> str:
    if not mapping:
        return "-"
    return ", ".join(f"{k} {fmt.format(v)}" for k, v in mapping.items())


def daemon_record(d: dict[str, Any]) -> list[tuple[str, str]]:
    """`router status`: the daemon's pid, model, queues and recent accuracy."""
    lines = [("pid", str(d.get("pid"))), ("model", d.get("model") or "none"),
             ("queued", _pairs(d.get("queued"))), ("busy", _pairs(d.get("busy"))),
             ("counters", _pairs(d.get("counters"))),
             ("drifting", ", ".join(d.get("drifting") or []) or "none")]
    for template, acc in sorted((d.get("recent_accuracy") or {}).items()):
        lines.append(("accuracy", f"{acc:.2f}  {template}"))
    return lines
