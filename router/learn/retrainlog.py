"""Every retrain's outcome, one JSON line each beside the model.

The model file keeps only the winner and `<model>.rejected` only the last loser, so the
report's retrain history and the daemon's promoted/rejected counters read this log instead.
Stdlib only: the daemon reads it without NumPy or JAX.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def path_for(model_path: str) -> str:
    return str(model_path) + ".retrains.jsonl"


def append(model_path: str, record: dict[str, Any]) -> None:
    """One line, written with O_APPEND so that two writers never interleave inside it; a log
    that cannot be written costs the history one line, never the retrain."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    try:
        fd = os.open(path_for(model_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning("retrain log %s not written: %s", path_for(model_path), exc.strerror)


def read(model_path: str, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The records from byte offset on, and the offset after the last whole line."""
    try:
        with open(path_for(model_path), "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            log.warning("retrain log %s: a bad line skipped", path_for(model_path))
    return records, offset + end
