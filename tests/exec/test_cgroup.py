"""Each local job in its own cgroup (root here, cgroup v1): what leaves the job's session is
still counted and still killed, and one daemon's groups are never another's to remove."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import time
import sys
from types import SimpleNamespace

import pytest

from router.exec.jobspec import JobSpec
from router.backends.local import LocalBackend
from router.exec import cgroup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root here")

BURN = "import time\nwhile time.process_time() < 0.5: pass\nopen('{done}', 'w').close()\n" \
       "time.sleep(300)\n"


def machine(name: str, **options: object) -> SimpleNamespace:
    return SimpleNamespace(name=name, options=options, backend="local")


def spec(argv: list[str]) -> JobSpec:
    return JobSpec(1, argv, "/", dict(os.environ), os.getuid(), os.getgid(), [], "")


def _pid_of(path) -> int:
    deadline = time.monotonic() + 20
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"nothing wrote {path}"
        select.select([], [], [], 0.02)
    return int(path.read_text())


async def _run(backend: LocalBackend, argv: list[str], cancel_when=None):
    run = await backend.start(spec(argv), lambda fd, data: None)
    if cancel_when is not None:
        await asyncio.get_running_loop().run_in_executor(None, cancel_when)
        run.cancel()
    return await asyncio.wait_for(run.wait(), 60)


def _gone(pid_file) -> bool:
    """Its pid names nothing, or it ends within a bound (a reused pid can only fail this)."""
    try:
        watch = os.pidfd_open(_pid_of(pid_file))
    except ProcessLookupError:
        return True
    try:
        return select.select([watch], [], [], 10)[0] == [watch]
    finally:
        os.close(watch)


def test_a_process_that_left_the_session_is_counted_and_killed_with_the_job(tmp_path):
    done, pid = tmp_path / "burnt", tmp_path / "escaped.pid"
    script = (f"setsid {sys.executable} -S -c \"$0\" & echo $! > {pid}; "
              f"while [ ! -e {done} ]; do sleep 0.02; done")
    backend = LocalBackend(machine("m"))
    assert backend.cgroups, "this host allows cgroups: the test needs them"

    async def main():
        try:
            return await _run(backend, ["sh", "-c", script, BURN.format(done=done)])
        finally:
            await backend.close()
    usage = asyncio.run(main())
    assert usage.exit == 0
    assert usage.cpu_s >= 0.5          # the escaped burner's CPU, not only the session's
    assert _gone(pid)                   # and it did not outlive the job


def test_cancel_kills_what_left_the_session(tmp_path):
    pid = tmp_path / "escaped.pid"
    backend = LocalBackend(machine("m"))

    async def main():
        try:
            return await _run(backend, ["sh", "-c", f"setsid sleep 300 & echo $! > {pid}; "
                                        "sleep 300"], cancel_when=lambda: _pid_of(pid))
        finally:
            await backend.close()
    assert asyncio.run(main()).exit == -signal.SIGTERM
    assert _gone(pid)


def test_groups_are_named_per_daemon_so_another_process_never_removes_ours():
    ours = LocalBackend(machine("shared", cpu_quota=0.5))
    try:
        assert ours.cgroups and all(f"router-{os.getpid()}-shared" in g for g, _ in ours.cgroups)
        other = subprocess.run([sys.executable, "-c", (
            "import asyncio\nfrom types import SimpleNamespace as N\n"
            "from router.backends.local import LocalBackend\n"
            "b = LocalBackend(N(name='shared', options={'cpu_quota': 0.5}, backend='local'))\n"
            "asyncio.run(b.close())\n")], capture_output=True, text=True, timeout=60)
        assert other.returncode == 0, other.stderr
        assert all(os.path.isdir(g) for g, _ in ours.cgroups)
        quota = [g for g, _ in ours.cgroups if os.path.exists(f"{g}/cpu.cfs_quota_us")]
        assert [open(f"{g}/cpu.cfs_quota_us").read().strip() for g in quota] == ["50000"]
    finally:
        asyncio.run(ours.close())
    assert not any(os.path.exists(g) for g, _ in ours.cgroups)


def test_without_cgroups_jobs_still_run_and_say_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cgroup, "ROOT", str(tmp_path))      # a host with no cgroup fs
    backend = LocalBackend(machine("bare", cpu_quota=0.5))
    assert backend.cgroups is None
    assert "jobs not in cgroups" in caplog.text and "no CPU cap" in caplog.text

    async def main():
        try:
            return await _run(backend, ["sh", "-c", "exit 3"])
        finally:
            await backend.close()
    assert asyncio.run(main()).exit == 3


def test_a_reused_slot_counts_only_its_own_jobs_cpu(tmp_path):
    burn = "import time\nwhile time.process_time() < 0.5: pass\n"
    backend = LocalBackend(machine("m"))

    async def main():
        try:
            first = await _run(backend, [sys.executable, "-S", "-c", burn])
            second = await _run(backend, ["true"])
            return first, second, os.listdir(backend.cgroups[0][0])
        finally:
            await backend.close()
    first, second, slots = asyncio.run(main())
    assert first.cpu_s >= 0.5 and second.cpu_s < 0.25, (first, second)
    assert [name for name in slots if name.startswith("slot-")] == ["slot-1"]   # reused
