"""The thin client: `router submit`, `jobs`, `status`, `follow`, `cancel`. Stdlib only.

A submit costs a Python start and one socket round trip. Conventions follow srun and sbatch:
an attached job's output streams back and its exit code becomes ours (128+N for signal N);
`--detach` prints the id and returns; `--parsable` prints only the id. With no daemon, the job
is decided in-process with the same policy, model and history and runs here (said once on
stderr), unless `--no-fallback`.
"""

from __future__ import annotations

import os
import sys
from _socket import AF_UNIX, SO_PEERCRED, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET
from _socket import socket as unix_socket
from stat import S_ISCHR
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

from router.client import protocol
from router.errors import DaemonUnavailable, ProtocolError, RouterError

XARGS_FAILED = 123   # like xargs: some of the --each jobs failed


def exit_code(exit_value: int | None) -> int:
    if exit_value is None:
        return 1
    return 128 - exit_value if exit_value < 0 else exit_value


class Connection:
    """JSON lines over the daemon's unix socket. The C socket type, not the socket module:
    that module's enums cost the submit path ~15 ms to import."""

    def __init__(self, path: str):
        self.path = path
        self.sock = unix_socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            self.sock.close()
            raise DaemonUnavailable(f"no daemon at {path} ({exc.strerror})") from None
        except PermissionError:
            self.sock.close()
            raise RouterError(f"not allowed to use {path}: ask to be put in its group") from None
        self._check_peer()

    def _check_peer(self) -> None:
        """Nothing is sent (argv, the whole environment) to a listener that is neither root
        nor ourselves: whoever made the socket's name first would get it."""
        cred = self.sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12)
        uid = int.from_bytes(cred[4:8], sys.byteorder)
        if uid not in (0, os.getuid()):
            self.sock.close()
            raise RouterError(f"{self.path} is served by uid {uid}, neither root nor you: "
                              f"refusing to send it anything")

    def send(self, msg: dict[str, Any]) -> None:
        """One sendall per message: whole lines even when --each sends from another thread."""
        self.sock.sendall(protocol.encode(msg))

    def events(self) -> Iterator[dict[str, Any]]:
        buf = b""
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                yield protocol.decode(line)

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        """One request, one reply."""
        self.send(msg)
        for reply in self.events():
            if reply.get("ok") is False:
                raise ProtocolError(reply["error"])
            return reply
        raise ProtocolError("daemon closed the connection")

    def close(self) -> None:
        self.sock.close()


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class WholeLines:
    """Output of jobs that run at once, written line by line (like `parallel --line-buffer`):
    a line that one job writes in pieces is not cut by another job's. A piece with no
    newline waits for the rest, up to LIMIT bytes, or for its job's end."""

    LIMIT = 1 << 16

    def __init__(self) -> None:
        self.partial: dict[tuple[int, int], bytes] = {}

    def write(self, job_id: int, fd: int, data: bytes) -> None:
        data = self.partial.pop((job_id, fd), b"") + data
        cut = data.rfind(b"\n") + 1 or (len(data) if len(data) >= self.LIMIT else 0)
        if cut:
            _write(fd, data[:cut])
        if cut < len(data):
            self.partial[(job_id, fd)] = data[cut:]

    def end(self, job_id: int) -> None:
        for fd in (1, 2):
            rest = self.partial.pop((job_id, fd), b"")
            if rest:
                _write(fd, rest)


def submit_request(argv: list[str], tag: int = 0, *, detach: bool = False,
                   dry_run: bool = False, env: bool = True, quiet: bool = False,
                   stdin: bool = False) -> dict[str, Any]:
    """A job runs in our cwd with our environment; env=False reuses the one sent before on
    this connection (--each sends it once). quiet: no "queued" event, for a caller that
    would drop it (one message and one wake-up less per job at a thousand jobs a second).
    stdin: ours follows in `stdin` requests."""
    req = {"op": "submit", "tag": tag, "argv": argv, "cwd": os.getcwd(), "detach": detach,
           "dry_run": dry_run, "quiet": quiet}
    if stdin:
        req["stdin"] = True
    if env:
        req["env"] = dict(os.environ)
    return req


def _decision_line(ev: dict[str, Any]) -> str:
    p = "-" if ev.get("p_over") is None else f"{ev['p_over']:.3f}"
    return f"{ev['machine']}\t{p}\t{ev['reason']}"


def _stdin_to_forward() -> bool:
    """Whether our stdin holds data for the job, as srun forwards it: a pipe or a file, not
    /dev/null or a terminal (whose keystrokes a job behind a daemon could not be sent
    faithfully). Without it the job reads /dev/null and the submit costs nothing more."""
    try:
        st = os.fstat(0)
    except OSError:
        return False
    if S_ISCHR(st.st_mode):
        return False
    return True


def _forward_stdin(conn: Connection, credit: Any) -> None:
    """Our stdin to the daemon, chunk by chunk, never more than the credit ahead."""
    try:
        while True:
            credit.acquire()
            try:
                data = os.read(0, protocol.STDIN_CHUNK)
            except OSError:
                data = b""
            conn.send(protocol.stdin_request(0, data))
            if not data:
                return
    except OSError:          # the job ended and the connection closed under us
        return


def submit(sock_path: str, argv: list[str], *, detach: bool = False, dry_run: bool = False,
           as_json: bool = False, parsable: bool = False) -> int:
    """One job: stream its output (or print its id / decision); return its exit code.
    An attached job reads our stdin when it is a pipe or a file."""
    conn = Connection(sock_path)
    forward = not detach and not dry_run and _stdin_to_forward()
    try:
        conn.send(submit_request(argv, detach=detach, dry_run=dry_run, quiet=not parsable,
                                 stdin=forward))
        if forward:
            import threading
            credit = threading.Semaphore(protocol.STDIN_CREDIT)
            threading.Thread(target=_forward_stdin, args=(conn, credit), daemon=True).start()
        for ev in conn.events():
            if ev.get("ok") is False:
                raise ProtocolError(ev["error"])
            kind = ev.get("event")
            if kind == "decision":
                print(protocol.dumps(ev) if as_json else _decision_line(ev))
                return 0
            if kind == "queued" and (detach or parsable):
                if parsable or not as_json:
                    print(ev["id"] if parsable else f"Submitted job {ev['id']} to {ev['machine']}"
                          f" ({ev['reason']})")
                else:
                    print(protocol.dumps(ev))
                if detach:
                    return 0
            elif kind == "out":
                _write(ev["fd"], protocol.out_data(ev))
            elif kind == "stdin":
                credit.release()
            elif kind == "exit":
                if as_json:
                    print(protocol.dumps(ev), file=sys.stderr)
                return exit_code(ev["exit"])
        raise ProtocolError("daemon closed the connection before the job ended")
    finally:
        conn.close()


def submit_each(sock_path: str, cmd: list[str], lines: Iterable[str], *,
                detach: bool = False, as_json: bool = False) -> int:
    """One job per input line over one connection, like `xargs -L1` (exit 123 if any failed)."""
    import shlex
    import threading

    conn = Connection(sock_path)
    sent = {"count": 0, "done": False, "error": None}

    def feed() -> None:
        try:
            for lineno, line in enumerate(lines, 1):
                if line.strip():
                    conn.send(submit_request(cmd + shlex.split(line), lineno, detach=detach,
                                             env=sent["count"] == 0, quiet=True))
                    sent["count"] += 1
        except ValueError as exc:
            sent["error"] = f"stdin line {lineno}: cannot parse {line.strip()!r}: {exc}"
        except OSError as exc:
            sent["error"] = str(exc)
        finally:
            sent["done"] = True
            conn.send({"op": "ping", "tag": -1})   # marks the end of the requests

    threading.Thread(target=feed, daemon=True).start()
    finished, failed, ended = 0, 0, False
    out = WholeLines()
    try:
        for ev in conn.events():
            kind = ev.get("event")
            if ev.get("tag") == -1:
                ended = True
            elif ev.get("ok") is False:
                print(f"router submit: line {ev.get('tag')}: {ev['error']}", file=sys.stderr)
                finished, failed = finished + 1, failed + 1
            elif kind == "out":
                out.write(ev["id"], ev["fd"], protocol.out_data(ev))
            elif kind == "exit" or (kind == "queued" and detach):
                out.end(ev["id"])
                finished += 1
                failed += kind == "exit" and ev["exit"] != 0
                if as_json or (detach and kind == "queued"):
                    print(protocol.dumps(ev) if as_json else ev["id"], flush=True)
            if ended and finished >= sent["count"]:
                break
    finally:
        conn.close()
    if sent["error"]:
        raise RouterError(sent["error"])
    return XARGS_FAILED if failed else 0


FAST_FLAGS = {"--detach": "detach", "--parsable": "parsable", "--dry-run": "dry_run",
              "--json": "as_json", "--no-fallback": None}


def fast_submit(argv: list[str]) -> int | None:
    """`router submit` without argparse (its import and parser cost ~20 ms of a submit).
    Returns None for anything but the plain flags, and when no daemon answers: the full
    parser then handles help, errors and the in-process fallback."""
    opts: dict[str, Any] = {}
    sock = None
    i = 0
    while i < len(argv) and argv[i] != "--":
        arg = argv[i]
        if arg in FAST_FLAGS:
            if FAST_FLAGS[arg]:
                opts[FAST_FLAGS[arg]] = True
        elif arg == "--socket" and i + 1 < len(argv):
            sock, i = argv[i + 1], i + 1
        else:
            return None
        i += 1
    cmd = argv[i + 1:]
    if not cmd:
        return None
    if sock is None:
        from router import paths
        sock = paths.socket()
    try:
        return submit(sock, cmd, **opts)
    except DaemonUnavailable:
        return None
    except RouterError as exc:
        print(f"router submit: {exc}", file=sys.stderr)
        return exc.exit_code


def call(sock_path: str, msg: dict[str, Any]) -> dict[str, Any]:
    conn = Connection(sock_path)
    try:
        return conn.call(msg)
    finally:
        conn.close()


def follow(sock_path: str, job_id: int) -> int:
    """A job's output so far, then live until it ends, like `tail -f`; its exit code."""
    conn = Connection(sock_path)
    try:
        conn.send({"op": "follow", "id": job_id})
        for ev in conn.events():
            if ev.get("ok") is False:
                raise ProtocolError(ev["error"])
            if ev.get("event") == "out":
                _write(ev["fd"], protocol.out_data(ev))
            elif ev.get("event") == "exit":
                return exit_code(ev["exit"])
        return 1
    finally:
        conn.close()


def run_here(argv: list[str], policy_path: str, store_path: str, model_path: str) -> int:
    """No daemon: decide in-process with the same policy, model and history, run here, and
    price the run like any other: on the policy's machine that is this host, uncapped."""
    import getpass
    import logging
    import time

    from router.exec import measure
    from router.learn import modelfile
    from router.policy import load_policy, route
    from router.store import Store

    policy = load_policy(policy_path)
    model = modelfile.load(model_path) if os.path.exists(model_path) else None
    decision = route(argv, model, policy)
    here = _this_host(policy)
    print(f"router: no daemon reachable: running here (policy would pick "
          f"{decision['machine']}: {decision['reason']})", file=sys.stderr)
    if here is None:
        logging.getLogger(__name__).warning("no local machine in %s: this run is priced at "
                                            "the reference speed", policy_path)
    try:
        usage = measure.run(argv, stdout=None, inherit_stderr=True)
    except FileNotFoundError:
        raise RouterError(f"{argv[0]}: no such program") from None
    with Store(store_path) as store:
        store.add_run({"time": time.time(), "user": getpass.getuser(), "argv": argv,
                       "template": decision["template"], "features": decision["features"],
                       "machine": here.name if here else "local", "source": "job",
                       "cost": usage.cost(here.speed if here else 1.0),
                       "p_over": decision["p_over"], "sd": decision["sd"],
                       "reason": "no daemon: ran here", "threshold": decision["threshold"],
                       "model_version": decision["model_version"], "cwd": os.getcwd(),
                       "uid": os.getuid(), **usage.to_dict()})
    return exit_code(usage.exit)


def _this_host(policy: Any) -> Any:
    """The policy's machine that runs jobs on this host: a local one, uncapped if any is."""
    local = [m for m in policy.machines.values() if m.backend == "local"]
    uncapped = [m for m in local if not (m.options or {}).get("cpu_quota")]
    return (uncapped or local or [None])[0]
