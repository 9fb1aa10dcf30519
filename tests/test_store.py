import sqlite3
import time
from pathlib import Path

import pytest

from router.errors import StoreError
from router.store import MIGRATIONS, SCHEMA_VERSION, Store


def record(i: int, **extra):
    return {"time": time.time(), "user": "u", "argv": ["prog", str(i)], "template": "prog {num}",
            "features": [float(i)], "machine": "local", "source": "collect",
            "cpu_user_s": 0.1, "cpu_sys_s": 0.0, "wall_s": 0.1, "max_rss_kb": 1, "exit": 0,
            "timed_out": 0, "cost": 0.1 * i, **extra}


def test_roundtrip_and_wal(store_path: Path):
    with Store(store_path) as s:
        rid = s.add_run(record(3))
        row = s.get(rid)
        assert row["argv"] == ["prog", "3"] and row["features"] == [3.0]
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.schema_version() == SCHEMA_VERSION


def test_a_failed_write_rolls_back_as_a_unit(store_path: Path):
    with Store(store_path) as s:
        with pytest.raises(ValueError):
            with s.transaction() as db:
                s.add_run_in(db, record(1))
                s.add_run_in(db, {"bogus": 1})
        assert s.count() == 0


def test_a_batch_takes_consecutive_ids_and_completion_numbers(store_path: Path):
    with Store(store_path, reservoir_size=3) as s:
        first = s.add_run(record(1))
        with s.transaction() as db:
            ids = s.add_runs_in(db, [record(i) for i in range(2, 6)])
        assert ids == [first + 1, first + 2, first + 3, first + 4]
        assert [s.get(i)["argv"] for i in ids] == [["prog", str(i)] for i in range(2, 6)]
        assert [r["done_seq"] for r in s.runs(since_seq=1)] == [2, 3, 4, 5]
        assert s.done_seq() == 5 and len(s.reservoir()) == 3


def test_old_file_is_migrated_forward_and_keeps_its_rows(store_path: Path):
    db = sqlite3.connect(store_path)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO runs (time, user, argv, template, features, machine, source, cost) "
               "VALUES (1, 'u', '[\"p\"]', 'p', '[]', 'local', 'collect', 1.5)")
    db.commit()
    db.close()
    with Store(store_path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        rows = s.runs()
        assert len(rows) == 1 and rows[0]["cost"] == 1.5 and rows[0]["state"] == "done"
        assert s.done_seq() == 1 and len(s.reservoir()) == 1


def test_newer_schema_is_refused(store_path: Path):
    db = sqlite3.connect(store_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        Store(store_path)


def test_unwritable_store_is_one_clear_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=str(blocker)):
        Store(blocker / "history.db")


def test_reservoir_stays_bounded_and_uniform(store_path: Path):
    with Store(store_path, reservoir_size=50) as s:
        with s.transaction() as db:
            for i in range(2000):
                s.add_run_in(db, record(i))
        sample = s.reservoir()
        assert len(sample) == 50
        ids = sorted(r["id"] for r in sample)
        assert ids[-1] > 1000 and ids[0] < 1000   # drawn from the whole history
        assert [r["done_seq"] for r in s.runs(since_seq=1995)] == [1996, 1997, 1998, 1999, 2000]


def test_lost_jobs_are_marked_not_dropped(store_path: Path):
    with Store(store_path) as s:
        with s.transaction() as db:
            a = s.start_job(db, record(1, state="running"))
            s.start_job(db, record(2))
        assert s.mark_lost() == 2
        assert s.get(a)["state"] == "lost"
        assert s.runs() == []
