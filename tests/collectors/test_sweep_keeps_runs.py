"""`router collect` keeps every finished run (issue 19 item 11): a bad line, Ctrl-C with
runs finished out of input order, and a sweep too large to hold in memory."""

from __future__ import annotations

import resource
import signal
import subprocess
import time

import psutil
import pytest

from conftest import ROUTER
from router.store import Store


def _count(env: dict[str, str]) -> int:
    try:
        with Store(env["ROUTER_STORE"], readonly=True) as s:
            return s.count()
    except Exception:       # not created yet
        return 0


def _poll(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _end(p: subprocess.Popen) -> None:
    """On a failed assertion: the collector and the runs it started, by pid."""
    if p.poll() is None:
        runs = psutil.Process(p.pid).children()
        p.kill()
        p.wait()
        for run in runs:
            run.kill()


def test_nul_byte_is_one_line_and_keeps_the_finished_run(env):
    r = subprocess.run([*ROUTER, "collect", "--text", "--", "/bin/echo"],
                       input=b"1\n2\x00x\n3\n", capture_output=True, env=env, timeout=60)
    err = r.stderr.decode()
    assert r.returncode != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "line 2" in err and "NUL" in err
    assert r.stdout.decode().split()[0] == "1"
    assert _count(env) == 1


def test_non_utf8_stdin_is_one_line(env):
    r = subprocess.run([*ROUTER, "collect", "--", "/bin/echo"], input=b"1\n\xff\xfe\n",
                       capture_output=True, env=env, timeout=60)
    err = r.stderr.decode()
    assert r.returncode != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "UTF-8" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_records_runs_finished_out_of_order(env, tmp_path, sig):
    """-j 2 over `777 0.01 0.01`: both short runs end while the first still runs, so they
    wait for it to keep input order; Ctrl-C (or SIGTERM) must record them and say so truly."""
    script = f"touch {tmp_path}/started.$0; exec sleep $0"
    p = subprocess.Popen([*ROUTER, "collect", "-j", "2", "--text", "--", "/bin/sh", "-c",
                          script, "{}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, text=True)
    try:
        p.stdin.write("777\n0.01\n0.011\n")
        p.stdin.close()
        p.stdin = None
        me = psutil.Process(p.pid)

        def short_runs_reaped() -> bool:
            started = all((tmp_path / f"started.{v}").exists() for v in ("0.01", "0.011"))
            return started and len(me.children()) == 1   # only `sleep 777` left, unreaped none
        assert _poll(short_runs_reaped)
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
    finally:
        _end(p)
    assert p.returncode == 128 + sig
    assert _count(env) == 2
    assert sorted(line.split()[0] for line in out.splitlines()) == ["0.01", "0.011"]
    assert "2 runs recorded" in err and "1 " in err and "Traceback" not in err


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_huge_sweep_streams(env):
    """1:1e12 cannot be listed in 2 GB of address space; streamed, runs start at once."""
    p = subprocess.Popen([*ROUTER, "collect", "--text", "--sweep", "1:1e12", "--",
                          "/bin/true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env, text=True, preexec_fn=_limit_memory)
    try:
        assert _poll(lambda: _count(env) >= 3 or p.poll() is not None, timeout=60)
        assert p.poll() is None, p.stderr.read()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        _end(p)
    assert p.returncode == 130 and "Traceback" not in err
    assert _count(env) >= 3


def test_shuffled_huge_sweep_is_refused(env):
    r = subprocess.run([*ROUTER, "collect", "--shuffle", "--sweep", "1:1e12", "--",
                        "/bin/true"], capture_output=True, text=True, env=env, timeout=60,
                       preexec_fn=_limit_memory)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "--shuffle" in r.stderr and _count(env) == 0
