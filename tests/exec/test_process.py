"""The shared process code: stdlib only, since the spawner and the remote agent load it alone."""

from __future__ import annotations

import ast
import os
import select
import subprocess
import sys

import pytest

from router.exec import process


def _imports(path: str) -> set[str]:
    tree = ast.parse(open(path).read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_process_imports_only_the_standard_library():
    assert _imports(process.__file__) <= {"__future__", "os", "signal", "typing"}


def test_the_spawner_and_agent_import_nothing_of_router_but_stdlib_only_modules():
    here = os.path.dirname(process.__file__)
    allowed = {"spawner.py": {"router.exec.process", "router.exec.cgroup"},
               "agent.py": {"router.exec", "router.exec.process"},
               "cgroup.py": set()}
    for name, modules in allowed.items():
        ours = {m for m in _imports(os.path.join(here, name)) if m.startswith("router")}
        assert ours <= modules, (name, ours)
    assert _imports(os.path.join(here, "cgroup.py")) <= {"__future__", "os", "signal", "time",
                                                         "typing"}


def test_a_session_leader_is_reaped_with_its_group_and_its_status():
    r, w = os.pipe()
    pid = process.spawn_session(process.resolve("sh", dict(os.environ)),
                                ["sh", "-c", "sleep 30 & echo $!; exit 4"], dict(os.environ),
                                stdout=w)
    os.close(w)
    with os.fdopen(r) as out:
        grandchild = int(out.readline())
    watch, leader = os.pidfd_open(grandchild), os.pidfd_open(pid)
    assert select.select([leader], [], [], 10)[0] == [leader]
    assert process.holds_pid(leader)                # a zombie: its pid is still its own
    status, ru = process.reap(pid)
    assert os.waitstatus_to_exitcode(status) == 4 and ru.ru_maxrss > 0
    assert not process.holds_pid(leader)            # reaped: the pid may name another now
    assert select.select([watch], [], [], 10)[0] == [watch]    # left behind: killed with it
    os.close(watch)
    os.close(leader)


def test_resolve_follows_the_jobs_path_not_ours(tmp_path):
    prog = tmp_path / "only-here"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    assert process.resolve("only-here", {"PATH": str(tmp_path)}) == str(prog)
    with pytest.raises(FileNotFoundError):
        process.resolve("only-here", {"PATH": "/usr/bin"})


def test_a_job_gets_default_signal_dispositions():
    """Python ignores SIGPIPE; a job started by it must not (`yes | head` would never end)."""
    out = subprocess.run([sys.executable, "-c", (
        "import os\nfrom router.exec import process\n"
        "pid = process.spawn_session('/bin/sh', ['sh', '-c', 'yes | head -1'], os.environ)\n"
        "print(os.waitstatus_to_exitcode(process.reap(pid)[0]))\n")],
        capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["y", "0"], out.stderr
