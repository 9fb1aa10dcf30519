"""docs/cli.md is the CLI's --help, and names every command."""

from __future__ import annotations


import docs  # noqa: E402

from router.cli.commands import COMMANDS  # noqa: E402


def test_cli_reference_matches_help():
    assert not docs.stale(), "docs are stale: run `make docs`"


def test_every_command_is_in_docs_cli_md():
    text = docs.CLI.read_text()
    assert all(f"### router {name}\n" in text for name in COMMANDS)
    assert "For Slurm, pueue and GNU parallel users" in text
