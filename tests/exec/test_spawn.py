"""The spawner process: jobs start, stream, end and die through it, and its death is said."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import time

import pytest

from router.exec.jobspec import JobSpec

from router.exec import spawn
from router.backends.local import LocalRun, command
from router.errors import BackendError, JobLost


def spec(env: dict[str, str] | None = None) -> JobSpec:
    return JobSpec(1, [], "/", env or dict(os.environ), os.getuid(), os.getgid(), [], "")


def run(coro):
    return asyncio.run(coro)


def test_output_exit_code_and_working_directory(tmp_path):
    async def main():
        return await command(["sh", "-c", "pwd; echo oops >&2; exit 3"], spec())
    code, out, err = run(main())
    assert (code, err) == (3, b"oops\n")
    assert out.decode().strip() == os.getcwd()


def test_large_output_arrives_whole_and_in_order(tmp_path):
    async def main():
        return await command(["sh", "-c", "seq 1 200000"], spec())
    code, out, _ = run(main())
    assert code == 0
    assert out.decode().split() == [str(i) for i in range(1, 200001)]


def test_a_huge_environment_travels_in_a_memfd(tmp_path):
    env = dict(os.environ, **{f"V{i}": "y" * 1000 for i in range(200)})

    async def main():
        out: list[bytes] = []
        child = spawn.start(["sh", "-c", 'echo "${#V7} $PWD"'], spec(env), cwd=str(tmp_path))
        usage = await LocalRun(child, lambda fd, data: out.append(data)).wait()
        return usage.exit, b"".join(out).decode().split()
    assert run(main()) == (0, ["1000", str(tmp_path)])


@pytest.mark.parametrize("argv, cwd, says", [
    (["no-such-program-here"], "/", "no-such-program-here: no such program"),
    (["true"], "/no/such/dir", "working directory /no/such/dir: no such directory"),
])
def test_what_cannot_start_says_why_in_one_line(argv, cwd, says):
    async def main():
        await LocalRun(spawn.start(argv, spec(), cwd=cwd), lambda fd, data: None).wait()
    with pytest.raises(BackendError, match=says):
        run(main())


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet: either way it runs no more code."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_cancel_kills_the_whole_group_and_reports_the_signal(tmp_path):
    pid_file = tmp_path / "grandchild.pid"

    async def main():
        child = spawn.start(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; sleep 300"], spec())
        job = LocalRun(child, lambda fd, data: None)
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline, "the job never wrote its child's pid"
            await asyncio.sleep(0.01)
        watch = os.pidfd_open(int(pid_file.read_text()))
        job.cancel()
        usage = await asyncio.wait_for(job.wait(), 10)
        ended, _, _ = select.select([watch], [], [], 10)
        os.close(watch)
        return usage.exit, bool(ended)
    assert run(main()) == (-signal.SIGTERM, True)


def test_a_dead_spawner_kills_its_jobs_which_are_lost_and_the_next_start_gets_a_new_one():
    async def main():
        job = LocalRun(spawn.start(["sleep", "30"], spec()), lambda fd, data: None)
        while not job.pid:
            await asyncio.sleep(0.01)
        watch = os.pidfd_open(job.pid)     # ours: it names this process only, ever
        os.kill(spawn.spawner().pid, signal.SIGKILL)
        with pytest.raises(JobLost, match="the job spawner died"):
            await asyncio.wait_for(job.wait(), 10)
        ended, _, _ = select.select([watch], [], [], 10)
        os.close(watch)
        code, out, _ = await command(["echo", "again"], spec())
        return bool(ended), code, out
    assert run(main()) == (True, 0, b"again\n")


def test_a_job_inherits_only_its_stdin_stdout_and_stderr():
    async def main():
        return await command(["sh", "-c", "ls /proc/$$/fd"], spec())
    code, out, _ = run(main())
    assert (code, sorted(out.decode().split())) == (0, ["0", "1", "2"])
