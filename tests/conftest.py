"""Shared fixtures and the skip-or-fail rule. Real parts only: real subprocesses, real SQLite
files, real daemons. Integration fixtures live in tests/integration/conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
EXAMPLES = ROOT / "examples"
ROUTER = [sys.executable, "-m", "router"]

# The one place that makes the tests' helper modules importable by their plain names: this
# file and hand_history (tests/), daemon_fixture, users, hosts and slurm (tests/integration/).
# Test modules never touch sys.path and never import each other.
for _helpers in (TESTS / "integration", TESTS):
    if str(_helpers) not in sys.path:
        sys.path.insert(0, str(_helpers))

# A suite run from a shell's background job starts with SIGINT ignored, and every process it
# starts would inherit that: the Ctrl-C tests would send a signal nobody can get.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def need(condition: bool, reason: str) -> None:
    """Skip when a real part is missing, except in CI where a skip would hide a failure."""
    if condition:
        return
    if os.environ.get("ROUTER_REQUIRE_INTEGRATION") or os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def need_root() -> None:
    need(os.geteuid() == 0, "needs root")


def need_program(*names: str) -> None:
    for name in names:
        need(shutil.which(name) is not None, f"needs {name} (apt-get install it)")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose router files all live in tmp_path."""
    e = dict(os.environ)
    e.update(ROUTER_STORE=str(tmp_path / "history.db"), ROUTER_MODEL=str(tmp_path / "model.rmod"),
             ROUTER_SOCKET=str(tmp_path / "router.sock"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
             PYTHONUNBUFFERED="1")
    e.pop("ROUTER_POLICY", None)
    return e
