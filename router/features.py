"""Command templates and features: the one place that decides a program's identity.

Collectors, training, prediction and the daemon all call `shape()`, so a run measured by a
sweep and a job submitted later land on the same template with features in the same order.
"""

from __future__ import annotations

import os
import re
import shlex
from collections import namedtuple

NUM = "{num}"
FILE = "{file}"
DATE = "{date}"
HEX = "{hex}"
UUID = "{uuid}"

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")
_SHORT_OPT_RE = re.compile(rf"^(-[A-Za-z]+)({_NUMBER})$")
_LONG_OPT_RE = re.compile(r"^(--?[A-Za-z][\w.-]*=)(.+)$")
# Values that name a run rather than size it: each would otherwise make a template of its own.
_IDS = (
    (UUID, re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")),
    (DATE, re.compile(r"^\d{4}[-/]\d{2}[-/]\d{2}([T _]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?"
                      r"(Z|[+-]\d{2}(:?\d{2})?)?)?$|^\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?$")),
    (HEX, re.compile(r"^(0[xX][0-9a-fA-F]+|(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])"
                     r"[0-9a-fA-F]{6,})$")),
)


Shape = namedtuple("Shape", ["template", "features"])
Shape.__doc__ = """A command's template (its identity) and its features (what its cost depends
on). A named tuple, not a dataclass: `dataclasses` costs `router collect` ~15 ms to import."""


Reader = tuple  # (uid, gids) of whoever may see the command's files; None: whoever runs this


def _searchable(path: str, reader: Reader) -> bool:
    """Whether reader may reach path: search permission on every directory above it (and
    above its target), by the mode bits. A root daemon stats for its users; a file they
    cannot reach must not show in their job's template as one that exists."""
    uid, gids = reader
    if uid == 0:
        return True
    for p in {os.path.abspath(path), os.path.realpath(path)}:
        d = os.path.dirname(p)
        while True:
            st = os.stat(d)
            bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid in gids else 0o001
            if not st.st_mode & bit:
                return False
            if d == "/":
                break
            d = os.path.dirname(d)
    return True


def _file_size(arg: str, cwd: str | None, reader: Reader | None) -> int | None:
    path = arg if cwd is None or os.path.isabs(arg) else os.path.join(cwd, arg)
    try:
        st = os.stat(path)
        if reader is not None and not _searchable(path, reader):
            return None
    except (OSError, ValueError):
        return None
    return st.st_size if os.path.isfile(path) else None


def _value(text: str, cwd: str | None, reader: Reader | None) -> tuple[str, float | None] | None:
    """The placeholder and feature of a bare value (None for an id or a date: no size), or
    None when it is a plain word."""
    if _NUMBER_RE.match(text):
        number = float(text)
        if number == number and abs(number) != float("inf"):
            return NUM, number
    size = _file_size(text, cwd, reader) if text else None
    if size is not None:
        return FILE, float(size)
    for placeholder, pattern in _IDS:
        if pattern.match(text):
            return placeholder, None
    return None


def _mask(arg: str, cwd: str | None, reader: Reader | None) -> tuple[str, float | None]:
    """The template token of one argument, and its feature if it has one."""
    bare = _value(arg, cwd, reader)
    if bare is not None:
        return bare[0], bare[1]
    for pattern in (_LONG_OPT_RE, _SHORT_OPT_RE):
        m = pattern.match(arg)
        if m:
            inner = _value(m.group(2), cwd, reader)
            if inner is not None:
                return shlex.quote(m.group(1)) + inner[0], inner[1]
    return shlex.quote(arg), None


def _program(arg0: str, cwd: str | None) -> str:
    """Paths name programs by location; bare names are looked up on PATH where they run."""
    if "/" not in arg0:
        return arg0
    base = cwd or os.getcwd()
    return os.path.normpath(os.path.join(base, arg0))


def shape(argv: list[str] | tuple[str, ...], cwd: str | None = None,
          reader: Reader | None = None) -> Shape:
    """Template and features of argv, resolving relative paths against cwd (default: here);
    files count only where reader (uid, gids) could reach them."""
    if not argv:
        raise ValueError("empty command")
    tokens = [shlex.quote(_program(argv[0], cwd))]
    values: list[float] = []
    for arg in argv[1:]:
        token, value = _mask(arg, cwd, reader)
        tokens.append(token)
        if value is not None:
            values.append(value)
    return Shape(" ".join(tokens), tuple(values))


def template(argv: list[str] | tuple[str, ...], cwd: str | None = None) -> str:
    """The command's identity: argv with numbers, existing files, dates, hex ids and UUIDs
    masked."""
    return shape(argv, cwd).template


def features(argv: list[str] | tuple[str, ...], cwd: str | None = None) -> list[float]:
    """Numbers in argument order, with each file argument's size in bytes in its place."""
    return list(shape(argv, cwd).features)
