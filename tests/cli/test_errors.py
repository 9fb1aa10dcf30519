"""Errors in one line, no silent mkdir -p, no empty history made by a typo, files with the
umask's mode (issue 17 item 8)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUTER = [sys.executable, "-m", "router"]


def _router(env: dict[str, str], *args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROUTER, *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT, **kw)


def _one_line(r: subprocess.CompletedProcess[str], command: str) -> None:
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"router {command}: ") and f"{command}: {command}" not in r.stderr
    assert "Traceback" not in r.stderr


def test_report_and_log_of_a_missing_history_create_nothing(env, tmp_path):
    typo = tmp_path / "typo.db"
    for command in ("report", "log"):
        r = _router(env, command, "--store", str(typo), *(["--text"] if command == "report"
                                                          else []))
        _one_line(r, command)
        assert not typo.exists() and "no history" in r.stderr


def test_report_out_in_a_missing_directory_is_an_error(env, tmp_path):
    from router.store import Store
    with Store(env["ROUTER_STORE"]):
        pass
    r = _router(env, "report", "--out", str(tmp_path / "nope" / "x.html"))
    _one_line(r, "report")
    assert not (tmp_path / "nope").exists()


def test_report_file_gets_the_umasks_mode(env, tmp_path):
    from router.store import Store
    with Store(env["ROUTER_STORE"]):
        pass
    out = tmp_path / "r.html"
    r = _router(env, "report", "--out", str(out), preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644


def test_daemon_socket_in_a_missing_directory_is_an_error(env, tmp_path):
    r = _router(env, "daemon", "--socket", str(tmp_path / "nope" / "router.sock"))
    _one_line(r, "daemon")
    assert not (tmp_path / "nope").exists()


def test_serve_on_a_port_in_use_is_one_line(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = _router(env, "serve", "--port", str(s.getsockname()[1]))
    _one_line(r, "serve")


def test_no_doubled_prefixes(env):
    _one_line(_router(env, "predict"), "predict")
    _one_line(_router(env, "collect"), "collect")
