"""Unprivileged users made for a test, and a router client they can run wherever the clone is.

A clone made by root in a private directory (`mktemp -d`, /root) is unreadable to other
users: neither its .venv nor its package can be reached by them. The client path is
stdlib-only, so they run a world-readable copy of the package under test with a system
Python they can execute; both are checked once, as `nobody`, before any test relies on them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("routert1", "routert2")


def setpriv(user: pwd.struct_passwd) -> list[str]:
    """The prefix that runs a command as `user`, with its own groups only."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]


def make_users(names: tuple[str, ...] = NAMES) -> list[pwd.struct_passwd]:
    """Fresh users without a home; any left over from an interrupted run are replaced."""
    for name in names:
        subprocess.run(["userdel", "-r", name], capture_output=True)
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    return [pwd.getpwnam(n) for n in names]


def remove_users(names: tuple[str, ...] = NAMES) -> None:
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)


@dataclass(frozen=True)
class Client:
    """How another user runs `python -m router` from the tree under test."""

    python: str
    path: Path

    def argv(self, user: pwd.struct_passwd, *args: str) -> list[str]:
        return [*setpriv(user), self.python, *args]

    def env(self, base: dict[str, str], **extra: str) -> dict[str, str]:
        return dict(base, PYTHONPATH=str(self.path), PYTHONDONTWRITEBYTECODE="1", **extra)


def _candidates() -> list[str]:
    found = [os.path.realpath(sys.executable), getattr(sys, "_base_executable", ""),
             "/usr/bin/python3", shutil.which("python3") or ""]
    return list(dict.fromkeys(p for p in found if p))


def client_for_others(into: Path) -> Client:
    """Copy router/ into `into` (made world-readable) and pick a Python `nobody` can run it with.

    Raises AssertionError naming every interpreter tried when none works.
    """
    shutil.copytree(ROOT / "router", into / "router",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [into, *into.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    nobody = pwd.getpwnam("nobody")
    probe = "import sys; assert sys.version_info >= (3, 11); import router.client.client"
    tried = []
    for python in _candidates():
        r = subprocess.run([*setpriv(nobody), python, "-c", probe], capture_output=True,
                           text=True, cwd="/", timeout=60,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(into)})
        if r.returncode == 0:
            return Client(python, into)
        tried.append(f"{python}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    raise AssertionError("no Python that other users can run router with: " + "; ".join(tried))


def shared_dir(prefix: str, mode: int = 0o755) -> Path:
    """A temp directory other users can reach (mkdtemp makes it 0700; pytest's tmp_path is
    under a 0700 directory too)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(tmp, mode)
    return tmp
