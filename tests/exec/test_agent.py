"""The remote agent, run as ssh.py runs it on a host (`python3 -S -c PROGRAM`), without ssh:
a bare python3 that has no router on its path."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import time

from router.exec.agent import program
from router.exec.usage import exit_value


def _agent(tmp_path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["/usr/bin/python3", "-I", "-S", "-c", program()], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={"PATH": "/usr/bin:/bin"})


def _events(proc: subprocess.Popen[bytes], requests: list[dict], close: bool,
            runs: int | None = None) -> list[dict]:
    """Every event until each job has ended; stdin is closed after the requests when `close`
    (the agent then stops what still runs), else once all have ended."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
    proc.stdin.flush()
    if close:
        proc.stdin.close()
    runs = runs or sum(r["op"] == "run" for r in requests)
    events: list[dict] = []
    while sum(e["ev"] == "exit" for e in events) < runs:
        line = proc.stdout.readline()
        assert line, events
        events.append(json.loads(line))
    if not close:
        proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    return events


def _output(events: list[dict], key: int, fd: int) -> bytes:
    return b"".join(base64.b64decode(e["data"]) for e in events
                    if e["ev"] == "out" and e["key"] == key and e["fd"] == fd)


def test_jobs_stream_their_output_and_end_with_their_status(tmp_path):
    events = _events(_agent(tmp_path), [
        {"op": "run", "key": 1, "cwd": "/", "argv": ["sh", "-c", "pwd; echo e >&2; exit 3"]},
        {"op": "run", "key": 2, "cwd": "/no/such", "argv": ["pwd"]},
        {"op": "run", "key": 3, "cwd": "/", "argv": ["no-such-program"]}], close=False)
    assert events[0] == {"ev": "ready", "host": os.uname()[1]}
    ends = {e["key"]: e["usage"] for e in events if e["ev"] == "exit"}
    assert {k: exit_value(u["status"]) for k, u in ends.items()} == {1: 3, 2: 0, 3: 127}
    assert (_output(events, 1, 1), _output(events, 1, 2)) == (b"/\n", b"e\n")
    assert _output(events, 2, 1) == f"{tmp_path}\n".encode()     # no such cwd: its home
    assert _output(events, 3, 2) == b"router: no-such-program: No such file or directory\n"


def test_kill_and_a_closed_stdin_end_the_jobs_whole_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    proc = _agent(tmp_path)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"op": "run", "key": 1, "cwd": "/", "argv": [
        "sh", "-c", f"sleep 300 & echo $! > {pid_file}; sleep 300"]}).encode() + b"\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the job never wrote its child's pid"
        select.select([], [], [], 0.01)
    watch = os.pidfd_open(int(pid_file.read_text()))    # before anything could reap it
    try:
        events = _events(proc, [{"op": "run", "key": 2, "cwd": "/", "argv": ["sleep", "60"]},
                                {"op": "kill", "key": 1}], close=True, runs=2)
        assert select.select([watch], [], [], 10)[0] == [watch]   # killed with its group
    finally:
        os.close(watch)
    ends = {e["key"]: exit_value(e["usage"]["status"]) for e in events if e["ev"] == "exit"}
    assert ends == {1: -signal.SIGTERM, 2: -signal.SIGTERM}
