"""The command table: one registration, no command module importing main, every command
described, and the submit fast path still free of argparse, logging and the heavy modules."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router.cli.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
ROUTER = [sys.executable, "-m", "router"]


def _run(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=True).stdout


@pytest.mark.parametrize("module", sorted({c.module for c in COMMANDS.values()}))
def test_a_command_module_never_imports_main(module):
    out = _run(f"import sys, {module}; print('router.cli.main' in sys.modules)")
    assert out.strip() == "False"


def test_every_command_has_its_adder_handler_and_a_description():
    for name, cmd in COMMANDS.items():
        mod = importlib.import_module(cmd.module)
        assert callable(getattr(mod, f"add_{name}")) and callable(getattr(mod, f"run_{name}"))
        assert cmd.help and len(cmd.description) > len(cmd.help) / 2, name


def test_the_submit_fast_path_imports_neither_argparse_nor_the_heavy_modules():
    code = ("import sys, router.cli.main, router.client.client, router.paths; "
            "print(sorted(sys.modules))")
    mods = set(eval(_run(code)))    # noqa: S307 - our own output
    assert not mods & {"argparse", "logging", "numpy", "yaml", "jax", "router.cli.commands"}


def test_bare_router_prints_the_help_and_version_works():
    r = subprocess.run(ROUTER, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0 and "submit" in r.stdout and "log" in r.stdout
    r = subprocess.run([*ROUTER, "--version"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("router ")


def test_usage_errors_are_one_line_and_routers_own_exit_code():
    r = subprocess.run([*ROUTER, "bogus"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([*ROUTER, "log", "--nope"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1
