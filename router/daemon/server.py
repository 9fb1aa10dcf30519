"""The daemon's socket: listening, reading each connection's requests, dispatching them.

Requests are checked by the protocol module, then dispatched through `HANDLERS`, one table
of handlers named after their op. Submits are pipelined: the next request is read while
one waits for its job id. A connection that closes cancels the attached jobs it submitted.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
from typing import Any

from router.client import protocol
from router.daemon.handlers import HANDLERS
from router.daemon.peer import Peer
from router.daemon.state import State
from router.errors import RouterError

log = logging.getLogger(__name__)

WRITE_BUFFER_MAX = 1 << 20     # a reader this far behind is waited for before we read on


async def listen(st: State) -> asyncio.AbstractServer:
    """The socket, with the policy's mode and group; a stale socket file is replaced, a live
    one (another daemon) refused."""
    path = st.socket_path
    if st.socket_named and not path.parent.is_dir():
        raise RouterError(f"socket {path}: no directory {path.parent}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            raise RouterError(f"another daemon is listening on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink()
        finally:
            probe.close()
    server = await asyncio.start_unix_server(lambda r, w: serve(st, r, w), str(path),
                                             limit=protocol.MAX_LINE)
    os.chmod(path, st.policy.daemon["socket_mode"])
    group = st.policy.daemon["socket_group"]
    if group:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    return server


async def serve(st: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = Peer(reader, writer)
    try:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                peer.send(protocol.error("request too large"))
                break
            if not line:
                break
            await dispatch(st, peer, line)
            if writer.transport.get_write_buffer_size() > WRITE_BUFFER_MAX:
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        peer.flush()
        peer.closed = True
        for job in list(peer.jobs):
            if not job.detach and not job.done.is_set():
                st.dispatcher.cancel(job)
        writer.close()


async def dispatch(st: State, peer: Peer, line: bytes) -> None:
    try:
        req = protocol.check_request(protocol.decode(line))
    except RouterError as exc:
        refuse(st, peer, exc, 0)
        return
    if req["op"] != "submit":
        await handle(st, peer, req)
        return
    task = asyncio.create_task(handle(st, peer, req))
    peer.tasks.add(task)
    task.add_done_callback(peer.tasks.discard)


async def handle(st: State, peer: Peer, req: dict[str, Any]) -> None:
    try:
        await HANDLERS[req["op"]](st, peer, req)
    except RouterError as exc:
        refuse(st, peer, exc, req["tag"])
    except Exception as exc:  # noqa: BLE001 - one bad request never drops the connection
        log.exception("%s request failed", req["op"])
        refuse(st, peer, RouterError(f"internal error: {type(exc).__name__}: {exc}"),
               req["tag"])


def refuse(st: State, peer: Peer, exc: RouterError, tag: int) -> None:
    st.counters["refused"] += 1
    peer.send(protocol.error(str(exc).splitlines()[0], tag))
