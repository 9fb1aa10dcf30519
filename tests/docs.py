"""Render the CLI's --help into the docs between markers (`make docs`): README.md gets the
top-level help, docs/cli.md every command's. `test_docs.py` and `tests/cli/test_docs_cli.py`
fail when the docs and the CLI drift apart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI = ROOT / "docs" / "cli.md"
BEGIN, END = "<!-- commands:begin -->", "<!-- commands:end -->"


def _parsers() -> tuple[object, dict[str, object]]:
    import os
    os.environ["COLUMNS"] = "100"
    from router.cli.main import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, dict(sub.choices)


def summary() -> str:
    parser, _ = _parsers()
    return f"```\n{parser.format_help()}```\n\nEvery command's `--help`: [docs/cli.md](docs/cli.md)."


def reference() -> str:
    _, commands = _parsers()
    return "\n\n".join(f"### router {name}\n\n```\n{p.format_help()}```"
                       for name, p in commands.items())


def rendered(text: str, body: str | None = None) -> str:
    """text with what lies between the markers replaced (README's summary by default)."""
    new = summary() if body is None else body
    return re.sub(rf"{re.escape(BEGIN)}.*?{re.escape(END)}",
                  lambda m: f"{BEGIN}\n{new}\n{END}", text, flags=re.S)


def stale() -> list[Path]:
    return [path for path, body in ((README, None), (CLI, reference()))
            if rendered(path.read_text(), body) != path.read_text()]


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(rendered(README.read_text()))
        CLI.write_text(rendered(CLI.read_text(), reference()))
    sys.exit(1 if stale() else 0)
