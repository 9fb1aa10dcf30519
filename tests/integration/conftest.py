"""Fixtures of the integration tests: a running daemon, users made for a test, and a client
those users can run. Plain helpers are in daemon_fixture.py and users.py (importable by their
names: tests/conftest.py puts this directory on sys.path)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import need_root
from daemon_fixture import POLICY, RunningDaemon
from users import Client, client_for_others, make_users, remove_users, shared_dir


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    """A daemon with the standard two local machines and no model."""
    d = RunningDaemon(tmp_path, POLICY)
    yield d.start()
    d.stop()


@pytest.fixture
def other_users() -> Iterator[list]:
    """Two unprivileged users made for the test, removed after it."""
    need_root()
    users = make_users()
    yield users
    remove_users()


@pytest.fixture(scope="session")
def others() -> Iterator[Client]:
    """The package under test as other users can run it, wherever this clone is."""
    need_root()
    tmp = shared_dir("router-client-")
    try:
        yield client_for_others(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
