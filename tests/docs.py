"""Render every command's --help into README.md between markers (`make docs`); the test
`test_docs.py` fails when the README and the CLI drift apart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- commands:begin -->", "<!-- commands:end -->"


def reference() -> str:
    import os
    os.environ["COLUMNS"] = "100"
    from router.cli.main import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    parts = [f"```\n{parser.format_help()}```"]
    for name, p in sub.choices.items():
        parts.append(f"### router {name}\n\n```\n{p.format_help()}```")
    return "\n\n".join(parts)


def rendered(text: str) -> str:
    return re.sub(rf"{re.escape(BEGIN)}.*?{re.escape(END)}",
                  lambda m: f"{BEGIN}\n{reference()}\n{END}", text, flags=re.S)


if __name__ == "__main__":
    text = README.read_text()
    new = rendered(text)
    if "--write" in sys.argv:
        README.write_text(new)
    sys.exit(0 if new == text or "--write" in sys.argv else 1)
