"""Shared CPU burner for the example programs: a unit is one millisecond of this process's CPU
time, on any machine. Counted in loop iterations instead, every cost here scaled with the
speed of the machine the tests ran on (one 2.8x faster than the one the programs were written
on made every run of prog's band cheap, and the routing tests trivial). What makes machines
differ in cost is their `speed` in the policy, which `router calibrate` measures."""

import sys
import time


def burn(ms: float) -> None:
    end = time.process_time() + ms / 1000
    x = 1
    while time.process_time() < end:
        for i in range(1000):
            x = (x * 31 + i) & 0xFFFF


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        sys.exit(f"{sys.argv[0]}: not a number: {text!r}")


def report(label: str) -> None:
    """Print `INPUT cpu_seconds`, the shape of the pipes write-up's ./prog."""
    print(f"{label} {time.process_time():.4f}")
