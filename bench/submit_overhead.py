"""Submit path: end-to-end `router submit -- /bin/true` against `/bin/true` directly, decision
latency inside the daemon, and sustained jobs/s from 8 concurrent `--each` clients (every job
recorded in the history) beside this machine's spawn limit measured in the same run, in turns
with it: one process spawning the same commands (/bin/true N) with posix_spawn + wait4, 8 in
flight. Medians over the rounds. Last line: JSON."""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from daemon_fixture import RunningDaemon  # noqa: E402

from router.store import Store  # noqa: E402

POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 8}
  fast: {backend: local, price: 3.0, slots: 8}
threshold: 0.04
"""
RUNS = int(os.environ.get("BENCH_RUNS", "40"))
ROUTER = str(Path(sys.executable).with_name("router"))   # the console script users run
JOBS = int(os.environ.get("BENCH_JOBS", "4000"))
CLIENTS = 8
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def median_walls(cmds: list[list[str]], env: dict[str, str]) -> list[float]:
    """Median wall time of each command, run in turns so that noise falls on all alike."""
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(RUNS):
        for cmd, out in zip(cmds, times):
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def spawn_limit(total: int, in_flight: int = 8, bare: bool = False) -> float:
    """The clients' commands per second, `/bin/true N` as each client submits them, with
    posix_spawn + wait4, in_flight at a time. The N matters: coreutils' true loads the
    locale when it has an argument, which makes it cost a third more here (bare: without,
    printed beside for comparison)."""
    env = dict(os.environ)
    per = total // CLIENTS
    live: dict[int, int] = {}
    started = done = 0
    t0 = time.perf_counter()
    while done < total:
        while started < total and len(live) < in_flight:
            argv = ["/bin/true"] if bare else ["/bin/true", str(started % per)]
            pid = os.posix_spawn(argv[0], argv, env)
            live[os.pidfd_open(pid)] = pid
            started += 1
        ready, _, _ = select.select(list(live), [], [])
        for fd in ready:
            os.wait4(live.pop(fd), 0)
            os.close(fd)
            done += 1
    return total / (time.perf_counter() - t0)


def throughput(d: RunningDaemon) -> float:
    per = JOBS // CLIENTS
    lines = "".join(f"{i}\n" for i in range(per))
    cmd = [ROUTER, "submit", "--each", "--", "/bin/true"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=d.env, stdin=subprocess.PIPE, text=True)
             for _ in range(CLIENTS)]
    for p in procs:
        p.stdin.write(lines)
        p.stdin.close()
    assert all(p.wait() == 0 for p in procs)
    return per * CLIENTS / (time.perf_counter() - t0)


def share(rates: list[float], limits: list[float]) -> float:
    """The median over rounds of rate / limit, each round's pair measured together."""
    return round(statistics.median(r / lim for r, lim in zip(rates, limits)), 3)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = RunningDaemon(Path(tmp), POLICY).start()
        try:
            router = [ROUTER, "submit", "--", "/bin/true"]
            direct, submit, bare = median_walls(
                [["/bin/true"], router, [sys.executable, "-S", "-c", "pass"]], d.env)
            limits, rates, bare_limits = [], [], []
            for _ in range(ROUNDS):   # in turns, so that a noisy moment falls on both alike
                limits.append(spawn_limit(JOBS))
                rates.append(throughput(d))
                bare_limits.append(spawn_limit(JOBS, bare=True))
        finally:
            d.stop()
        with Store(d.env["ROUTER_STORE"]) as s:
            rows = s.all_runs()
    decisions = sorted(r["decision_us"] for r in rows)
    recorded = sum(r["state"] == "done" for r in rows)
    result = {
        "overhead_ms": round((submit - direct) * 1e3, 2),
        "submit_ms": round(submit * 1e3, 2), "true_ms": round(direct * 1e3, 2),
        "python_start_ms": round(bare * 1e3, 2),
        "decision_p50_us": round(decisions[len(decisions) // 2], 1),
        "decision_p99_us": round(decisions[int(len(decisions) * 0.99)], 1),
        "jobs_per_s": round(statistics.median(rates)),
        "spawn_limit_per_s": round(statistics.median(limits)),
        "share_of_spawn_limit": share(rates, limits),
        "bare_true_limit_per_s": round(statistics.median(bare_limits)),
        "share_of_bare_true_limit": share(rates, bare_limits), "jobs_recorded": recorded,
    }
    print(f"submit {result['submit_ms']} ms vs /bin/true {result['true_ms']} ms; decision p99 "
          f"{result['decision_p99_us']} us; {result['jobs_per_s']} jobs/s vs spawn limit "
          f"{result['spawn_limit_per_s']}/s ({result['bare_true_limit_per_s']}/s without the "
          f"argument)", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
