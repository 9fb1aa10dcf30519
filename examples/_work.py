"""Shared CPU burner for the example programs: cost is counted in loop iterations, so it
scales with the machine's speed the way a real program's does."""

import sys
import time

ITERATIONS_PER_MS = 11_000  # about 1 ms of CPU per unit on the reference machine


def burn(ms: float) -> None:
    x = 1
    for i in range(int(ms * ITERATIONS_PER_MS)):
        x = (x * 31 + i) & 0xFFFF


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        sys.exit(f"{sys.argv[0]}: not a number: {text!r}")


def report(label: str) -> None:
    """Print `INPUT cpu_seconds`, the shape of the pipes write-up's ./prog."""
    print(f"{label} {time.process_time():.4f}")
