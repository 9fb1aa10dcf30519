"""Every message on the daemon's socket: JSON lines, one object per line. Stdlib only.

Requests (client -> daemon), each an object with "op" and an optional integer "tag" that
every reply and event answering it carries. Booleans must be JSON booleans.

  ping                          -> {"ok": true, "pid", "model"}         (model: its version)
  submit  argv [str], cwd str, env {str: str}, detach bool, dry_run bool, quiet bool,
          stdin bool, machine str, time_limit number, after [int]
          (machine: run there, refused unless the policy has that machine; time_limit:
          seconds it may run, then it is killed: timed_out; after: job ids that must all end
          done before this one is queued, else it is recorded cancelled and never runs;
          env may be left out: the connection's last env is used, or none before one;
          stdin: the job's stdin comes in `stdin` requests with this tag, else /dev/null.
          Attached jobs only, and only local machines forward it: others read /dev/null)
          -> events:
             {"event": "queued", "id", "machine", "reason", "p_over", "sd", "template",
              "decision_us"}                      (not for quiet, unless detach)
             {"event": "rerouted", "id", "machine", "reason"}
                                                  (its machine could not take it: fallback)
             {"event": "out", "id", "fd": 1|2, "data": base64}      (not for detach)
             {"event": "exit", "id", "state", "exit", "cost", "machine", "wall_s"}
                                                                    (not for detach)
             {"event": "stdin"}      one `stdin` chunk of this job is written (or dropped)
          or, with dry_run, one {"event": "decision", "machine", "reason", "p_over", "sd",
             "template", "decision_us"} and nothing runs
  jobs    all bool                      -> {"ok": true, "jobs": [JOB, ...]}
                                           (queued and running; all: the recent ones too)
  status  id int                        -> {"ok": true, "job": JOB}
  status  (no id)                       -> {"ok": true, "daemon": {"pid", "model", "queued",
                                           "busy", "counters", "recent_accuracy",
                                           "drifting"}}
  cancel  id int                        -> {"ok": true, "id"}
  follow  id int                        -> "out" events so far and then live, then "exit"
  stdin   data base64, eof bool         -> nothing but the "stdin" event above
          (a chunk, at most STDIN_CHUNK bytes, for the job submitted with this tag and
          stdin; at most STDIN_CREDIT unacknowledged; eof: the last one)

JOB is {"id", "time", "user", "argv", "template", "machine", "state", "p_over", "sd",
"reason", "exit", "cost", "cpu_user_s", "cpu_sys_s", "wall_s", "max_rss_kb", "ended",
"model_version", "remote_id"}. tests/client/test_protocol_doc.py fails when an op, an event
or a field the daemon sends is missing here.

Any failure is {"ok": false, "error": "one line", "tag"}, "tag" 0 when the request had none.
A connection that closes cancels the attached (not detached) jobs it submitted: that is how
Ctrl-C on `router submit` reaches the job.
"""

from __future__ import annotations

import binascii
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; Any is an annotation only
if TYPE_CHECKING:
    from typing import Any

from router.errors import ProtocolError
from router.jsonline import dumps, scan   # dumps: also every command's --json line

MAX_LINE = 1 << 20          # a request larger than this is refused
MAX_ARGV = 4096
MAX_ID = (1 << 63) - 1      # SQLite's largest integer
OPS = ("ping", "submit", "jobs", "status", "cancel", "follow", "stdin")
STDIN_CHUNK = 1 << 16
STDIN_CREDIT = 4


def encode(msg: dict[str, Any]) -> bytes:
    return dumps(msg).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; anything but one JSON object is a ProtocolError."""
    try:
        text = line.strip(b" \t\r\n").decode()
        msg, end = scan(text)
    except StopIteration:
        raise ProtocolError("malformed request: no JSON value") from None
    except (ValueError, RecursionError) as exc:   # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"malformed request: {exc}") from None
    if end != len(text):
        raise ProtocolError(f"malformed request: extra data at column {end + 1}")
    if not isinstance(msg, dict):
        raise ProtocolError("malformed request: expected a JSON object")
    return msg


def _strings(value: Any, what: str, limit: int = MAX_ARGV) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{what} must be a list of strings")
    if len(value) > limit or any("\0" in v for v in value):
        raise ProtocolError(f"{what}: too long or contains NUL")
    return value


def _job_id(msg: dict[str, Any]) -> int:
    value = msg.get("id")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise ProtocolError("id must be a positive integer (a job's id)")
    return value


def _flag(msg: dict[str, Any], key: str) -> bool:
    """A boolean field: true, false or left out; "no" or 0 is refused, not taken as true."""
    value = msg.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{key} must be true or false")
    return value


def check_request(msg: dict[str, Any]) -> dict[str, Any]:
    """The request with its fields checked and defaulted; ProtocolError says what is wrong."""
    op = msg.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r} (known: {', '.join(OPS)})")
    out: dict[str, Any] = {"op": op}
    tag = msg.get("tag", 0)
    if not isinstance(tag, int) or isinstance(tag, bool):
        raise ProtocolError("tag must be an integer")
    out["tag"] = tag
    if op == "submit":
        argv = _strings(msg.get("argv"), "argv")
        if not argv or not argv[0]:
            raise ProtocolError("argv must name a program")
        cwd = msg.get("cwd", "/")
        env = msg.get("env")
        if not isinstance(cwd, str) or "\0" in cwd or not cwd.startswith("/"):
            raise ProtocolError("cwd must be an absolute path")
        if env is not None and (not isinstance(env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and "\0" not in k + v and "=" not in k
                for k, v in env.items())):
            raise ProtocolError("env must map strings to strings")
        detach = _flag(msg, "detach")
        # quiet or not, a detached job's caller gets its id from "queued"
        out.update(argv=argv, cwd=cwd, env=env, detach=detach, dry_run=_flag(msg, "dry_run"),
                   quiet=_flag(msg, "quiet") and not detach,
                   stdin=_flag(msg, "stdin") and not detach, **_placement(msg))
    elif op == "stdin":
        out.update(data=_stdin_data(msg.get("data")), eof=_flag(msg, "eof"))
    elif op == "status" and msg.get("id") is None:
        out["id"] = None                     # the daemon's own status
    elif op in ("status", "cancel", "follow"):
        out["id"] = _job_id(msg)
    elif op == "jobs":
        out["all"] = _flag(msg, "all")
    return out


def _placement(msg: dict[str, Any]) -> dict[str, Any]:
    """A submit's optional machine, time limit and dependencies."""
    machine = msg.get("machine")
    if machine is not None and (not isinstance(machine, str) or not machine or "\0" in machine):
        raise ProtocolError("machine must be a machine's name")
    limit = msg.get("time_limit")
    if limit is not None and (not isinstance(limit, (int, float)) or isinstance(limit, bool)
                              or not 0 < limit < 1e9):
        raise ProtocolError("time_limit must be a positive number of seconds")
    after = msg.get("after") or []
    if not isinstance(after, list) or len(after) > 1000 or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in after):
        raise ProtocolError("after must be a list of job ids")
    return {"machine": machine, "time_limit": limit, "after": after}


def _stdin_data(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError("data must be base64 text")
    try:
        data = binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error:
        raise ProtocolError("data must be base64 text") from None
    if len(data) > STDIN_CHUNK:
        raise ProtocolError(f"stdin: a chunk is at most {STDIN_CHUNK} bytes")
    return data


def stdin_request(tag: int, data: bytes) -> dict[str, Any]:
    """A chunk of a job's stdin; an empty one is its end."""
    return {"op": "stdin", "tag": tag, "data": binascii.b2a_base64(data, newline=False).decode(),
            "eof": not data}


def out_event(tag: int, job_id: int, fd: int, data: bytes) -> dict[str, Any]:
    return {"event": "out", "tag": tag, "id": job_id, "fd": fd,
            "data": binascii.b2a_base64(data, newline=False).decode()}


def out_data(event: dict[str, Any]) -> bytes:
    return binascii.a2b_base64(event["data"])


def error(message: str, tag: int = 0) -> dict[str, Any]:
    return {"ok": False, "error": message, "tag": tag}
