"""Sweep a program over many inputs, like `xargs -L1`, measuring and recording every run.

One thread waits on the runs' pidfds: as soon as a run exits the next one is spawned, and only
then is the finished one recorded, so recording overlaps the next run instead of adding to it.
Results are written in input order (so `--text` lines up with `seq`), one JSON line per run on
stdout and one row per run in the history, committed as each run finishes: Ctrl-C or a bad line
loses nothing already done.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pwd
import random
import select
import shlex
import signal
import sys
import time
from collections import namedtuple
from contextlib import ExitStack
TYPE_CHECKING = False   # what a sweep imports is a share of `router collect`'s wall time
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import IO, Any

    from router.exec.usage import Usage

from router.exec.measure import finish, scratch_file, start
from router.exec.process import resolve
from router.errors import UsageError
from router.features import shape
from router.store import Store

log = logging.getLogger(__name__)

COMMIT_ROWS = 64   # rows per transaction at most
COMMIT_S = 0.25    # and no row waits longer than this for its commit
QUOTING = "'\"\\"  # a line without these splits on whitespace alone
SHUFFLE_MAX = 10_000_000   # --shuffle holds every input in memory
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepOptions:
    """How to run a sweep; defaults run one at a time so runs do not disturb each other."""

    jobs: int = 1
    repeat: int = 1
    timeout: float | None = None
    shuffle: bool = False
    output_dir: str | None = None
    machine: str = "local"
    speed: float = 1.0
    text: bool = False
    progress: bool = False

    def __init__(self, **options: Any):
        for name, value in options.items():
            if name not in SweepOptions.__annotations__:
                raise TypeError(f"no sweep option {name!r}")
            setattr(self, name, value)


def check_program(cmd: list[str]) -> None:
    """Fail before the sweep, not once per input, when the program cannot run."""
    prog = cmd[0]
    if "/" in prog:
        if not os.path.isfile(prog):
            raise UsageError(f"no such program: {prog}")
        if not os.access(prog, os.X_OK):
            raise UsageError(f"program is not executable: {prog}")
        return
    try:
        resolve(prog, dict(os.environ))
    except FileNotFoundError:
        raise UsageError(f"program not found on PATH: {prog}") from None


def build_argv(cmd: list[str], line: str, lineno: int) -> list[str]:
    """`{}` takes the whole line as one argument; otherwise the line's words are appended."""
    _check_line(line, lineno)
    if "{}" in cmd:
        return [line if a == "{}" else a for a in cmd]
    try:
        if _plain(line):
            return cmd + line.split()     # what shlex.split gives such a line, 10x sooner
        return cmd + shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"stdin line {lineno}: cannot parse {line!r}: {exc}") from None


def _check_line(line: str, lineno: int) -> None:
    """What exec and the history cannot carry is refused by its line, before any run."""
    if "\0" in line:
        raise UsageError(f"stdin line {lineno}: holds a NUL byte, which no argument can carry")
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"stdin line {lineno}: not UTF-8 text") from None


def _plain(line: str) -> bool:
    """Printable ASCII (and tabs) without quotes or backslashes: whitespace alone splits it."""
    return (line.isascii() and not any(c in line for c in QUOTING)
            and line.replace("\t", " ").isprintable())


class SweepRange:
    """`A:B[:STEP]`'s inputs, made one at a time: `--sweep 1:1e9` starts at once and holds
    one input, not a billion."""

    def __init__(self, start: float, step: float, size: int):
        self.start, self.step, self.size = start, step, size
        self.integral = all(v == int(v) for v in (start, step))

    def __iter__(self) -> Iterator[str]:
        start, step, integral = self.start, self.step, self.integral
        for i in range(self.size):
            v = start + i * step
            yield str(int(v)) if integral else f"{v:g}"


def sweep_lines(spec: str) -> SweepRange:
    """`A:B[:STEP]`, inclusive like `seq A STEP B`; a bad spec is refused before any run."""
    try:
        parts = [float(p) for p in spec.split(":")]
        if len(parts) not in (2, 3) or not all(math.isfinite(p) for p in parts):
            raise ValueError
        start, stop = parts[0], parts[1]
        step = parts[2] if len(parts) == 3 else 1.0
        if step <= 0:
            raise ValueError
    except ValueError:
        raise UsageError(f"--sweep {spec!r}: expected A:B or A:B:STEP with STEP > 0") from None
    return SweepRange(start, step, max(int((stop - start) / step + 1e-9) + 1, 0))


_Slot = namedtuple("_Slot", ["index", "line", "argv", "run", "files", "spare_err"])


class Sweep:
    """One sweep of `cmd` over input lines, recording into `store`."""

    def __init__(self, cmd: list[str], store: Store, options: SweepOptions, out: IO[str]):
        check_program(cmd)
        self.cmd = cmd
        self.store = store
        self.opt = options
        self.out = out
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.cwd = os.getcwd()
        self.env = dict(os.environ)
        self.done = 0
        self.failed = 0
        self._started = time.monotonic()
        self._spare: list[IO[bytes]] = []
        self._pending: list[tuple[dict[str, Any], Any]] = []
        self._last_commit = time.monotonic()

    def _start(self, index: int, line: str, argv: list[str]) -> _Slot:
        files = None
        out: IO[bytes] | None = None
        spare = None
        if self.opt.output_dir is not None:
            files = ExitStack()
            os.makedirs(self.opt.output_dir, exist_ok=True)
            base = os.path.join(self.opt.output_dir, str(index))
            out = files.enter_context(open(f"{base}.out", "wb"))
            err = files.enter_context(open(f"{base}.err", "w+b"))
        else:
            err = spare = self._spare.pop() if self._spare else scratch_file()
        kwargs = {"stdout": out} if out is not None else {}
        run = start(argv, timeout=self.opt.timeout, stderr=err, env=self.env, **kwargs)
        return _Slot(index, line, argv, run, files, spare)

    def _record(self, slot: _Slot, usage: Usage) -> None:
        sh = shape(slot.argv, self.cwd)
        record = {
            "time": time.time(), "user": self.user, "argv": slot.argv, "template": sh.template,
            "features": list(sh.features), "machine": self.opt.machine, "source": "collect",
            "cost": usage.cost(self.opt.speed), "cwd": self.cwd,
            **usage.to_dict(),
            "state": "timed_out" if usage.timed_out else "failed" if usage.exit else "done",
        }
        self._pending.append((record, slot.line))
        if len(self._pending) >= COMMIT_ROWS or time.monotonic() - self._last_commit > COMMIT_S:
            self._commit()

    def _commit(self) -> None:
        """Write pending rows as one transaction, then print them: stdout never runs ahead."""
        if not self._pending:
            return
        with self.store.transaction() as db:
            ids = self.store.add_runs_in(db, [record for record, _ in self._pending])
        for (record, _), run_id in zip(self._pending, ids):
            record["id"] = run_id
        for record, line in self._pending:
            self._emit(record, line)
        self.out.flush()
        self._pending.clear()
        self._last_commit = time.monotonic()

    def _emit(self, record: dict[str, Any], line: str) -> None:
        if self.opt.text:
            mark = "" if record["state"] == "done" else f" {record['state']} exit {record['exit']}"
            self.out.write(f"{line} {record['cost']:.6f}{mark}\n")
        else:
            self.out.write(json.dumps({**record, "input": line}) + "\n")
        self.done += 1
        self.failed += record["exit"] != 0
        if self.opt.progress:
            rate = self.done / max(time.monotonic() - self._started, 1e-9)
            sys.stderr.write(f"\r{self.done} runs, {self.failed} failed, {rate:.1f}/s ")
            sys.stderr.flush()

    def _inputs(self, lines: Iterable[str]) -> Iterator[tuple[int, str, list[str]]]:
        numbered = ((n, l.rstrip("\n")) for n, l in enumerate(lines, 1))
        numbered = ((n, l) for n, l in numbered if l.strip())
        if self.opt.shuffle:
            if getattr(lines, "size", 0) > SHUFFLE_MAX:
                raise UsageError(f"--shuffle holds every input in memory: at most "
                                 f"{SHUFFLE_MAX:,} inputs, this sweep has {lines.size:,}")
            items = list(numbered)
            random.shuffle(items)
            numbered = iter(items)
        for lineno, line in numbered:
            argv = build_argv(self.cmd, line, lineno)
            for _ in range(self.opt.repeat):
                yield lineno, line, argv

    def _stop(self, signum: int, frame: Any) -> None:
        """Ctrl-C or SIGTERM: raise only where nothing is half done (waiting on runs or
        stdin), otherwise note it: the loop stops at its next turn and records what ended."""
        self.stopped_by = signum
        if self._may_raise:
            raise KeyboardInterrupt

    def _wait(self, fds: list[int], wait: float | None) -> list[int]:
        self._may_raise = True
        try:
            if self.stopped_by:
                raise KeyboardInterrupt
            return select.select(fds, [], [], wait)[0]
        finally:
            self._may_raise = False

    def _reap(self, running: dict[int, _Slot], wait_max: float | None = None
              ) -> list[tuple[_Slot, Usage]]:
        """Wait until at least one run ends or times out, and reap those."""
        now = time.monotonic()
        deadlines = [s.run.deadline for s in running.values() if s.run.deadline is not None]
        deadlines += [now + wait_max] if wait_max is not None else []
        wait = max(0.0, min(deadlines) - now) if deadlines else None
        ready = self._wait(list(running), wait) if wait_max is None else \
            select.select(list(running), [], [], wait)[0]
        now = time.monotonic()
        ended = []
        for fd in list(running):
            slot = running[fd]
            late = slot.run.deadline is not None and now >= slot.run.deadline
            if fd in ready or late:
                del running[fd]
                ended.append((slot, finish(slot.run, timed_out=fd not in ready)))
                self._release(slot)
        return ended

    def _release(self, slot: _Slot) -> None:
        if slot.files is not None:
            slot.files.close()
        if slot.spare_err is not None:
            self._spare.append(slot.spare_err)

    def _next(self, inputs: Iterator[tuple[int, tuple[int, str, list[str]]]]) -> Any:
        self._may_raise = True
        try:
            if self.stopped_by:
                raise KeyboardInterrupt
            return next(inputs, None)
        except UnicodeDecodeError as exc:
            raise UsageError(f"stdin is not UTF-8 text ({exc.reason})") from None
        finally:
            self._may_raise = False

    def _fill(self, inputs: Iterator[tuple[int, tuple[int, str, list[str]]]],
              running: dict[int, _Slot]) -> None:
        """Start runs until -j are in flight; a bad line stops the intake, not the runs."""
        while self._error is None and not self.stopped_by and len(running) < self.opt.jobs:
            try:
                item = self._next(inputs)
                if item is None:
                    return
                index, (lineno, line, argv) = item
                try:
                    slot = self._start(index, line, argv)
                except (OSError, ValueError) as exc:
                    raise UsageError(f"stdin line {lineno}: cannot start {argv[0]}: "
                                     f"{getattr(exc, 'strerror', None) or exc}") from None
            except UsageError as exc:
                self._error = exc
                return
            running[slot.run.pidfd] = slot

    def _drain(self, in_order: bool = True) -> None:
        """Record finished runs in input order; at the end also those after a gap left by a
        run that was killed unfinished."""
        while self._next_out in self._finished:
            self._record(*self._finished.pop(self._next_out))
            self._next_out += 1
        if not in_order:
            for index in sorted(self._finished):
                self._record(*self._finished.pop(index))

    def _end(self, running: dict[int, _Slot]) -> None:
        """Stopped early: runs that have already ended are kept, the others killed."""
        for slot, usage in self._reap(running, wait_max=0.0) if running else ():
            self._finished[slot.index] = (slot, usage)
        for slot in running.values():
            finish(slot.run, timed_out=True)
            self._release(slot)
            self.killed += 1
        running.clear()

    def _loop(self, inputs: Iterator[tuple[int, tuple[int, str, list[str]]]],
              running: dict[int, _Slot]) -> None:
        self._fill(inputs, running)
        while running and not self.stopped_by:
            for slot, usage in self._reap(running):
                self._finished[slot.index] = (slot, usage)
            self._fill(inputs, running)  # the next runs start before these are recorded
            self._drain()
            if not running:
                self._commit()

    def run(self, lines: Iterable[str]) -> int:
        """Run every input; returns how many runs were recorded. Ctrl-C or SIGTERM stop it
        (KeyboardInterrupt, `stopped_by` says which) once every finished run is recorded."""
        running: dict[int, _Slot] = {}
        self._finished: dict[int, tuple[_Slot, Usage]] = {}
        self._next_out = 0
        self._error: UsageError | None = None
        self._may_raise = False
        self.stopped_by = 0
        self.killed = 0
        previous = self._catch_signals()
        try:
            self._loop(enumerate(self._inputs(lines)), running)
        except KeyboardInterrupt:
            self.stopped_by = self.stopped_by or signal.SIGINT
        finally:
            self._end(running)
            self._drain(in_order=False)
            self._commit()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for spare in self._spare:
                spare.close()
            if self.opt.progress:
                sys.stderr.write("\n")
        if self.stopped_by:
            raise KeyboardInterrupt
        if self._error is not None:
            raise self._error
        return self.done

    def _catch_signals(self) -> dict[int, Any]:
        """Only the main thread may; an ignored signal stays ignored."""
        previous = {}
        for signum in STOP_SIGNALS:
            try:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    previous[signum] = signal.signal(signum, self._stop)
            except ValueError:
                break
        return previous
