"""Replacing a file that matters (model, policy, report) so a reader sees the old version or
the new one, never half of either: a temp file beside it, fsync, rename."""

from __future__ import annotations

import os
import tempfile

from router.errors import RouterError


def _umask() -> int:
    """The process's umask, read without setting it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write data to path atomically. A file already there keeps its permission bits; a new
    one gets the umask's, as open() would give it. A missing directory is an error, not made:
    a typo in --out must not leave a tree of directories behind."""
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise RouterError(f"cannot write {path}: no directory {directory}")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    except OSError as exc:
        raise RouterError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
