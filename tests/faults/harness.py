"""Faults against a real daemon under a mixed load (attached, detached, queued jobs), and the
audit after each: every job recorded exactly once with a final state, none run twice, no
process of a job left without a supervisor, the daemon serving the next submit.

Used by tests/faults/test_faults.py (each fault once) and bench/chaos.py (N random rounds).
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from daemon_fixture import ROUTER, RunningDaemon, wait_for  # noqa: E402
from disk import Ext4Disk  # noqa: E402

from router.store import Store  # noqa: E402

POLICY = """
machines:
  cheap: {backend: local, price: 1.0, slots: 2}
  fast: {backend: local, price: 3.0, slots: 1}
threshold: 0.04
route: {over: fast, under: cheap}
daemon: {drain_timeout: 5, model_poll_s: 0.2}
"""
BAD_POLICIES = [b"", b"threshold: 1\n", b"machines: [oops\n", b"machines:\n  a: {}\n#\xff\n"]
FAULTS = ("kill9_daemon", "kill9_spawner", "sighup_bad_policy", "slow_reader", "disk_full",
          "readonly_store")
NEEDS_DISK = {"disk_full", "readonly_store"}
FINAL = {"done", "failed", "cancelled", "killed", "lost"}


@dataclass
class Tally:
    submitted: int = 0
    recorded: int = 0
    lost: int = 0               # submitted, and no row
    duplicated: int = 0         # ran more than once
    unfinished: int = 0         # a row still queued or running after the settle time
    ended_unseen: int = 0       # state lost: ended while no daemon watched (a true record)
    orphans: int = 0
    hangs: int = 0
    crashes: int = 0
    states: Counter = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        for name in ("submitted", "recorded", "lost", "duplicated", "unfinished",
                     "ended_unseen", "orphans", "hangs", "crashes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.states.update(other.states)

    def line(self) -> str:
        return (f"jobs submitted {self.submitted}, recorded {self.recorded}, lost {self.lost}, "
                f"duplicated {self.duplicated}, unfinished {self.unfinished}, orphans "
                f"{self.orphans}, hangs {self.hangs}, crashes {self.crashes}; states "
                f"{dict(self.states)}")


class Chaos:
    """One daemon in `tmp`, jobs marked with a token per round so that the audit finds them
    in the history, in the runs log (one line per time a job started) and in /proc. With a
    disk, the history and the spool live on it, and the store can go read-only."""

    def __init__(self, tmp: Path, seed: int = 0, disk: Ext4Disk | None = None):
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.disk = disk
        store = {"ROUTER_STORE": str(disk.path / "history.db")} if disk else {}
        self.daemon = RunningDaemon(tmp, POLICY, store)
        self.runs_log = tmp / "runs.log"
        self.runs_log.touch()
        self.round = 0

    def job_argv(self, token: str) -> list[str]:
        pause = self.rng.choice(["0", "0.05", "0.3", "1"])
        return ["/bin/sh", "-c", f'echo "$1" >> {self.runs_log}; sleep {pause}; echo "$1"',
                "chaos-job", token]

    def _submit_detached(self, token: str) -> bool:
        """Whether the daemon took it (one killed meanwhile may not have)."""
        r = self.daemon.router("submit", "--parsable", "--detach", "--", *self.job_argv(token),
                               timeout=30)
        return r.returncode == 0

    def _submit_attached(self, token: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*ROUTER, "submit", "--no-fallback", "--",
                                 *self.job_argv(token)], env=self.daemon.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run_round(self, fault: str, jobs: int = 12) -> Tally:
        """Submit a mixed load, inject the fault at a random point of it, audit."""
        self.round += 1
        tally = Tally()
        tokens = [f"r{self.round}j{n}-{self.rng.randrange(1 << 30)}" for n in range(jobs)]
        at = self.rng.randrange(jobs)
        clients, taken = [], set()
        for n, token in enumerate(tokens):
            if n == at:
                tally.hangs += self._inject(fault)
            try:
                if self.rng.random() < 0.5:
                    if self._submit_detached(token):
                        taken.add(token)
                else:
                    clients.append((token, self._submit_attached(token)))
            except subprocess.TimeoutExpired:
                tally.hangs += 1
        for token, client in clients:
            try:
                if client.wait(timeout=60) == 0:
                    taken.add(token)
            except subprocess.TimeoutExpired:
                client.kill()
                tally.hangs += 1
        return self._audit(tokens, taken, tally)

    def _inject(self, fault: str) -> int:
        """The fault; 1 when the daemon hung doing what it asked."""
        d = self.daemon
        if fault == "kill9_daemon":
            time.sleep(self.rng.random() * 0.5)     # a random moment of the load
            d.kill9()
            d.start()
        elif fault == "kill9_spawner":
            spawner = _spawner_pid(d.proc.pid)
            if spawner:
                subprocess.run(["kill", "-9", str(spawner)])
        elif fault == "sighup_bad_policy":
            d.policy.write_bytes(self.rng.choice(BAD_POLICIES))
            d.signal(signal.SIGHUP)
            time.sleep(0.1)
            d.policy.write_text(POLICY)
            d.signal(signal.SIGHUP)
        elif fault == "slow_reader":
            self._slow_reader()
        elif fault == "disk_full":
            return self._disk_full()
        elif fault == "readonly_store":
            return self._readonly_store()
        try:
            wait_for(d.answers, timeout=30, what="the daemon after the fault")
        except AssertionError:
            return 1
        return 0

    def _disk_full(self) -> int:
        """The disk under the history fills while jobs run and end, then space returns: a
        submit meanwhile gets an answer (queued, or one error line), not a hang."""
        assert self.disk is not None, "disk_full needs Chaos(disk=...)"
        filler = self.disk.fill()
        time.sleep(self.rng.random() * 0.5)
        hangs = self._probe("full")
        time.sleep(self.rng.random())
        filler.unlink()
        try:
            wait_for(self.daemon.answers, timeout=30, what="the daemon after the disk filled")
        except AssertionError:
            hangs += 1
        return hangs

    def _readonly_store(self) -> int:
        """The disk under the history fails; the daemon must keep answering (a submit it
        cannot record is refused with one line, not run unrecorded), stop on SIGTERM, and
        record at its next start, after the operator's repair, the end of what it left."""
        d = self.daemon
        assert self.disk is not None, "readonly_store needs Chaos(disk=...)"
        self.disk.fail()
        time.sleep(self.rng.random() * 0.5)
        hangs = self._probe("unrecordable")
        if d.proc is not None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                hangs += 1
                d.kill9()
        self.disk.repair()
        d.start()
        return hangs

    def _probe(self, word: str) -> int:
        """A submit while the disk misbehaves: 1 unless it is answered, by the job's output or
        by one error line."""
        try:
            r = self.daemon.router("submit", "--", "/bin/echo", word, timeout=30)
        except subprocess.TimeoutExpired:
            return 1
        return int(r.returncode == 0 and r.stdout != word + "\n")

    def _slow_reader(self) -> None:
        """An attached job with output nobody reads, its client gone after a while."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.daemon.sock))
            s.sendall(json.dumps({"op": "submit", "argv": ["/usr/bin/head", "-c", "20000000",
                                                           "/dev/zero"], "cwd": "/",
                                  "env": {}}).encode() + b"\n")
            time.sleep(self.rng.random())

    def _audit(self, tokens: list[str], taken: set[str], tally: Tally) -> Tally:
        """A job is submitted once the daemon took it: it has a row, or its client heard
        success. One with neither was refused to its client (the daemon was down)."""
        rows = self._settled_rows(tokens, tally)
        started = Counter(self.runs_log.read_text().split())
        for token in tokens:
            mine = rows.get(token, [])
            if not mine and token not in taken:
                continue
            tally.submitted += 1
            tally.recorded += bool(mine)
            tally.lost += not mine
            tally.duplicated += len(mine) > 1 or started[token] > 1
            for row in mine:
                tally.states[row["state"]] += 1
                tally.unfinished += row["state"] not in FINAL
                tally.ended_unseen += row["state"] == "lost"
        tally.orphans = len(self.orphans())
        r = self.daemon.router("submit", "--", "/bin/echo", "next", timeout=30)
        tally.crashes += r.returncode != 0 or r.stdout != "next\n"
        return tally

    def _settled_rows(self, tokens: list[str], tally: Tally) -> dict[str, list[dict]]:
        want = set(tokens)

        def rows() -> dict[str, list[dict]]:
            out: dict[str, list[dict]] = {}
            with Store(self.daemon.env["ROUTER_STORE"]) as s:
                for row in s.all_runs():
                    if row["argv"][-1] in want:
                        out.setdefault(row["argv"][-1], []).append(row)
            return out

        try:
            wait_for(lambda: all(r["state"] in FINAL for rs in rows().values() for r in rs),
                     timeout=60, what="every job final")
        except AssertionError:
            tally.hangs += 1
        return rows()

    def orphans(self) -> list[int]:
        """Processes of chaos jobs that no job of the history accounts for as running."""
        with Store(self.daemon.env["ROUTER_STORE"]) as s:
            running = {r["argv"][-1] for r in s.active()}
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"chaos-job" in argv and str(self.runs_log).encode() in b" ".join(argv):
                if argv[-2].decode() not in running and _alive(proc):
                    found.append(int(proc.name))
        return found

    def close(self) -> Tally:
        """Stop the daemon (a hang if SIGTERM does not), kill leftover job processes."""
        tally = Tally()
        if self.daemon.proc is not None and self.daemon.proc.poll() is None:
            self.daemon.proc.send_signal(signal.SIGTERM)
            try:
                self.daemon.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                tally.hangs += 1
                self.daemon.proc.kill()
                self.daemon.proc.wait()
        log = self.daemon.log.read_text() if self.daemon.log.exists() else ""
        tally.crashes += len(re.findall(r"^Traceback", log, re.M))
        left = self.orphans()
        tally.orphans += len(left)
        for pid in left:
            subprocess.run(["kill", "-9", str(pid)])
        return tally


def _alive(proc: Path) -> bool:
    try:
        return proc.joinpath("stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _spawner_pid(daemon_pid: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = proc.joinpath("stat").read_bytes().rsplit(b")", 1)[1].split()
            if int(stat[1]) == daemon_pid and b"spawner.py" in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except (OSError, IndexError, ValueError):
            continue
    return None
