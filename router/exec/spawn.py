"""Starting a job's process: as the submitting user, in a new session, its output streamed.

The daemon's end of a pipe whose other end is the spawner process (`spawner.py`): here one
`SpawnerLink` per event loop, started on first use, sends requests and gives each job a
`Child`; there a `SpawnerLoop` serves them. A request goes out, and back come the pid and a
pidfd (or why it could not start), the output as it is read, and the exit status and rusage
that wait4 gave. Nothing here blocks or takes a thread, and the daemon never holds its GIL
while a process starts. Only a stdin pipe (the ssh agent's) is made here and handed over.

If the spawner dies, the jobs it ran have no parent left to see their end: each is killed
(its session through its pidfd, never a pid that may have been reused; with cgroups, every
process in its cgroup) and ends with JobLost, and the next job starts a new spawner.
"""

from __future__ import annotations

import array
import asyncio
import itertools
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from router.exec.jobspec import JobSpec, OnOutput
from router import jsonline
from router.errors import BackendError, JobLost, NotExecutable
from router.exec import cgroup
from router.exec.process import holds_pid, kill_group
from router.exec.spawner import (BOOT, ENDED, FAILED, OUTPUT, PACKET_FDS, RECORD, STARTED,
                                 WARNING)
from router.exec.usage import Usage, from_wait

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPAWNER_SOCKET_ENV = "ROUTER_SPAWNER_SOCKET"
PACKET = 1 << 16
FDS_SPACE = socket.CMSG_SPACE(4 * PACKET_FDS)
INLINE_MAX = 32 * 1024        # bigger requests (a huge environment) travel in a memfd
ENV_CACHE = 64


@dataclass(eq=False)
class Child:
    """A process asked for: the write end of its stdin when one was asked for, its output for
    `on_output` (kept until one is attached), and `ended`, its Usage once it was reaped
    and all its output was delivered, or the BackendError that kept it from starting."""

    key: int
    program: str
    cwd: str | None
    stdin: int | None
    spawner: SpawnerLink
    cgroups: list[tuple[str, str]] | None     # its machine's groups: born in a slot of them
    pid: int = 0                   # known once the spawner says it started
    pidfd: int | None = None       # from then until it ended
    slot: int = 0                  # its cgroup slot, when it has one
    ended: asyncio.Future[Usage] = field(init=False)
    pending: list[tuple[int, bytes]] = field(default_factory=list)
    on_output: OnOutput | None = None

    def __post_init__(self) -> None:
        self.ended = asyncio.get_running_loop().create_future()

    def failed(self, why: BackendError) -> None:
        """It never ran: `ended` says why; the stdin pipe has no reader."""
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None
        self.ended.set_exception(why)

    def attach(self, on_output: OnOutput) -> None:
        self.on_output = on_output
        for fd, data in self.pending:
            on_output(fd, data)
        self.pending.clear()

    def output(self, fd: int, data: bytes) -> None:
        if self.on_output is None:
            self.pending.append((fd, data))
        else:
            self.on_output(fd, data)

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal its whole process group, if it is still running (never a reused pid)."""
        if not self.ended.done():
            self.spawner.send({"op": "kill", "id": self.key, "sig": int(sig)}, [])


class SpawnerLink:
    """The daemon's link to one spawner process: the socket to it and the jobs it runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.sock, self.pid = _connect(os.environ.get(SPAWNER_SOCKET_ENV))
        self.sock.setblocking(False)
        self.loop = loop
        self.keys = itertools.count(1)
        self.children: dict[int, Child] = {}
        self.envs: dict[int, tuple[dict[str, str], int]] = {}
        self.lines: list[bytes] = []
        self.backlog: list[tuple[bytes, list[int]]] = []
        self.flushing = False
        self.alive = True
        self.waiting = False
        loop.add_reader(self.sock.fileno(), self._read)

    def spawn(self, argv: list[str], spec: JobSpec, cwd: str | None, stdin_pipe: bool,
              cgroups: list[tuple[str, str]] | None) -> Child:
        in_r, in_w = os.pipe() if stdin_pipe else (None, None)
        child = Child(next(self.keys), argv[0], cwd, in_w, self, cgroups)
        self.children[child.key] = child
        cred = ([spec.uid, spec.gid, list(spec.groups)]
                if os.geteuid() == 0 and spec.uid != 0 else None)
        self.send({"op": "spawn", "id": child.key, "argv": argv, "cwd": cwd, "cred": cred,
                   "cgroups": cgroups, "stdin": stdin_pipe, "env": self.env_ref(spec.env)},
                  [in_r] if in_r is not None else [])
        return child

    def env_ref(self, env: dict[str, str]) -> int:
        """A connection's jobs share one environment object: it is sent once, then named."""
        known = self.envs.get(id(env))
        if known is not None and known[0] is env:
            return known[1]
        ref = next(self.keys)
        self.send({"op": "env", "id": ref, "env": env}, [])
        self.envs[id(env)] = (env, ref)
        if len(self.envs) > ENV_CACHE:
            _, old = self.envs.pop(next(iter(self.envs)))
            self.send({"op": "forget", "id": old}, [])
        return ref

    def send(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Requests go out together once this turn of the event loop is over, one a line; one
        with descriptors (which are ours to close) goes alone."""
        if not self.alive:
            for fd in fds:
                os.close(fd)
            return
        self.lines.append(jsonline.dumps(msg).encode())
        if fds:
            self._pack(fds)
            self._send_backlog()
        elif not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flushing = False
        if self.alive:
            self._pack([])
            self._send_backlog()

    def _pack(self, fds: list[int]) -> None:
        """Pending lines into packets; the last one carries fds. One too big for a packet
        travels in a memfd."""
        packets: list[list[bytes]] = []
        size = 0
        for line in self.lines:
            if packets and size + len(line) < INLINE_MAX:
                packets[-1].append(line)
                size += len(line) + 1
            else:
                packets.append([line])
                size = len(line)
        self.lines.clear()
        for i, lines in enumerate(packets):
            data = b"\n".join(lines)
            extra = fds if i == len(packets) - 1 else []
            if len(data) > INLINE_MAX:
                memfd = os.memfd_create("router-request", os.MFD_CLOEXEC)
                os.write(memfd, data)
                data, extra = b"@", extra + [memfd]
            self.backlog.append((data, extra))

    def _send_backlog(self) -> None:
        while self.backlog:
            data, fds = self.backlog[0]
            try:
                self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                            array.array("i", fds))] if fds else [])
            except BlockingIOError:
                if not self.waiting:
                    self.loop.add_writer(self.sock.fileno(), self._send_backlog)
                    self.waiting = True
                return
            except OSError:
                fds = [fd for _, queued in self.backlog for fd in queued]
                self.backlog.clear()    # it died: _read says so and fails its jobs
            else:
                self.backlog.pop(0)
            for fd in fds:
                os.close(fd)
        if self.waiting:
            self.loop.remove_writer(self.sock.fileno())
            self.waiting = False

    def _read(self) -> None:
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(PACKET, FDS_SPACE, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return
            except OSError:
                data, anc = b"", []
            pidfds = [fd for level, kind, raw in anc
                      if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                      for fd in memoryview(raw).cast("i")]
            if not data:
                for fd in pidfds:
                    os.close(fd)
                self._died()
                return
            at = 0
            pidfds.reverse()
            while at < len(data):
                kind, size = RECORD.unpack_from(data, at)
                at += RECORD.size
                self._record(kind, data[at:at + size], pidfds)
                at += size

    def _record(self, kind: bytes, payload: bytes, pidfds: list[int]) -> None:
        if kind == b"O":
            key, fd = OUTPUT.unpack_from(payload)
            child = self.children.get(key)
            if child is not None:
                child.output(fd, payload[OUTPUT.size:])
        elif kind == b"S":
            key, pid, slot = STARTED.unpack(payload)
            pidfd = pidfds.pop() if pidfds else None
            child = self.children.get(key)
            if child is not None:
                child.pid, child.pidfd, child.slot = pid, pidfd, slot
            elif pidfd is not None:
                os.close(pidfd)
        elif kind == b"E":
            key, status, utime, stime, maxrss, wall = ENDED.unpack(payload)
            child = self.children.pop(key, None)
            if child is not None:
                child.close_pidfd()
                child.ended.set_result(from_wait(status, utime, stime, maxrss, wall))
        elif kind == b"W":
            (key,) = WARNING.unpack_from(payload)
            child = self.children.get(key)
            log.warning("%s: %s", child.program if child else f"job {key}",
                        payload[WARNING.size:].decode(errors="replace"))
        elif kind == b"X":
            key, errno = FAILED.unpack_from(payload)
            child = self.children.pop(key, None)
            if child is not None:
                why = payload[FAILED.size:].decode(errors="replace")
                child.failed(_why(child.program, child.cwd,
                                  OSError(errno, why) if errno else ValueError(why)))

    def _died(self) -> None:
        """Nothing will see its jobs end: each is killed, and lost rather than measured."""
        if self.alive:
            log.error("the job spawner (pid %d) died; its running jobs are killed and lost",
                      self.pid)
        self.close()
        why = "the job spawner died"
        for child in self.children.values():
            if not child.pid:
                child.failed(BackendError(why))
                continue
            if child.pidfd is not None and holds_pid(child.pidfd):
                kill_group(child.pid)
            if child.cgroups and child.slot:
                dirs = cgroup.slot_dirs(child.cgroups, child.slot)
                if not cgroup.kill_members(lambda: cgroup.members(dirs)):
                    log.warning("%s: members outlived SIGKILL", dirs[0])
            child.close_pidfd()
            child.ended.set_exception(JobLost(f"{why}; the job was killed, its end unseen"))
        self.children.clear()

    def close(self) -> None:
        """Our end closes; the spawner sees it and exits (jobs still running go on)."""
        if not self.alive:
            return
        self.alive = False
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
        for _, fds in self.backlog:
            for fd in fds:
                os.close(fd)
        self.backlog.clear()
        self.sock.close()
        try:
            if self.pid:
                os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _connect(path: str | None) -> tuple[socket.socket, int]:
    """A spawner of our own (pid), or, where the service set $ROUTER_SPAWNER_SOCKET, one that
    systemd starts per connection outside the daemon's sandbox (pid 0: not our child), so
    jobs get the host's normal environment (deploy/systemd/router-spawner.socket)."""
    if path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise BackendError(f"no job spawner at {path}: {exc.strerror}") from None
        return sock, 0
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        argv = [sys.executable, "-I", "-S", "-c", BOOT, ROOT, str(theirs.fileno())]
        pid = os.posix_spawn(sys.executable, argv, dict(os.environ),
                             file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(),
                                            theirs.fileno())])
    return ours, pid


_current: SpawnerLink | None = None


def spawner() -> SpawnerLink:
    """This event loop's spawner, started (again) when it has none alive. One at a time:
    a new event loop (asyncio.run again) closes the last one's."""
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or not _current.alive or _current.loop is not loop:
        if _current is not None:
            _current.close()
        _current = SpawnerLink(loop)
    return _current


def start(argv: list[str], spec: JobSpec, *, cwd: str | None = None,
          stdin_pipe: bool = False, cgroups: list[tuple[str, str]] | None = None) -> Child:
    """Ask for argv to start as spec's user, from inside the event loop. Nothing waits for
    the spawner's answer: a job that could not start ends with a BackendError that says why
    in one line."""
    return spawner().spawn(argv, spec, cwd, stdin_pipe, cgroups)


def close() -> None:
    """Stop the spawner (the daemon's last step)."""
    global _current
    if _current is not None:
        _current.close()
        _current = None


def _why(program: str, cwd: str | None, exc: BaseException) -> BackendError:
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and not os.path.isdir(cwd):
            return BackendError(f"working directory {cwd}: no such directory")
        return BackendError(f"{program}: no such program (in {cwd or '.'})")
    if isinstance(exc, PermissionError):
        return NotExecutable(f"{program}: {exc.strerror}")
    return BackendError(f"cannot start {program}: {exc}")
