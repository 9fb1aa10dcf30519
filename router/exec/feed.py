"""A job's stdin, fed from its submitter's connection (`echo x | router submit -- cat`).

The client sends its stdin in `stdin` requests of at most STDIN_CHUNK bytes and keeps at most
STDIN_CREDIT (the feed's credit) of them unacknowledged; each is acknowledged once it is in
the job's pipe (or dropped: the job has ended, or its machine does not forward stdin). So a
job that reads slowly holds back its submitter, the daemon holds at most that much per job,
and the daemon's read loop never waits on a job (a Ctrl-C still reaches it). Writes are
non-blocking, from the event loop. A job submitted without stdin has no feed and pays
nothing: it reads /dev/null.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable

from router.errors import ProtocolError


class StdinFeed:
    """What a submitter sent for its job's stdin, written into the job's pipe as it drains."""

    def __init__(self, ack: Callable[[], None], credit: int):
        self.ack = ack                       # says to the submitter: one chunk less in flight
        self.credit = credit                 # the protocol's STDIN_CREDIT
        self.chunks: deque[memoryview] = deque()
        self.eof = False
        self.fd: int | None = None
        self.closed = False
        self.waiting = False

    def put(self, data: bytes, eof: bool) -> None:
        """One chunk from the submitter; eof: it has no more."""
        if self.closed:
            self.ack()
            return
        if len(self.chunks) >= self.credit:
            raise ProtocolError(f"stdin: more than {self.credit} chunks unacknowledged")
        self.chunks.append(memoryview(data))
        self.eof = self.eof or eof
        self._write()

    def attach(self, fd: int) -> None:
        """The job's pipe (ours to close), once its process was asked for."""
        if self.closed:
            os.close(fd)
            return
        os.set_blocking(fd, False)
        self.fd = fd
        self._write()

    def close(self) -> None:
        """The job has ended or will never read: what is pending is dropped and acknowledged,
        and so is all that comes later."""
        if self.closed:
            return
        self.closed = True
        self._close_fd()
        for _ in self.chunks:
            self.ack()
        self.chunks.clear()

    def _write(self) -> None:
        if self.fd is None:
            return
        try:
            while self.chunks:
                chunk = self.chunks[0]
                if chunk:
                    chunk = chunk[os.write(self.fd, chunk):]
                if chunk:
                    self.chunks[0] = chunk
                    self._wait(True)
                    return
                self.chunks.popleft()
                self.ack()
        except BlockingIOError:
            self._wait(True)
            return
        except OSError:                      # the job closed its stdin or has ended
            self.close()
            return
        self._wait(False)
        if self.eof:
            self._close_fd()

    def _wait(self, on: bool) -> None:
        if on != self.waiting and self.fd is not None:
            loop = asyncio.get_running_loop()
            if on:
                loop.add_writer(self.fd, self._write)
            else:
                loop.remove_writer(self.fd)
            self.waiting = on

    def _close_fd(self) -> None:
        self._wait(False)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
