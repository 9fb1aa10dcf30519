"""protocol.py's message table is the documentation of the socket: every op, every event and
every field the daemon sends must be in it. The daemon's messages are found in its source
(dict displays with "event" or "ok"), so a new field fails here until it is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from router.client import protocol
from router.daemon.handlers import PUBLIC

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "router" / "daemon").glob("*.py")),
           ROOT / "router" / "client" / "protocol.py"]
UNIVERSAL = {"event", "ok", "tag"}
DOC = protocol.__doc__ or ""


def _returned_dicts(trees: list[ast.Module]) -> dict[str, ast.Dict]:
    """Functions that return one dict display, by name: what `**f()` spreads."""
    out = {}
    for tree in trees:
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
                        out[fn.name] = node.value
    return out


def _keys(d: ast.Dict, local: dict[str, ast.Dict], funcs: dict[str, ast.Dict]) -> set[str]:
    keys: set[str] = set()
    for k, v in zip(d.keys, d.values):
        if k is None:                                   # **spread
            spread = None
            if isinstance(v, ast.Name):
                spread = local.get(v.id)
            elif isinstance(v, ast.Call):
                f = v.func
                spread = funcs.get(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
            if spread is not None:
                keys |= _keys(spread, local, funcs)
            continue
        if isinstance(k, ast.Constant) and isinstance(k.value, str):
            keys.add(k.value)
        if isinstance(v, ast.Dict):
            keys |= _keys(v, local, funcs)
    return keys


def _messages() -> tuple[dict[str, set[str]], dict[str, set[str]], set[str]]:
    """Events by name, replies by the handler (op) that sends them, and error fields."""
    trees = [ast.parse(p.read_text()) for p in SOURCES]
    funcs = _returned_dicts(trees)
    events: dict[str, set[str]] = {}
    replies: dict[str, set[str]] = {}
    errors: set[str] = set()
    for tree in trees:
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            local = {t.id: n.value for n in ast.walk(fn)
                     if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict)
                     for t in n.targets if isinstance(t, ast.Name)}
            for d in (n for n in ast.walk(fn) if isinstance(n, ast.Dict)):
                fields = dict((k.value, v) for k, v in zip(d.keys, d.values)
                              if isinstance(k, ast.Constant))
                event, ok = fields.get("event"), fields.get("ok")
                if isinstance(event, ast.Constant):
                    events.setdefault(event.value, set()).update(_keys(d, local, funcs))
                elif isinstance(ok, ast.Constant) and ok.value is True:
                    replies.setdefault(fn.name, set()).update(_keys(d, local, funcs))
                elif isinstance(ok, ast.Constant) and ok.value is False:
                    errors |= _keys(d, local, funcs)
    return events, replies, errors


def _op_blocks() -> dict[str, str]:
    """Each op's lines of the table (an op may have several entries, as status does)."""
    blocks: dict[str, str] = {}
    current = None
    for line in DOC.splitlines():
        m = re.match(r"  (\w+)\s", line)
        if m and m.group(1) in protocol.OPS:
            current = m.group(1)
        elif not line.strip() or not line.startswith("   "):
            current = None
        if current:
            blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


def _documented_event(name: str) -> set[str]:
    m = re.search(r'\{"event": "%s"(.*?)\}' % name, DOC, re.S)
    assert m, f'event "{name}" is sent by the daemon but not in protocol.py\'s docstring'
    return set(re.findall(r'"(\w+)"', m.group(1)))


def test_the_scan_sees_the_messages_the_daemon_sends():
    events, replies, errors = _messages()
    assert {"queued", "out", "exit", "rerouted", "decision"} <= set(events)
    assert set(protocol.OPS) - {"follow", "submit", "stdin"} <= set(replies)
    assert "error" in errors and "model" in replies["ping"]


def test_every_op_is_documented():
    blocks = _op_blocks()
    assert set(protocol.OPS) <= set(blocks), set(protocol.OPS) - set(blocks)


def test_every_reply_field_is_documented():
    blocks = _op_blocks()
    events, replies, errors = _messages()
    for fn, fields in replies.items():
        assert fn in protocol.OPS, f"{fn} sends an ok reply but is no op's handler"
        missing = {f for f in fields - UNIVERSAL if f'"{f}"' not in blocks[fn]}
        assert not missing, f"{fn}'s reply fields {sorted(missing)} are not documented"
    assert all(f'"{f}"' in DOC for f in errors)


def test_every_event_and_its_fields_are_documented():
    events, _, _ = _messages()
    for name, fields in events.items():
        missing = fields - UNIVERSAL - _documented_event(name)
        assert not missing, f'event "{name}": fields {sorted(missing)} are not documented'


def test_a_job_row_shows_the_documented_fields():
    m = re.search(r"JOB is \{(.*?)\}", DOC, re.S)
    assert m and set(re.findall(r'"(\w+)"', m.group(1))) == set(PUBLIC)


def test_every_request_field_is_documented():
    tree = ast.parse((ROOT / "router" / "client" / "protocol.py").read_text())
    read = {a.value for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "attr", getattr(n.func, "id", "")) in ("get", "_flag")
            for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    assert read and all(re.search(rf"\b{f}\b", DOC) for f in read), read
