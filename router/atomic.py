"""Replacing a file that matters (model, policy, report) so a reader sees the old version or
the new one, never half of either: a temp file beside it, fsync, rename."""

from __future__ import annotations

import os
import tempfile


def write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write data to path atomically; a file already there keeps its permission bits."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
