"""Per-job overhead of the remote backends, on real hosts and a real Slurm (needs root):
the ssh backend over its reused master connection against plain `ssh host true` with a new
connection each time, and the Slurm backend against a bare `sbatch --wait` of the same job.
Last line: JSON with ssh_ratio_vs_new_connection and slurm_ratio_vs_sbatch."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
import hosts as test_hosts  # noqa: E402
import slurm as test_slurm  # noqa: E402

from router.backends import create  # noqa: E402
from router.exec.jobspec import JobSpec  # noqa: E402
from router.policy import parse_policy  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def spec(argv: list[str]) -> JobSpec:
    return JobSpec(1, argv, "/", dict(os.environ), 0, 0, [0], "root")


async def backend_times(machine: object, argv: list[str], runs: int) -> list[float]:
    backend = create(machine)
    times = []
    try:
        for i in range(runs + 1):
            t0 = time.perf_counter()
            run = await backend.start(spec(argv), lambda fd, data: None)
            await run.wait()
            if i:                     # the first one opens the master: not counted
                times.append(time.perf_counter() - t0)
    finally:
        await backend.close()
    return times


def command_times(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return times


def ssh_figures() -> dict[str, float]:
    h = test_hosts.setup()
    try:
        opts = h.ssh_options()
        policy = parse_policy(f"machines:\n  fast:\n    backend: ssh\n    options: "
                              f"{{host: {h.address('fast')}, user: {test_hosts.USER}, "
                              f"ssh_options: {json.dumps(opts)}}}\n")
        ours = asyncio.run(backend_times(policy.machines["fast"], ["true"], RUNS))
        new = command_times(["ssh", *sum((["-o", o] for o in opts), []), "-o",
                             "ControlMaster=no", "-o", "ControlPath=none", "-l", test_hosts.USER,
                             h.address("fast"), "true"], RUNS)
    finally:
        test_hosts.teardown(h)
    return {"ssh_reused_ms": statistics.median(ours) * 1e3,
            "ssh_new_connection_ms": statistics.median(new) * 1e3}


def slurm_figures() -> dict[str, float]:
    c = test_slurm.setup()
    try:
        os.environ["SLURM_CONF"] = c.env["SLURM_CONF"]
        policy = parse_policy("machines:\n  fast: {backend: slurm, options: {partition: fast, "
                              "poll_s: 0.1}}\n")
        runs = max(5, RUNS // 4)
        ours = asyncio.run(backend_times(policy.machines["fast"], ["true"], runs))
        bare = command_times(["sbatch", "--wait", "-p", "fast", "-o", "/dev/null", "--wrap",
                              "true"], runs, c.env)
    finally:
        test_slurm.teardown(c)
    return {"slurm_backend_ms": statistics.median(ours) * 1e3,
            "slurm_sbatch_wait_ms": statistics.median(bare) * 1e3}


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("remote_overhead: needs root (network namespaces, Slurm daemons)")
    f = {**ssh_figures(), **slurm_figures()}
    result = {k: round(v, 1) for k, v in f.items()}
    result["ssh_ratio_vs_new_connection"] = round(f["ssh_reused_ms"] / f["ssh_new_connection_ms"], 3)
    result["slurm_ratio_vs_sbatch"] = round(f["slurm_backend_ms"] / f["slurm_sbatch_wait_ms"], 3)
    print(f"ssh: {result['ssh_reused_ms']} ms a job over the master vs "
          f"{result['ssh_new_connection_ms']} ms new connection; slurm: "
          f"{result['slurm_backend_ms']} ms vs sbatch --wait {result['slurm_sbatch_wait_ms']} ms",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
