"""stdin reaches attached jobs, as srun forwards it; `--each` jobs read /dev/null, as xargs'."""

from __future__ import annotations

import subprocess

import pytest

from daemon_fixture import POLICY, RunningDaemon



@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = RunningDaemon(tmp_path_factory.mktemp("stdin"), POLICY)
    yield d.start()
    d.stop()


def test_piped_stdin_reaches_the_job(daemon):
    r = daemon.router("submit", "--", "cat", input="x\n")
    assert (r.returncode, r.stdout) == (0, "x\n"), r.stderr


def test_much_more_than_the_credit_arrives_whole_and_in_order(daemon):
    text = "".join(f"{i}\n" for i in range(300_000))          # ~2 MB: many chunks
    r = daemon.router("submit", "--", "sh", "-c", "sleep 0.2; md5sum", input=text)
    expected = subprocess.run(["md5sum"], input=text, capture_output=True, text=True).stdout
    assert (r.returncode, r.stdout) == (0, expected), r.stderr


def test_a_job_that_never_reads_ends_and_so_does_its_submitter(daemon):
    r = daemon.router("submit", "--", "true", input="y\n" * 2_000_000)
    assert r.returncode == 0, r.stderr


def test_without_piped_input_a_job_reads_dev_null(daemon):
    r = daemon.router("submit", "--", "sh", "-c", "cat; echo end", stdin=subprocess.DEVNULL)
    assert (r.returncode, r.stdout) == (0, "end\n"), r.stderr


def test_each_jobs_read_dev_null_their_lines_are_arguments(daemon):
    r = daemon.router("submit", "--each", "--", "sh", "-c", 'c=$(cat); echo "$0[$c]"',
                      input="a\nb\n")
    assert (r.returncode, sorted(r.stdout.split())) == (0, ["a[]", "b[]"]), r.stderr
