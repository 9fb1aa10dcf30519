"""The history's writer thread, on a real SQLite file: operations waiting together commit in
one transaction, and a batch with a bad operation is retried one by one, so only the bad one
fails and nothing it wrote stays."""

from __future__ import annotations

import asyncio
import threading

import pytest

from router.daemon.writer import StoreWriter
from router.store import Store

RUN = {"time": 1.0, "user": "u", "argv": ["./p", "1"], "template": "./p <n>",
       "features": [1.0], "machine": "local", "source": "collect", "exit": 0, "cost": 0.1}


class Boom(Exception):
    pass


async def _batch_with_a_bad_op(path: str) -> tuple[list[object], list[str]]:
    writer = StoreWriter(path, asyncio.get_running_loop())
    calls: list[str] = []
    started, release = threading.Event(), threading.Event()

    def blocker(s, db):
        started.set()
        release.wait(30)     # holds the thread so that the next three queue up as one batch

    def good(name):
        def op(s, db):
            calls.append(name)
            return s.add_run_in(db, dict(RUN, user=name))
        return op

    def bad(s, db):
        calls.append("bad")
        s.add_run_in(db, dict(RUN, user="bad"))      # written, then rolled back
        raise Boom("bad op")

    first = writer.submit(blocker)
    await asyncio.to_thread(started.wait, 30)
    futures = [writer.submit(good("a")), writer.submit(bad), writer.submit(good("b"))]
    release.set()
    await first
    results = await asyncio.gather(*futures, return_exceptions=True)
    after = await writer.submit(good("c"))        # the thread goes on after a failure
    writer.close()
    return [*results, after], calls


def test_a_bad_op_in_a_batch_fails_alone_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "history.db")
    results, calls = asyncio.run(_batch_with_a_bad_op(path))
    a, bad, b, c = results
    assert isinstance(bad, Boom)
    assert all(isinstance(r, int) for r in (a, b, c))
    # the batch, then one by one; an op that fails is tried once more alone
    assert calls == ["a", "bad", "a", "bad", "bad", "b", "c"]
    with Store(path) as s:
        assert sorted(r["user"] for r in s.all_runs()) == ["a", "b", "c"]
        assert [r["done_seq"] for r in s.runs()] == [1, 2, 3]


async def _single_bad_op(path: str) -> tuple[BaseException | None, object]:
    writer = StoreWriter(path, asyncio.get_running_loop())

    def bad(s, db):
        s.start_job(db, dict(RUN, source="job", nonsense=1))   # an unknown field

    with pytest.raises(ValueError) as info:
        await writer.submit(bad)
    row = await writer.read(lambda s: s.count())
    writer.close()
    return info.value, row


def test_a_failing_op_alone_gets_its_error_and_the_writer_serves_on(tmp_path):
    exc, count = asyncio.run(_single_bad_op(str(tmp_path / "history.db")))
    assert "unknown run fields" in str(exc) and count == 0
