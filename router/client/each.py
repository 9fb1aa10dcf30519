"""`router submit --each`: one job per input line over one connection, as xargs -L1 and GNU
parallel do it. Stdlib only.

A thread sends the requests while this one reads the events, so a thousand short jobs need
one connection and one environment. Exit codes are xargs': 123 if any job exited 1-125, 124
if one exited 255, 125 if one was killed by a signal (or router refused a line), 126 not
executable, 127 not found. --joblog writes GNU parallel's format, and --resume-failed reads
it back; --retries resubmits a failed line; --halt stops after N failures.
"""

from __future__ import annotations

import sys
import time
from _thread import allocate_lock, start_new_thread
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, IO

from router.client import protocol
from router.client.client import (WholeLines, _decision_line, connect, exit_code,
                                  submit_request)
from router.errors import ProtocolError, RouterError, UsageError

XARGS_FAILED = 123
JOBLOG_HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


class Halt:
    """--halt now|soon,fail=N: after N failures, `now` cancels the jobs still running (by
    leaving: the daemon cancels an attached job whose connection closes), `soon` submits no
    more lines and cancels those still queued, and lets the running ones end."""

    def __init__(self, when: str | None = None, fails: int = 0):
        self.when, self.fails = when, fails

    @classmethod
    def parse(cls, text: str | None) -> Halt:
        if not text or text == "never":
            return cls()
        when, _, rule = text.partition(",")
        kind, _, count = rule.partition("=")
        if when not in ("now", "soon") or kind != "fail" or not count.isdigit() \
                or int(count) < 1:
            raise UsageError(f"--halt {text!r}: expected now,fail=N or soon,fail=N")
        return cls(when, int(count))


class EachOptions:
    """What `router submit --each` was asked for, beside the command and its input lines."""

    def __init__(self, *, detach: bool = False, dry_run: bool = False, as_json: bool = False,
                 machine: str | None = None, bar: bool = False, joblog: str | None = None,
                 resume_failed: bool = False, retries: int = 0, halt: Halt | None = None,
                 limit: float | None = None):
        self.detach, self.dry_run, self.as_json, self.machine = detach, dry_run, as_json, machine
        self.bar, self.joblog, self.resume_failed = bar, joblog, resume_failed
        self.retries, self.halt, self.limit = retries, halt or Halt(), limit


def succeeded_lines(joblog: str) -> set[int]:
    """Input line numbers whose last entry in a GNU parallel joblog exited 0 unsignalled."""
    last: dict[int, bool] = {}
    try:
        with open(joblog) as f:
            for row in f:
                cells = row.rstrip("\n").split("\t")
                if len(cells) >= 8 and cells[0].isdigit():
                    last[int(cells[0])] = cells[6] == "0" and cells[7] == "0"
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise UsageError(f"--joblog {joblog}: {exc.strerror}") from None
    return {seq for seq, ok in last.items() if ok}


class _Joblog:
    def __init__(self, path: str, append: bool):
        try:
            self.file: IO[str] = open(path, "a" if append else "w")
        except OSError as exc:
            raise UsageError(f"--joblog {path}: {exc.strerror}") from None
        if self.file.tell() == 0:
            self.file.write(JOBLOG_HEADER)

    def write(self, seq: int, ev: dict[str, Any], received: int, argv: list[str]) -> None:
        import shlex
        wall = ev.get("wall_s") or 0.0
        value = ev.get("exit")
        code, sig = (0, -value) if value is not None and value < 0 else (value or 0, 0)
        if value is None:
            code = exit_code(None)
        self.file.write(f"{seq}\t{ev.get('machine') or ':'}\t{time.time() - wall:.3f}\t"
                        f"{wall:.3f}\t0\t{received}\t{code}\t{sig}\t{shlex.join(argv)}\n")
        self.file.flush()


class _Bar:
    """done/total, percent and ETA on stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.drawn = 0.0

    def draw(self, done: int, total: int | None, failed: int, last: bool = False) -> None:
        now = time.monotonic()
        if not last and now - self.drawn < 0.1:
            return
        self.drawn = now
        if total:
            share = done / total
            eta = (now - self.started) / done * (total - done) if done else 0.0
            filled = int(share * 30)
            text = (f"\r[{'#' * filled}{' ' * (30 - filled)}] {done}/{total} {share:4.0%} "
                    f"ETA {int(eta) // 60}:{int(eta) % 60:02d} ({failed} failed)")
        else:
            text = f"\r{done} done, {failed} failed"
        sys.stderr.write(text + ("\n" if last else ""))
        sys.stderr.flush()


def xargs_code(value: int | None) -> int:
    """What xargs returns for one failed command (the largest wins across jobs)."""
    if value is None or value < 0:
        return 125 if value is not None else XARGS_FAILED
    return {255: 124, 126: 126, 127: 127}.get(value, XARGS_FAILED)


class _Each:
    """One --each run: the sending thread, the event loop, and the bookkeeping of both."""

    def __init__(self, socks: list[str], cmd: list[str], opts: EachOptions):
        self.socks, self.cmd, self.opts = socks, cmd, opts
        self.skip = succeeded_lines(opts.joblog) if opts.resume_failed and opts.joblog else set()
        self.joblog = _Joblog(opts.joblog, opts.resume_failed) if opts.joblog else None
        self.bar = _Bar() if opts.bar else None
        self.conn = connect(socks)
        self.lock = allocate_lock()
        self.argv: dict[int, list[str]] = {}      # line -> argv, until its job is settled
        self.tries: dict[int, int] = {}
        self.ids: dict[int, int] = {}
        self.received: dict[int, int] = {}
        self.cancelled: set[int] = set()
        self.total: int | None = None
        self.error: str | None = None
        self.stopping = self.leave = False
        self.done = self.failed = self.code = 0
        self.out = WholeLines()

    def send(self, msg: dict[str, Any]) -> None:
        with self.lock:
            self.conn.send(msg)

    def request(self, tag: int, first: bool) -> dict[str, Any]:
        o = self.opts
        return submit_request(self.argv[tag], tag, detach=o.detach, dry_run=o.dry_run,
                              env=first, quiet=not (o.halt.when or o.as_json),
                              machine=o.machine, limit=o.limit)

    def feed(self, lines: Iterable[str]) -> None:
        import shlex
        count = lineno = 0
        line = ""
        try:
            for lineno, line in enumerate(lines, 1):
                if self.stopping:
                    break
                if not line.strip() or lineno in self.skip:
                    continue
                with self.lock:
                    self.argv[lineno], self.tries[lineno] = self.cmd + shlex.split(line), 1
                self.send(self.request(lineno, count == 0))
                count += 1
        except ValueError as exc:
            with self.lock:
                self.argv.pop(lineno, None)
            self.error = f"stdin line {lineno}: cannot parse {line.strip()!r}: {exc}"
        except OSError as exc:
            self.error = str(exc)
        finally:
            self.total = count
            try:
                self.send({"op": "ping", "tag": -1})   # marks the end of the requests
            except OSError:
                pass

    def print(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def on_event(self, ev: dict[str, Any]) -> None:
        kind, tag, o = ev.get("event"), ev.get("tag", 0), self.opts
        if ev.get("ok") is False:
            sys.stderr.write(f"router submit: line {tag}: {ev['error']}\n")
            self.code = max(self.code, RouterError.exit_code)
            self.settle(tag, None)
        elif kind == "out":
            data = protocol.out_data(ev)
            self.received[tag] = self.received.get(tag, 0) + len(data)
            self.out.write(ev["id"], 2 if o.as_json else ev["fd"], data)
        elif kind in ("queued", "decision", "exit", "rerouted"):
            if o.as_json:
                self.print(protocol.dumps(ev))
            if kind == "queued":
                self.ids[tag] = ev["id"]
                if o.detach:
                    if not o.as_json:
                        self.print(str(ev["id"]))
                    self.settle(tag, ev)
            elif kind == "decision":
                if not o.as_json:
                    self.print(_decision_line(ev))
                self.settle(tag, ev)
            elif kind == "exit":
                self.out.end(ev["id"])
                self.on_exit(tag, ev)

    def on_exit(self, tag: int, ev: dict[str, Any]) -> None:
        value = ev.get("exit")
        if value == 0 or ev.get("id") in self.cancelled:
            self.settle(tag, ev)
            return
        if self.tries.get(tag, 1) <= self.opts.retries and not self.stopping:
            self.tries[tag] += 1
            self.send(self.request(tag, False))
            return
        self.failed += 1
        self.code = max(self.code, xargs_code(value))
        self.settle(tag, ev)
        halt = self.opts.halt
        if halt.when and self.failed >= halt.fails and not self.stopping:
            self.halt(halt.when)

    def settle(self, tag: int, ev: dict[str, Any] | None) -> None:
        with self.lock:
            argv = self.argv.pop(tag, None)
        if argv is None:
            return
        self.done += 1
        if self.joblog is not None and ev is not None and ev.get("event") == "exit":
            self.joblog.write(tag, ev, self.received.pop(tag, 0), argv)
        if self.bar is not None:
            self.bar.draw(self.done, self.total, self.failed)

    def halt(self, when: str) -> None:
        """Stop submitting; `now` leaves (the daemon cancels attached jobs whose connection
        closes), `soon` cancels our jobs still queued."""
        from router.client.client import call
        self.stopping = True
        sys.stderr.write(f"router submit: --halt {when}: {self.failed} failed, stopping\n")
        if when == "now":
            self.leave = True
            return
        ours = set(self.ids.values())
        for job in call(self.socks, {"op": "jobs"})["jobs"]:
            if job["id"] in ours and job["state"] == "queued":
                self.cancelled.add(job["id"])
                try:
                    call(self.socks, {"op": "cancel", "id": job["id"]})
                except ProtocolError:
                    pass       # it started meanwhile: it ends as it will

    def run(self, lines: Iterable[str]) -> int:
        start_new_thread(self.feed, (lines,))
        ended = False
        try:
            for ev in self.conn.events():
                if ev.get("tag") == -1 and "event" not in ev:
                    ended = True
                else:
                    self.on_event(ev)
                if self.leave or (ended and not self.argv):
                    break
        finally:
            self.conn.close()
            if self.bar is not None:
                self.bar.draw(self.done, self.total, self.failed, last=True)
        if self.error:
            raise RouterError(self.error)
        if self.argv and not self.leave:
            raise ProtocolError(f"daemon closed the connection with {len(self.argv)} jobs "
                                f"unfinished")
        return self.code


def submit_each(socks: list[str], cmd: list[str], lines: Iterable[str],
                opts: EachOptions | None = None) -> int:
    """One job per input line over one connection, like `xargs -L1`; xargs' exit codes."""
    if opts is not None and opts.resume_failed and not opts.joblog:
        raise UsageError("--resume-failed needs --joblog FILE")
    return _Each(socks, cmd, opts or EachOptions()).run(lines)
