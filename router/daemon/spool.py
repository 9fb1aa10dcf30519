"""What the daemon keeps of each job on disk: its stdout and stderr, for `router follow` after
(or while) it runs, and a detached job's environment until it ends, for a daemon restarted
after a crash to run it (as slurmctld keeps a batch job's environment in its state directory).

Both are their owner's: the directory is the daemon's alone (0700) and each file 0600, so only
the daemon reads them. The environment is never in the history, which a group may read: it
holds tokens and passwords as often as PATH.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from router.daemon.job import Job

log = logging.getLogger(__name__)


class Spool:
    """One file per job and stream, opened only when the job writes something; one more per
    detached job, its environment."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)     # one an older daemon made 0755

    def save_env(self, job_id: int, env: dict[str, str]) -> None:
        """No fsync: a power cut that loses the file leaves the job cancelled at the next
        start, with why; paying a disk flush on every detached submit would cost every user."""
        path = self.dir / f"{job_id}.env"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "w") as f:
                json.dump(env, f)
        except OSError as exc:
            log.error("job %d: its environment was not kept for a restart: %s", job_id, exc)

    def env(self, job_id: int) -> dict[str, str] | None:
        try:
            with open(self.dir / f"{job_id}.env") as f:
                env = json.load(f)
        except (OSError, ValueError):
            return None
        return env if isinstance(env, dict) else None

    def drop_envs(self, keep: set[int] | frozenset[int] = frozenset()) -> None:
        """Every kept environment but those of keep: at a start, a crash may have left those
        of jobs whose end was recorded, and they hold secrets."""
        for path in self.dir.glob("*.env"):
            if path.stem.isdigit() and int(path.stem) not in keep:
                self.drop_env(int(path.stem))

    def drop_env(self, job_id: int) -> None:
        try:
            os.unlink(self.dir / f"{job_id}.env")
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("job %d: its environment file stays: %s", job_id, exc)

    def path(self, job_id: int, fd: int) -> Path:
        return self.dir / f"{job_id}.{'out' if fd == 1 else 'err'}"

    def write(self, job: Job, fd: int, data: bytes) -> None:
        """A full disk stops the job's spooling (logged once), not the job or its stream:
        `written` stays what the file holds."""
        if job.unspooled:
            return
        try:
            f = job.files.get(fd)
            if f is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                f = job.files[fd] = open(os.open(self.path(job.id, fd), flags, 0o600), "ab")
            f.write(data)
            f.flush()
        except OSError as exc:
            job.unspooled = True
            log.error("job %d: its output is no longer kept for `follow`: %s", job.id, exc)
            return
        job.written[fd] += len(data)

    def close(self, job: Job) -> None:
        for f in job.files.values():
            try:
                f.close()
            except OSError:
                pass         # what a full disk kept from the file was logged by write()
        job.files.clear()

    def prune(self, max_age_s: float, keep: set[int]) -> int:
        """Delete the output of jobs that ended more than max_age_s ago (not those in keep);
        `router follow` of such a job then gives its exit status and no output."""
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.dir.iterdir():
            if path.suffix not in (".out", ".err"):
                continue
            try:
                if int(path.stem) not in keep and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except (ValueError, OSError):
                continue
        return removed

    def read(self, job_id: int, fd: int, limit: int | None) -> bytes:
        return self.read_at(job_id, fd, 0, limit)

    def read_at(self, job_id: int, fd: int, offset: int, limit: int | None) -> bytes:
        try:
            with open(self.path(job_id, fd), "rb") as f:
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except OSError:
            return b""

    def sizes(self, job_id: int) -> dict[int, int]:
        """What the spool holds of a job's stdout and stderr: where `follow` of an ended job
        starts live output, and where an adopted job's output goes on."""
        out = {}
        for fd in (1, 2):
            try:
                out[fd] = self.path(job_id, fd).stat().st_size
            except OSError:
                out[fd] = 0
        return out
