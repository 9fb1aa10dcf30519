"""`router calibrate`: a fixed CPU-bound reference on every machine, through its own backend.

A machine's speed is the reference machine's CPU seconds for the workload over its own, so
costs measured on different machines compare (cost = CPU x speed). A cgroup CPU cap does not
change the CPU a job needs, only how long it waits for it: that shows in the wall time, which
is reported beside the speed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from router.exec.usage import Usage
from router import atomic, backends
from router.exec.jobspec import JobSpec
from router.errors import BackendError
from router.policy import Policy

ITERATIONS = 3_000_000
WORKLOAD = ["/usr/bin/python3", "-S", "-c",
            f"x = 1\nfor i in range({ITERATIONS}):\n    x = (x * 31 + i) & 0xFFFF\n"]


async def _measure(machine: Any) -> Usage:
    backend = backends.create(machine)
    spec = JobSpec(0, WORKLOAD, "/", dict(os.environ), os.getuid(), os.getgid(),
                   list(os.getgroups()), "")
    try:
        run = await backend.start(spec, lambda fd, data: None)
        return await run.wait()
    finally:
        await backend.close()


async def _all(policy: Policy, repeat: int) -> dict[str, list[Usage | str]]:
    out: dict[str, list[Usage | str]] = {}
    for name, machine in policy.machines.items():
        out[name] = []
        for _ in range(repeat):
            try:
                out[name].append(await _measure(machine))
            except BackendError as exc:
                out[name].append(str(exc))
                break
    return out


def calibrate(policy: Policy, reference: str | None = None, repeat: int = 3) -> dict[str, Any]:
    """Per machine: CPU and wall seconds of the workload (best of `repeat`) and speed."""
    reference = reference or policy.route["under"]
    if reference not in policy.machines:
        raise BackendError(f"--reference {reference!r}: no such machine")
    results: dict[str, Any] = {}
    for name, runs in asyncio.run(_all(policy, repeat)).items():
        good = [u for u in runs if isinstance(u, Usage) and u.exit == 0]
        if not good:
            results[name] = {"error": next((r for r in runs if isinstance(r, str)),
                                           "workload failed")}
            continue
        best = min(good, key=lambda u: u.cpu_s)
        results[name] = {"cpu_s": round(best.cpu_s, 4),
                         "wall_s": round(min(u.wall_s for u in good), 4)}
    ref = results.get(reference, {}).get("cpu_s")
    if not ref:
        raise BackendError(f"reference machine {reference} could not run the workload")
    for r in results.values():
        if "cpu_s" in r:
            r["speed"] = round(ref / r["cpu_s"], 3)
    return results


def write_speeds(path: str, speeds: dict[str, float]) -> None:
    """Set machines.NAME.speed in the policy file, keeping the rest of its text (comments,
    order, style) as it was; the new text must validate before it replaces the old, atomically."""
    import yaml

    from router.policy import parse_policy

    with open(path) as f:
        text = f.read()
    root = yaml.compose(text)
    machines = next((v for k, v in root.value if k.value == "machines"), None)
    edits: list[tuple[int, int, str]] = []
    for key, node in machines.value if machines is not None else []:
        if key.value in speeds and isinstance(node, yaml.MappingNode):
            edits.append(_speed_edit(text, node, speeds[key.value]))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    parse_policy(text, path)
    atomic.write(path, text.encode())


def _speed_edit(text: str, machine: Any, speed: float) -> tuple[int, int, str]:
    """(start, end, replacement) in text that sets this machine mapping's speed."""
    for key, value in machine.value:
        if key.value == "speed":
            return value.start_mark.index, value.end_mark.index, f"{speed:g}"
    if machine.flow_style:            # {backend: local, price: 1.0}: before the brace
        end = text.rindex("}", 0, machine.end_mark.index)
        return end, end, f", speed: {speed:g}"
    first = machine.value[0][0]       # block style: a line of its own under the first key
    line_start = text.rindex("\n", 0, first.start_mark.index) + 1
    return line_start, line_start, " " * first.start_mark.column + f"speed: {speed:g}\n"
