"""Wall time of `seq 1 N | router collect -- /bin/true` against `seq 1 N | xargs -L1 /bin/true`,
and the smallest CPU time a collector run resolves. Last line: one JSON object."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_N", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def timed(cmd: str, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, env=env,
                         check=True).stdout
    return time.perf_counter() - start, out


def main() -> None:
    router = os.path.join(os.path.dirname(sys.executable), "router")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ROUTER_STORE=os.path.join(tmp, "h.db"))
        xargs, ours, cpu = [], [], []
        for _ in range(ROUNDS):
            xargs.append(timed(f"seq 1 {N} | xargs -L1 /bin/true", env)[0])
            t, out = timed(f"seq 1 {N} | {router} collect -- /bin/true", env)
            ours.append(t)
            cpu += [json.loads(l)["cpu_user_s"] + json.loads(l)["cpu_sys_s"]
                    for l in out.splitlines()]
    values = sorted(set(round(c, 9) for c in cpu))
    gaps = [b - a for a, b in zip(values, values[1:]) if b - a > 0]
    result = {
        "runs": N,
        "xargs_s": round(min(xargs), 4),
        "router_collect_s": round(min(ours), 4),
        "ratio_vs_xargs": round(min(ours) / min(xargs), 3),
        "router_median_ratio": round(statistics.median(ours) / statistics.median(xargs), 3),
        "min_cpu_resolution_s": min(gaps) if gaps else None,
        "min_cpu_measured_s": values[0] if values else None,
    }
    print(f"collect: {result['router_collect_s']}s vs xargs {result['xargs_s']}s "
          f"for {N} runs of /bin/true", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
