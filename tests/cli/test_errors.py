"""Bad input on the command line: one line that says what to do and a non-zero exit, never a
traceback; argparse's own usage errors exit 2."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROUTER


def router(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROUTER, *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, says", [
    (["submit"], "router submit: submit: give a command after --"),
    (["predict", "--"], "router predict: predict: give a command after --"),
    (["train", "--data", "/no/such"], "router train: cannot read /no/such"),
    (["predict", "--model", "/no/such.rmod", "--", "/bin/true"],
     "router predict: no model at /no/such.rmod: run `router train` first"),
    (["report", "--policy", "/no/such.yaml"], "router report: cannot read policy /no/such.yaml"),
])
def test_a_library_error_is_one_line_and_a_non_zero_exit(env, args, says):
    r = router(env, *args)
    assert r.returncode != 0 and r.stderr.startswith(says), r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, says", [
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["status", "abc"], "invalid int value: 'abc'"),
    (["cancel"], "the following arguments are required: id"),
])
def test_a_usage_error_ends_with_argparse_s_line_and_exit_2(env, args, says):
    r = router(env, *args)
    assert r.returncode == 2 and says in r.stderr.splitlines()[-1], r.stderr
    assert "Traceback" not in r.stderr

