"""One client connection: who it is (SO_PEERCRED), and a batched way to answer it."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import struct
from typing import Any

from router.client import protocol
from router.daemon.job import Job
from router.exec.feed import StdinFeed


class Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        self.pid, self.uid, self.gid = struct.unpack("3i", creds)
        self.jobs: set[Job] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.env: dict[str, str] = {}         # a submit without env gets the last one sent
        self.closed = False
        self.pending: list[bytes] = []
        self.feeds: dict[int, StdinFeed] = {}  # by submit tag: stdin may come before its job
        self.pending_bytes = 0
        self._account: tuple[str, int, list[int]] | None = None

    def account(self) -> tuple[str, int, list[int]]:
        """User name, primary group and groups of the caller, looked up once per connection."""
        if self._account is None:
            self._account = account(self.uid, self.gid)
        return self._account

    def feed(self, tag: int) -> StdinFeed:
        if tag not in self.feeds:
            self.feeds[tag] = StdinFeed(lambda: self.send({"event": "stdin", "tag": tag}),
                                         protocol.STDIN_CREDIT)
        return self.feeds[tag]

    def end_feed(self, tag: int) -> None:
        feed = self.feeds.pop(tag, None)
        if feed is not None:
            feed.close()

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a message; everything queued in one loop turn leaves in one write."""
        if self.closed:
            return
        if msg.get("event") == "out" and isinstance(msg.get("data"), bytes):
            msg = protocol.out_event(msg.get("tag", 0), msg["id"], msg["fd"], msg["data"])
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        line = protocol.encode(msg)
        self.pending.append(line)
        self.pending_bytes += len(line)

    def buffered(self) -> int:
        """Bytes waiting to reach the client: queued this turn and in the transport."""
        return self.pending_bytes + self.writer.transport.get_write_buffer_size()

    def flush(self) -> None:
        data, self.pending, self.pending_bytes = b"".join(self.pending), [], 0
        if not self.closed and data:
            self.writer.write(data)


def account(uid: int, gid: int) -> tuple[str, int, list[int]]:
    """User name, primary group and groups of uid (gid and itself when it has no name)."""
    try:
        pw = pwd.getpwuid(uid)
        return pw.pw_name, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid)
    except KeyError:
        return str(uid), gid, [gid]
