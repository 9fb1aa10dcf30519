"""Time limits as Slurm spells them (`--time` and a machine's `time_limit`): one parser for the
submit path (stdlib only) and the policy."""

from __future__ import annotations

SPELLINGS = "minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]]"


def seconds(text: str) -> float:
    """MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC, in seconds; ValueError saying what
    was expected otherwise."""
    days, _, rest = text.rpartition("-") if "-" in text else ("", "", text)
    try:
        parts = [float(p) for p in rest.split(":")]
        day = float(days) if days else 0.0
    except ValueError:
        parts, day = [], 0.0
    if not parts or len(parts) > 3 or any(p < 0 for p in parts) or text.startswith("-"):
        raise ValueError(f"expected {SPELLINGS}")
    if days:          # after D-, the first field is hours
        units = (3600.0, 60.0, 1.0)
    else:
        units = {1: (60.0,), 2: (60.0, 1.0), 3: (3600.0, 60.0, 1.0)}[len(parts)]
    total = day * 86400 + sum(p * u for p, u in zip(parts, units))
    if total <= 0:
        raise ValueError("must be more than 0")
    return total
