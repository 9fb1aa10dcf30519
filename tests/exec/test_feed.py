"""A job's stdin feed: in order, bounded by the credit, every chunk acknowledged once."""

from __future__ import annotations

import asyncio
import os

import pytest

from router.client.protocol import STDIN_CREDIT
from router.errors import ProtocolError
from router.exec.feed import StdinFeed


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 1 << 16):
        out += chunk
    return out


def test_chunks_before_and_after_attach_arrive_in_order_then_eof():
    async def main():
        acks: list[int] = []
        feed = StdinFeed(lambda: acks.append(1), STDIN_CREDIT)
        r, w = os.pipe()
        feed.put(b"a" * 70_000, False)           # more than a pipe holds: written as it drains
        feed.attach(w)
        feed.put(b"b", False)
        feed.put(b"", True)
        data = await asyncio.get_running_loop().run_in_executor(None, _read_all, r)
        os.close(r)
        return data, len(acks), feed.fd
    assert asyncio.run(main()) == (b"a" * 70_000 + b"b", 3, None)


def test_past_the_credit_is_refused_and_closing_acknowledges_what_is_pending():
    async def main():
        acks: list[int] = []
        feed = StdinFeed(lambda: acks.append(1), STDIN_CREDIT)
        for _ in range(STDIN_CREDIT):
            feed.put(b"x", False)
        with pytest.raises(ProtocolError, match="unacknowledged"):
            feed.put(b"x", False)
        feed.close()
        feed.put(b"late", False)                 # the job has ended: dropped, acknowledged
        return len(acks)
    assert asyncio.run(main()) == STDIN_CREDIT + 1


def test_a_job_that_closed_its_stdin_closes_the_feed():
    async def main():
        acks: list[int] = []
        feed = StdinFeed(lambda: acks.append(1), STDIN_CREDIT)
        r, w = os.pipe()
        os.close(r)
        feed.attach(w)
        feed.put(b"nobody reads", False)
        return feed.closed, len(acks)
    assert asyncio.run(main()) == (True, 1)
