"""The Slurm backend: a machine is a partition (plus optional sbatch options).

Jobs go in with `sbatch --parsable --wrap`, as the submitting user (munge authenticates that
uid), with their output in files that are streamed back as they grow. Their CPU comes from
Slurm's own accounting (`sacct` UserCPU + SystemCPU once the job has ended; that needs
slurmdbd: jobcomp/filetxt records no CPU) and lands in the history like any other job.
Cancel is `scancel`. A controller that cannot be reached fails the submit with one line, which
sends the job to the machine's fallback.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from pathlib import Path
from typing import Any

from router.exec.jobspec import JobSpec, OnOutput
from router.backends.local import command
from router.errors import BackendError
from router.exec.usage import Usage, exit_of
from router.paths import private_dir

ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE")
SACCT_FIELDS = "JobID,State,ExitCode,UserCPU,SystemCPU,MaxRSS,ElapsedRaw"
ACCOUNTING_WAIT_S = 10.0


def seconds(text: str) -> float | None:
    """Slurm's [DD-[HH:]]MM:SS[.mmm]; None when empty."""
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text.strip())
    if not m:
        return None
    days, hours, minutes, secs = m.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(secs))


def kilobytes(text: str) -> int:
    m = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    if not m:
        return 0
    scale = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3}[m.group(2)]
    return int(float(m.group(1)) * scale)


def parse_sacct(job_id: str, text: str) -> dict[str, Any] | None:
    """The job's end state and usage, or None while it runs or its CPU is not accounted yet."""
    rows = [line.split("|") for line in text.strip().splitlines() if line.count("|") >= 6]
    main = next((r for r in rows if r[0] == job_id), None)
    if main is None or main[1].split()[0] not in ENDED:
        return None
    user, system = seconds(main[3]), seconds(main[4])
    if user is None or system is None:
        return None
    code, _, sig = main[2].partition(":")
    return {"state": main[1].split()[0], "exit": exit_of(int(code or 0), int(sig or 0)),
            "cpu_user_s": user, "cpu_sys_s": system,
            "max_rss_kb": max([kilobytes(r[5]) for r in rows] or [0]),
            "wall_s": float(main[6] or 0)}


class SlurmRun:
    def __init__(self, backend: SlurmBackend, job_id: str, spec: JobSpec, files: dict[int, Path],
                 on_output: OnOutput):
        self.backend = backend
        self.remote_id = job_id
        self.spec = spec
        self.files = files
        self.offsets = {1: 0, 2: 0}
        self.on_output = on_output
        self.started = time.monotonic()

    def _drain(self) -> None:
        """Whatever the job wrote since we last looked."""
        for fd, path in self.files.items():
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets[fd])
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                self.offsets[fd] += len(data)
                self.on_output(fd, data)

    async def wait(self) -> Usage:
        ended_at = None
        while True:
            self._drain()
            code, out, err = await command(["sacct", "-j", self.remote_id, "-n", "-P", "-o",
                                            SACCT_FIELDS], self.spec)
            done = parse_sacct(self.remote_id, out.decode(errors="replace")) if code == 0 else None
            if done is not None:
                break
            if code == 0 and ended_at is None and any(
                    s in out.decode(errors="replace") for s in ENDED):
                ended_at = time.monotonic()      # ended, CPU not accounted yet
            if ended_at is not None and time.monotonic() - ended_at > ACCOUNTING_WAIT_S:
                raise BackendError(f"job {self.remote_id}: Slurm recorded no CPU (is slurmdbd "
                                   "accounting on?)")
            await asyncio.sleep(self.backend.poll_s)
        self._drain()
        for path in self.files.values():
            path.unlink(missing_ok=True)
        return Usage(done["cpu_user_s"], done["cpu_sys_s"],
                     done["wall_s"] or time.monotonic() - self.started, done["max_rss_kb"],
                     done["exit"])

    def cancel(self) -> None:
        asyncio.get_running_loop().create_task(command(["scancel", self.remote_id], self.spec))


def cancel_left(remote_id: str) -> bool:
    """scancel, at a daemon's start, a job a dead daemon left running whose machine has since
    left the policy (nothing can watch it); whether Slurm took the cancel. Blocking: start-up
    only."""
    import subprocess
    try:
        r = subprocess.run(["scancel", remote_id], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


class SlurmBackend:
    def __init__(self, machine: Any):
        o = machine.options or {}
        self.partition = str(o.get("partition") or machine.name)
        self.extra = [str(x) for x in o.get("sbatch_options") or []]
        self.poll_s = float(o.get("poll_s") or 0.25)

    def _files(self, spec: JobSpec) -> dict[int, Path]:
        """The job's stdout and stderr, where Slurm writes them and the daemon reads them."""
        spool = Path(private_dir(f"/tmp/router-slurm-{spec.uid}", spec.uid, spec.gid))
        return {1: spool / f"router-{spec.id}.out", 2: spool / f"router-{spec.id}.err"}

    async def start(self, spec: JobSpec, on_output: OnOutput) -> SlurmRun:
        if spec.stdin is not None:
            spec.stdin.close()                # batch jobs read /dev/null
        files = self._files(spec)
        argv = ["sbatch", "--parsable", f"--partition={self.partition}",
                f"--job-name=router-{spec.id}", f"--output={files[1]}", f"--error={files[2]}",
                f"--chdir={spec.cwd}", *self.extra, f"--wrap={shlex.join(spec.argv)}"]
        code, out, err = await command(argv, spec)
        if code != 0:
            why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
            raise BackendError(f"sbatch: {why[0]}")
        job_id = out.decode().strip().split(";")[0]
        return SlurmRun(self, job_id, spec, files, on_output)

    def adopt(self, spec: JobSpec, remote_id: str, offsets: dict[int, int],
              on_output: OnOutput) -> SlurmRun:
        """A job keeps running in Slurm when the daemon dies: its output files and sacct are
        all a new daemon needs to stream the rest of it and record its real end."""
        run = SlurmRun(self, remote_id, spec, self._files(spec), on_output)
        run.offsets.update(offsets)
        return run

    async def close(self) -> None:
        return None
