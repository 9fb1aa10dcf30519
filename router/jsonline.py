"""JSON lines written and read without importing json: its regular expressions and enum cost
every `router submit` ~15 ms of start-up, and these are the C halves json.dumps and json.loads
call. The socket's protocol and the spawner's pipe both frame their messages with them."""

from __future__ import annotations

import _json
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _not_json(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class _Defaults:
    """The settings json.loads uses by default."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float      # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_Defaults)
_encode = _json.make_encoder(None, _not_json, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)


def dumps(obj: Any) -> str:
    """json.dumps(obj, separators=(",", ":")), without importing json."""
    return "".join(_encode(obj, 0))


def scan(text: str) -> tuple[Any, int]:
    """The JSON value at the start of text and where it ends; StopIteration when there is
    none, ValueError when it is malformed."""
    return _scan(text, 0)
