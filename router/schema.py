"""The history's tables, the counters and reservoir they keep, and the migrations that bring
an older file up to date (`PRAGMA user_version` is the number of migrations applied). With
store.py, the only modules that speak SQL."""

from __future__ import annotations

import random
import sqlite3
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

RESERVOIR_SIZE = 4096


_V1 = """
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    time        REAL NOT NULL,
    user        TEXT NOT NULL,
    argv        TEXT NOT NULL,
    template    TEXT NOT NULL,
    features    TEXT NOT NULL,
    machine     TEXT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('collect', 'job')),
    cpu_user_s  REAL,
    cpu_sys_s   REAL,
    wall_s      REAL,
    max_rss_kb  INTEGER,
    exit        INTEGER,
    timed_out   INTEGER NOT NULL DEFAULT 0,
    cost        REAL,
    stderr_tail TEXT
);
CREATE INDEX runs_template ON runs(template);
"""

_V2 = """
ALTER TABLE runs ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
ALTER TABLE runs ADD COLUMN ended REAL;
ALTER TABLE runs ADD COLUMN p_over REAL;
ALTER TABLE runs ADD COLUMN sd REAL;
ALTER TABLE runs ADD COLUMN reason TEXT;
ALTER TABLE runs ADD COLUMN model_version TEXT;
ALTER TABLE runs ADD COLUMN threshold REAL;
ALTER TABLE runs ADD COLUMN decision_us REAL;
ALTER TABLE runs ADD COLUMN cwd TEXT;
ALTER TABLE runs ADD COLUMN uid INTEGER;
ALTER TABLE runs ADD COLUMN remote_id TEXT;
CREATE INDEX runs_active ON runs(state) WHERE state IN ('queued', 'running');
"""

_V3 = """
ALTER TABLE runs ADD COLUMN done_seq INTEGER;
CREATE UNIQUE INDEX runs_done_seq ON runs(done_seq);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE reservoir (slot INTEGER PRIMARY KEY, run_id INTEGER NOT NULL);
"""

# What a restarted daemon needs of the jobs a dead one left: a running one's pid and start
# time (clock ticks after boot) to kill it, never a process that reused its pid. `env` is no
# longer written (a detached job's environment waits in the daemon's private spool): a
# restart reads what an older daemon left there once, and clears it.
_V4 = """
ALTER TABLE runs ADD COLUMN env TEXT;
ALTER TABLE runs ADD COLUMN detach INTEGER;
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_start INTEGER;
"""

# What an objective-rule decision used: the expected cost (reference CPU s) and, as JSON
# {machine: seconds}, the expected wait on each machine it weighed.
_V5 = """
ALTER TABLE runs ADD COLUMN predicted_cost REAL;
ALTER TABLE runs ADD COLUMN expected_waits TEXT;
"""

# The time limit a job was submitted with (seconds), for a restarted daemon to keep it.
_V6 = """
ALTER TABLE runs ADD COLUMN time_limit REAL;
"""


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Statement by statement: executescript() would commit the migration's transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_v3(db: sqlite3.Connection) -> None:
    _script(db, _V3)
    db.execute("UPDATE runs SET done_seq = id WHERE state = 'done'")
    seq = db.execute("SELECT COALESCE(MAX(done_seq), 0) FROM runs").fetchone()[0]
    db.execute("INSERT INTO counters VALUES ('done_seq', ?)", (seq,))
    db.execute("INSERT INTO counters VALUES ('reservoir_seen', 0)")
    done = db.execute("SELECT id FROM runs WHERE state = 'done' ORDER BY id").fetchall()
    for (run_id,) in done:
        reservoir_step(db, [run_id], random.Random(run_id))


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    lambda db: _script(db, _V1),
    lambda db: _script(db, _V2),
    _migrate_v3,
    lambda db: _script(db, _V4),
    lambda db: _script(db, _V5),
    lambda db: _script(db, _V6),
]
SCHEMA_VERSION = len(MIGRATIONS)


def next_value(db: sqlite3.Connection, counter: str, n: int = 1) -> int:
    """Take the counter's next n values; the last of them."""
    return db.execute("UPDATE counters SET value = value + ? WHERE name = ? RETURNING value",
                      (n, counter)).fetchone()[0]


def reservoir_step(db: sqlite3.Connection, run_ids: list[int], rng: random.Random,
                   size: int = RESERVOIR_SIZE) -> None:
    """Algorithm R, for completions in order: after n completions each one is in the
    reservoir with probability size/n."""
    last = next_value(db, "reservoir_seen", len(run_ids))
    picks = []
    for seen, run_id in enumerate(run_ids, last - len(run_ids) + 1):
        slot = seen - 1 if seen <= size else rng.randrange(seen)
        if slot < size:
            picks.append((slot, run_id))
    db.executemany("INSERT OR REPLACE INTO reservoir VALUES (?, ?)", picks)
