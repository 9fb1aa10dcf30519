"""The thin client: `router submit`, `jobs`, `status`, `follow`, `cancel`. Stdlib only.

A submit costs a Python start and one socket round trip. Conventions follow srun and sbatch:
an attached job's output streams back and its exit code becomes ours (128+N for signal N);
`--parsable` prints only the id and returns (`--wait` stays attached); `--detach` says
"Submitted job N". `--json` puts every event on stdout as one line and the job's output on
stderr. The daemon is the first of router.paths.client_sockets() that answers; with none,
the job fails (exit 125) unless `--here` asks to run it on this host.
"""

from __future__ import annotations

import os
import sys
from _socket import AF_UNIX, SO_PEERCRED, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET
from _socket import socket as unix_socket
from stat import S_ISCHR
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from router import duration
from router.client import protocol
from router.errors import DaemonUnavailable, ProtocolError, RouterError, UsageError

EXIT_ROUTER = RouterError.exit_code   # router itself failed: documented in `submit --help`


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


def connect(paths: list[str] | str) -> Connection:
    """The first of paths where a daemon answers; a socket we may not use is an error, not a
    reason to look further (nor to run the job elsewhere)."""
    if isinstance(paths, str):
        paths = [paths]
    missing = []
    for path in paths:
        try:
            return Connection(path)
        except DaemonUnavailable as exc:
            missing.append(str(exc).removeprefix("no daemon at "))
    raise DaemonUnavailable(f"no daemon at {', '.join(missing)}")


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


def time_limit(text: str) -> float:
    """`--time`, in Slurm's spellings, in seconds."""
    try:
        return duration.seconds(text)
    except ValueError as exc:
        raise UsageError(f"--time {text!r}: {exc}") from None


def job_ids(text: str) -> list[int]:
    """--after 12,13 (and Slurm's afterok:12:13)."""
    words = text.removeprefix("afterok:").replace(":", ",").split(",")
    if not all(w.strip().isdigit() and int(w) > 0 for w in words):
        raise UsageError(f"--after {text!r}: expected job ids, e.g. --after 12,13")
    return [int(w) for w in words]


def submit_request(argv: list[str], tag: int = 0, *, detach: bool = False,
                   dry_run: bool = False, env: bool = True, quiet: bool = False,
                   stdin: bool = False, machine: str | None = None,
                   limit: float | None = None, after: list[int] | None = None) -> dict[str, Any]:
    """A job runs in our cwd with our environment; env=False reuses the one sent before on
    this connection (--each sends it once). quiet: no "queued" event, for a caller that
    would drop it (one message and one wake-up less per job at a thousand jobs a second).
    stdin: ours follows in `stdin` requests."""
    req = {"op": "submit", "tag": tag, "argv": argv, "cwd": os.getcwd(), "detach": detach,
           "dry_run": dry_run, "quiet": quiet}
    if stdin:
        req["stdin"] = True
    if machine:
        req["machine"] = machine
    if limit:
        req["time_limit"] = limit
    if after:
        req["after"] = after
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


def _start_forwarding(conn: Connection) -> Any:
    """A thread sends our stdin; the semaphore it waits on is given back per "stdin" event."""
    import threading
    credit = threading.Semaphore(protocol.STDIN_CREDIT)
    threading.Thread(target=_forward_stdin, args=(conn, credit), daemon=True).start()
    return credit


def submit(socks: list[str] | str, argv: list[str], *, detach: bool = False,
           dry_run: bool = False, as_json: bool = False, parsable: bool = False,
           wait: bool = False, machine: str | None = None, limit: str | None = None,
           after: str | None = None) -> int:
    """One job: stream its output (or print its id / decision); return its exit code.
    An attached job reads our stdin when it is a pipe or a file."""
    seconds = time_limit(limit) if limit else None
    deps = job_ids(after) if after else None
    conn = connect(socks)
    leave = (detach or parsable) and not wait      # return once the job has an id
    forward = not leave and not dry_run and _stdin_to_forward()
    try:
        conn.send(submit_request(argv, detach=leave, dry_run=dry_run, machine=machine,
                                 limit=seconds, after=deps, stdin=forward,
                                 quiet=not (detach or parsable or as_json)))
        credit = _start_forwarding(conn) if forward else None
        for ev in conn.events():
            if ev.get("ok") is False:
                raise ProtocolError(ev["error"])
            kind = ev.get("event")
            if kind == "out":
                _write(2 if as_json else ev["fd"], protocol.out_data(ev))
                continue
            if kind == "stdin":
                credit.release()
                continue
            if as_json:
                print(protocol.dumps(ev), flush=True)
            if kind == "decision":
                if not as_json:
                    print(_decision_line(ev))
                return 0
            if kind == "queued":
                if parsable and not as_json:
                    print(ev["id"], flush=True)
                elif detach and not as_json:
                    print(f"Submitted job {ev['id']} to {ev['machine']} ({ev['reason']})",
                          flush=True)
                if leave:
                    return 0
            elif kind == "exit":
                return exit_code(ev["exit"])
        raise ProtocolError("daemon closed the connection before the job ended")
    finally:
        conn.close()


FAST_FLAGS = {"--detach": "detach", "--parsable": "parsable", "--dry-run": "dry_run",
              "--json": "as_json", "--wait": "wait", "--no-fallback": None, "--here": None}
FAST_VALUES = {"--socket": "socket", "-p": "machine", "--machine": "machine", "--time": "limit",
               "-t": "limit", "--after": "after"}


def fast_submit(argv: list[str]) -> int | None:
    """`router submit` without argparse (its import and parser cost ~20 ms of a submit).
    Returns None for anything but the plain flags, and when no daemon answers: the full
    parser then handles help, errors, --each and --here."""
    opts: dict[str, Any] = {}
    i = 0
    while i < len(argv) and argv[i] != "--":
        arg = argv[i]
        if arg in FAST_FLAGS:
            if FAST_FLAGS[arg]:
                opts[FAST_FLAGS[arg]] = True
        elif arg in FAST_VALUES and i + 1 < len(argv):
            opts[FAST_VALUES[arg]], i = argv[i + 1], i + 1
        else:
            return None
        i += 1
    cmd = argv[i + 1:]
    if not cmd:
        return None
    sock = opts.pop("socket", None)
    if sock is None:
        from router import paths
    socks = [sock] if sock else paths.client_sockets()
    try:
        return submit(socks, cmd, **opts)
    except DaemonUnavailable:
        return None
    except RouterError as exc:
        print(f"router submit: {exc}", file=sys.stderr)
        return exc.exit_code



def call(socks: list[str] | str, msg: dict[str, Any]) -> dict[str, Any]:
    conn = connect(socks)
    try:
        return conn.call(msg)
    finally:
        conn.close()


def follow(socks: list[str] | str, job_id: int) -> int:
    """A job's output so far, then live until it ends, like `tail -f`; its exit code."""
    conn = connect(socks)
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
