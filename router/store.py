"""The history: one SQLite file (WAL) of every measured run. With schema.py (its tables and
migrations), the only module that speaks SQL.

Every run, whether a collector's sweep or a daemon's job, is a row of `runs`, and the rows are
the training set. Completed rows get a completion sequence number (`done_seq`) so a retrain can
ask for "what finished since the model's watermark" through an index, and each completion takes
one step of reservoir sampling so a fixed-size sample of older history is always at hand.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import time
from contextlib import contextmanager
TYPE_CHECKING = False   # typing and pathlib cost `router collect` ~15 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

from router.errors import StoreError
from router.schema import MIGRATIONS, RESERVOIR_SIZE, SCHEMA_VERSION, next_value, reservoir_step

log = logging.getLogger(__name__)

FULL_BELOW = 1 << 20        # free bytes under which a failed write is put down to a full disk

RUN_FIELDS = (
    "time", "user", "argv", "template", "features", "machine", "source", "cpu_user_s",
    "cpu_sys_s", "wall_s", "max_rss_kb", "exit", "timed_out", "cost", "stderr_tail",
    "state", "ended", "p_over", "sd", "reason", "model_version", "threshold", "decision_us",
    "cwd", "uid", "remote_id", "done_seq", "env", "detach", "pid", "pid_start",
    "predicted_cost", "expected_waits", "time_limit",
)
_JSON_FIELDS = ("argv", "features", "env", "expected_waits")

def _encode(record: dict[str, Any]) -> dict[str, Any]:
    unknown = set(record) - set(RUN_FIELDS)
    if unknown:
        raise ValueError(f"unknown run fields: {sorted(unknown)}")
    return {k: json.dumps(v) if k in _JSON_FIELDS else v for k, v in record.items()}


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    return _decode_all([row])[0]


def _decode_all(rows: Iterable[sqlite3.Row]) -> list[dict[str, Any]]:
    """Rows as dicts with their JSON fields parsed, one `json.loads` per field for all rows
    (the texts joined into one array): parsing each row's fields apart was most of the time
    to read a history of a million runs."""
    out = [dict(r) for r in rows]
    for key in _JSON_FIELDS:
        have = [d for d in out if d.get(key) is not None]
        if have:
            for d, value in zip(have, json.loads("[" + ",".join(d[key] for d in have) + "]")):
                d[key] = value
    return out


class Store:
    """The history file. Safe to open from several processes; one instance per thread.

    durable: each commit is on the disk before it returns (synchronous=FULL), for the daemon,
    which tells a submitter its job is queued once the commit returns. Under NORMAL a disk that
    fails (or a power cut) takes back the last commits since a checkpoint: jobs that were run
    and answered for would vanish from the history."""

    def __init__(self, path: str | os.PathLike[str], *, reservoir_size: int = RESERVOIR_SIZE,
                 readonly: bool = False, durable: bool = False):
        self.path = os.fspath(path)
        self.reservoir_size = reservoir_size
        self._rng = random.Random()
        if readonly:
            self._open_readonly()
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                      check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise self.error(exc) from None

    def _open_readonly(self) -> None:
        """For readers without write access (a group member reading the system history in
        0750 /var/lib/router): no migration, no journal change; a running daemon keeps the
        WAL's files, and without them the file is read as it stands."""
        from urllib.parse import quote
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
        try:
            try:
                self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
                self.schema_version()
            except sqlite3.OperationalError:
                self.db = sqlite3.connect(uri + "&immutable=1", uri=True,
                                          check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            if self.schema_version() != SCHEMA_VERSION:
                raise StoreError(f"history store {self.path}: schema {self.schema_version()}, "
                                 f"this router reads {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"history store {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def error(self, exc: BaseException) -> StoreError:
        """One line for a failed open or write; a full disk is named as such, since SQLite
        often reports it as "disk I/O error"."""
        full = self.disk_full()
        why = f"{exc}: disk full at {full}" if full else str(exc)
        return StoreError(f"history store {self.path}: {why}")

    def check_writable(self) -> None:
        """Before work whose results would have nowhere to go: a history this user may read
        but not write (the system's, written by its daemon alone) is refused now, not after
        the first runs were measured."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM counters WHERE 0")
            finally:
                self._rollback()
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def disk_full(self) -> str | None:
        """The store's directory when its disk has (almost) no space left, else None."""
        where = os.path.dirname(os.path.abspath(self.path))
        try:
            st = os.statvfs(where)
        except OSError:
            return None
        return where if st.f_bavail * st.f_frsize < FULL_BELOW else None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside commit together or not at all."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.error(exc) from None
        try:
            yield self.db
        except sqlite3.Error as exc:
            self._rollback()
            raise self.error(exc) from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self.error(exc) from None

    def _rollback(self) -> None:
        """SQLite may have rolled back itself (a full disk): then the error that did it
        is the one to report, not "cannot rollback"."""
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("history store %s: rollback failed", self.path)

    def check(self) -> None:
        """PRAGMA quick_check: a file with corrupt pages is refused in one line when a daemon
        starts, rather than failing the first request that reads them."""
        try:
            problems = [r[0] for r in self.db.execute("PRAGMA quick_check")]
        except sqlite3.Error as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            raise StoreError(f"history store {self.path} is corrupt ({problems[0]}); restore "
                             f"a backup, or try `sqlite3 {self.path} .recover`")

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(f"history store {self.path}: schema {current} is newer than this "
                             f"router ({SCHEMA_VERSION}); upgrade router")
        for version in range(current, SCHEMA_VERSION):
            with self.transaction() as db:
                MIGRATIONS[version](db)
                db.execute(f"PRAGMA user_version = {version + 1}")
            log.info("history %s migrated to schema %d", self.path, version + 1)

    # -- writes -------------------------------------------------------------------------

    def _insert(self, db: sqlite3.Connection, record: dict[str, Any]) -> int:
        row = _encode(record)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur = db.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(row.values()))
        return int(cur.lastrowid)

    def add_run(self, record: dict[str, Any]) -> int:
        """Record a run that has already finished (a collector's)."""
        with self.transaction() as db:
            return self.add_run_in(db, record)

    def add_run_in(self, db: sqlite3.Connection, record: dict[str, Any]) -> int:
        if record.get("state", "done") != "done":
            return self._insert(db, record)
        return self.add_runs_in(db, [record])[0]

    def add_runs_in(self, db: sqlite3.Connection, records: list[dict[str, Any]]) -> list[int]:
        """Finished runs, in order (a sweep's batch): their ids and completion numbers are
        taken at once and the rows go in through one prepared statement, not four each.
        Inside the transaction's write lock the next ids are the largest one's successors."""
        if not records:
            return []
        first = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM runs").fetchone()[0]
        seq = next_value(db, "done_seq", len(records)) - len(records) + 1
        ids = list(range(first, first + len(records)))
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for i, record in enumerate(records):
            row = {"id": ids[i], **_encode({"state": "done", **record, "done_seq": seq + i})}
            by_columns.setdefault(tuple(row), []).append(tuple(row.values()))
        for columns, values in by_columns.items():
            db.executemany(f"INSERT INTO runs ({', '.join(columns)}) "
                           f"VALUES ({', '.join('?' * len(columns))})", values)
        reservoir_step(db, ids, self._rng, self.reservoir_size)
        return ids

    def start_job(self, db: sqlite3.Connection, record: dict[str, Any]) -> int:
        """Record a job before it runs, so a crash cannot lose it."""
        return self._insert(db, {"source": "job", "state": "queued", **record})

    def update_job(self, db: sqlite3.Connection, run_id: int, fields: dict[str, Any]) -> None:
        """A job's new state; a job done gets its completion number in the same statement."""
        done = fields.get("state") == "done"
        row = _encode({**fields, "done_seq": next_value(db, "done_seq")} if done else fields)
        sets = ", ".join(f"{k} = ?" for k in row)
        db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*row.values(), run_id))
        if done:
            reservoir_step(db, [run_id], self._rng, self.reservoir_size)

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs still queued or running in the history, oldest first: at a daemon's start,
        those a dead one left."""
        return [r for r in self.active() if r["source"] == "job"]

    def mark_lost(self) -> int:
        with self.transaction() as db:
            return self.mark_lost_in(db)

    def mark_lost_in(self, db: sqlite3.Connection) -> int:
        """Jobs a dead daemon left queued or running: say so rather than let them vanish."""
        cur = db.execute("UPDATE runs SET state = 'lost', ended = ? "
                         "WHERE state IN ('queued', 'running')", (time.time(),))
        return cur.rowcount

    # -- reads --------------------------------------------------------------------------

    def get(self, run_id: int) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _decode(row) if row else None

    def runs(self, *, since_seq: int = 0, until_seq: int | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """Finished runs in completion order; `since_seq` uses the index, not a scan."""
        sql = "SELECT * FROM runs WHERE done_seq > ?"
        args: list[Any] = [since_seq]
        if until_seq is not None:
            sql += " AND done_seq <= ?"
            args.append(until_seq)
        sql += " ORDER BY done_seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return _decode_all(self.db.execute(sql, args))

    def all_runs(self, since_time: float | None = None) -> list[dict[str, Any]]:
        """Every row, finished or not, oldest first: for reports and `router jobs`."""
        sql, args = "SELECT * FROM runs", ()
        if since_time is not None:
            sql, args = sql + " WHERE time >= ?", (since_time,)
        return _decode_all(self.db.execute(sql + " ORDER BY id", args))

    def active(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM runs WHERE state IN ('queued', 'running') "
                               "ORDER BY id")
        return _decode_all(rows)

    def recent_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM runs WHERE source = 'job' ORDER BY id DESC "
                               "LIMIT ?", (limit,))
        return _decode_all(reversed(rows.fetchall()))

    def reservoir(self, until_seq: int | None = None) -> list[dict[str, Any]]:
        """The fixed-size uniform sample of completed runs (reads R rows, whatever the history)."""
        sql = "SELECT runs.* FROM reservoir JOIN runs ON runs.id = reservoir.run_id"
        args: tuple[Any, ...] = ()
        if until_seq is not None:
            sql, args = sql + " WHERE runs.done_seq <= ?", (until_seq,)
        return _decode_all(self.db.execute(sql, args))

    def done_seq(self) -> int:
        """The completion number of the newest finished run: a model's watermark."""
        return self.db.execute("SELECT value FROM counters WHERE name = 'done_seq'").fetchone()[0]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
