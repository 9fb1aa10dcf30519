"""The spawner: a small process, stdlib only, that starts, watches and reaps local jobs.

One end of a pipe whose other end is `spawn.py`: there the daemon's `SpawnerLink` sends
requests and turns replies into each job's `Child`; here a `SpawnerLoop` serves them, one
`JobProcess` per job. Starting a process from the daemon cost it the GIL and thread
hand-offs, and each job's two pipes cost it a dozen system calls and event-loop callbacks;
together they bounded it near 600 jobs/s on two cores. Here one single-threaded process does
that work beside it: posix_spawn (vfork and exec, no Python in the child), the job's stdout
and stderr pipes and a pidfd in one epoll, and wait4 for the rusage.

Started by spawn.py as `python -I -S -c BOOT ROOT FD` (no environment, no site, only the
package root on sys.path, so it imports nothing of router but `process`), or by systemd as
`python -I -m router.exec.spawner 3` on a connection it accepted
(deploy/systemd/router-spawner.socket). FD is a SOCK_SEQPACKET socket to the daemon; it
exits when the daemon closes it. Requests are JSON lines, several a packet (a packet too big
for the socket travels in a memfd passed as its last descriptor, the packet saying "@"):
  {"op": "env", "id", "env"}   an environment, named for the spawns that use it
  {"op": "forget", "id"}       the daemon will not name it again
  {"op": "spawn", "id", "argv", "cwd", "env": ID, "cred": [uid, gid, groups] | null,
   "cgroups": [[MACHINE_GROUP, OWN_GROUP], ...] | null, "stdin": bool}
      alone in its packet with the stdin pipe's read end when "stdin"; with cgroups, the
      job is born in a slot-N under each machine group (see cgroup.py), its members are
      signalled with it, counted and killed when it ends
  {"op": "kill", "id", "sig"}
Replies are binary records (see the structs below), several a packet: S once a job started
(its pidfd goes with the packet, one per S record in order, so the daemon can still kill
its jobs if we die, without ever naming a reused pid), X when it could not start, O for
what it wrote, E once it was reaped and all its output sent (its CPU the cgroup's when it
had one), W for what went wrong that the daemon should log.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from router.exec.cgroup import Slot, SlotPool, describe
from router.exec.process import kill_group, reap, resolve, spawn_session

MAX_FDS = 4                                # descriptors a request may carry
PACKET_FDS = 250                           # pidfds a reply packet may carry (SCM_MAX_FD 253)
PACKET = 1 << 16
RECORD = struct.Struct("<cI")              # kind, payload length
STARTED = struct.Struct("<Iii")            # b"S": id, pid, cgroup slot or 0 (its pidfd
                                           # rides with the packet)
FAILED = struct.Struct("<Ii")              # b"X": id, errno; then the message
WARNING = struct.Struct("<I")              # b"W": id; then what went wrong (for the log)
ENDED = struct.Struct("<Iiddqd")           # b"E": id, status, utime, stime, maxrss, wall
OUTPUT = struct.Struct("<IB")              # b"O": id, fd; then the bytes
READ = PACKET - RECORD.size - OUTPUT.size
BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
        "from router.exec.spawner import main; main()")


class JobProcess:
    """One job as the spawner sees it: its session leader, pidfd and output pipes."""

    __slots__ = ("id", "pid", "pidfd", "pipes", "popen", "reply", "started", "placed")

    def __init__(self, job_id: int, pid: int, pipes: dict[int, int], popen: object = None,
                 placed: tuple[SlotPool, Slot] | None = None):
        self.id = job_id
        self.placed = placed                # its machine's slot pool and its slot
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.pipes = pipes                  # read end -> 1 or 2
        self.started = time.monotonic()
        self.reply: bytes | None = None
        self.popen = popen


class SpawnerLoop:
    """The spawner's one loop: requests from the daemon, and its jobs' pipes and pidfds."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.epoll = select.epoll()
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.home = os.getcwd()
        self.cwd: tuple[Any, ...] | None = (self.home, None)   # where we are, as whom
        self.by_fd: dict[int, JobProcess] = {}  # pidfd and pipe read ends -> job
        self.by_id: dict[int, JobProcess] = {}
        self.out: list[tuple[bytes, int | None]] = []   # records for the daemon, with a pidfd
        self.envs: dict[int, dict[str, str]] = {}
        self.todo: deque[tuple[dict[str, Any], list[int]]] = deque()
        self.pools: dict[tuple[str, ...], SlotPool] = {}   # by machine groups

    def run(self) -> None:
        """A packet's requests, then whatever ended meanwhile, in one reply; taking ended
        jobs between two spawns sent more packets and gained nothing measurable."""
        while True:
            for fd, _ in self.epoll.poll():
                if fd == self.sock.fileno():
                    if not self.receive():
                        return
                    self.handle_all()
                    continue
                job = self.by_fd.get(fd)
                if job is None:
                    continue
                if fd == job.pidfd:
                    self.reap(job)
                else:
                    self.read(job, fd)
            self.flush()

    def receive(self) -> bool:
        """Every request waiting now, in order; False once the daemon has gone."""
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(PACKET, socket.CMSG_SPACE(4 * MAX_FDS),
                                                    socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not data:
                return False
            fds = [fd for level, kind, raw in anc
                   if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                   for fd in memoryview(raw).cast("i")]
            if data == b"@":
                data = _read_memfd(fds.pop())
            lines = data.split(b"\n")
            for line in lines[:-1]:
                self.todo.append((json.loads(line), []))
            self.todo.append((json.loads(lines[-1]), fds))

    def handle_all(self) -> None:
        while self.todo:
            req, fds = self.todo.popleft()
            try:
                self.handle(req, fds)
            finally:
                for passed in fds:
                    os.close(passed)

    def handle(self, req: dict[str, Any], fds: list[int]) -> None:
        """One request, with the descriptors that came with it (ours to close)."""
        op = req["op"]
        if op == "env":
            self.envs[req["id"]] = req["env"]
            return
        if op == "forget":
            self.envs.pop(req["id"], None)
            return
        if op == "kill":
            job = self.by_id.get(req["id"])
            if job is not None and job.reply is None:
                kill_group(job.pid, req["sig"])
                if job.placed is not None:
                    job.placed[1].signal(req["sig"])
            return
        try:
            job = self.spawn(req, fds[0] if req["stdin"] else None)
        except (OSError, ValueError) as exc:
            why = (getattr(exc, "strerror", None) or str(exc)).encode()
            self.record(b"X", FAILED.pack(req["id"], getattr(exc, "errno", None) or 0) + why)
            return
        self.by_id[job.id] = job
        for fd in (job.pidfd, *job.pipes):
            self.by_fd[fd] = job
            self.epoll.register(fd, select.EPOLLIN)
        slot = job.placed[1].n if job.placed else 0
        self.record(b"S", STARTED.pack(job.id, job.pid, slot), job.pidfd)

    def spawn(self, req: dict[str, Any], stdin: int | None) -> JobProcess:
        """The job's process, born in a cgroup slot when its machine has cgroups."""
        placed = self.place(req)
        try:
            pid, pipes, popen = self.spawn_process(req, stdin)
        except BaseException:
            if placed is not None and self.leave(req["id"], placed[0]):
                placed[0].give(placed[1])
            raise
        if placed is not None:
            self.leave(req["id"], placed[0])
        return JobProcess(req["id"], pid, pipes, popen, placed)

    def place(self, req: dict[str, Any]) -> tuple[SlotPool, Slot] | None:
        """A free slot of the job's machine, entered by us (so the job is born there)."""
        pairs = req.get("cgroups")
        if not pairs:
            return None
        key = tuple(group for group, _ in pairs)
        pool = self.pools.get(key)
        try:
            if pool is None:
                pool = self.pools[key] = SlotPool(pairs)
            slot = pool.take()
            slot.mark()
            slot.enter()
        except OSError as exc:
            self.warn(req["id"], [f"no cgroup for this job: {describe(exc)}"])
            if pool is not None:
                self.leave(req["id"], pool)
            return None
        return pool, slot

    def leave(self, job_id: int, pool: SlotPool) -> bool:
        try:
            pool.leave()
        except OSError as exc:
            self.warn(job_id, [f"cannot leave the job's cgroup: {describe(exc)}"])
            return False
        return True

    def warn(self, job_id: int, errors: list[str]) -> None:
        for error in errors:
            self.record(b"W", WARNING.pack(job_id) + error.encode())

    def spawn_process(self, req: dict[str, Any],
                      stdin: int | None) -> tuple[int, dict[int, int], Any]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            argv, env, cred = req["argv"], self.envs[req["env"]], req["cred"]
            if cred and (os.geteuid() != 0 or cred[0] == 0):
                cred = None
            with _acting_as(cred):
                self.chdir(req["cwd"] or self.home, cred)
                program = resolve(argv[0], env)
            popen = None
            if cred:
                popen = self.popen_as(program, argv, env, cred, out_w, err_w, stdin)
                pid = popen.pid
            else:
                pid = spawn_session(program, argv, env, stdin=stdin, stdout=out_w,
                                    stderr=err_w)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        return pid, {out_r: 1, err_r: 2}, popen

    def chdir(self, cwd: str, cred: list[Any] | None) -> None:
        """Enter cwd with the job's rights (the caller acts as its user): as root we would let
        a user into a directory they cannot search, and our errors would tell them what lies
        there. The child inherits it; a directory entered for one user is entered again for
        another, since what one may search another may not."""
        if not cwd.startswith("/"):
            raise ValueError(f"cwd {cwd!r} is not an absolute path")
        key = (cwd, None if cred is None else (cred[0], cred[1], tuple(cred[2])))
        if key == self.cwd:
            return
        self.cwd = None             # unknown until chdir succeeds
        os.chdir(cwd)
        self.cwd = key

    def popen_as(self, program: str, argv: list[str], env: dict[str, str], cred: list[Any],
                 out: int, err: int, stdin: int | None) -> Any:
        """Another user's job: posix_spawn cannot change uid, so fork: gid, groups, then uid."""
        import subprocess
        return subprocess.Popen(argv, executable=program, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL if stdin is None else stdin,
                                start_new_session=True, user=cred[0], group=cred[1],
                                extra_groups=cred[2])

    def read(self, job: JobProcess, fd: int) -> None:
        try:
            data = os.read(fd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.record(b"O", OUTPUT.pack(job.id, job.pipes[fd]) + data)
            return
        self.forget(job, fd)

    def reap(self, job: JobProcess) -> None:
        status, ru = reap(job.pid)
        if job.popen is not None:
            job.popen.returncode = status   # reaped here: subprocess must not wait for it
        cpu = (ru.ru_utime, ru.ru_stime)
        if job.placed is not None:          # what left the session goes too, and counts
            pool, slot = job.placed
            slot.kill()
            cpu = slot.cpu() or cpu
            if not pool.give(slot):
                self.warn(job.id, [f"{slot.dirs[0]}: members outlived SIGKILL; slot retired"])
        job.reply = ENDED.pack(job.id, status, *cpu, ru.ru_maxrss, time.monotonic() - job.started)
        self.forget(job, job.pidfd)

    def forget(self, job: JobProcess, fd: int) -> None:
        """fd is done with; once the pidfd and both pipes are, the job's end goes out."""
        self.epoll.unregister(fd)
        os.close(fd)
        del self.by_fd[fd]
        job.pipes.pop(fd, None)
        if job.reply is not None and not job.pipes:
            self.record(b"E", job.reply)
            del self.by_id[job.id]

    def record(self, kind: bytes, payload: bytes, pidfd: int | None = None) -> None:
        self.out.append((RECORD.pack(kind, len(payload)) + payload, pidfd))

    def flush(self) -> None:
        """What is waiting goes out in order, in as few packets as it fits in; the daemon
        always reads, so a full socket only makes us wait."""
        packet: list[bytes] = []
        fds: list[int] = []
        size = 0
        for item, pidfd in self.out:
            if packet and (size + len(item) > PACKET or len(fds) == PACKET_FDS):
                self._send(packet, fds)
                packet, fds, size = [], [], 0
            packet.append(item)
            size += len(item)
            if pidfd is not None:
                fds.append(pidfd)
        if packet:
            self._send(packet, fds)
        self.out.clear()

    def _send(self, packet: list[bytes], fds: list[int]) -> None:
        if fds:
            self.sock.sendmsg([b"".join(packet)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    array.array("i", fds))])
        else:
            self.sock.sendall(b"".join(packet))


@contextlib.contextmanager
def _acting_as(cred: list[Any] | None) -> Iterator[None]:
    """The user's effective ids and groups (what the kernel checks) for a chdir and a PATH
    lookup, then root's again; we are one thread, so nothing else runs as the user meanwhile."""
    if cred is None:
        yield
        return
    groups = os.getgroups()
    os.setgroups(cred[2])
    os.setegid(cred[1])
    os.seteuid(cred[0])
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


def _read_memfd(fd: int) -> bytes:
    try:
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)   # the daemon decides when we stop: at its EOF
    fd = int(sys.argv[-1])
    os.closerange(3, fd)                # what the daemon's parent left open is not for jobs
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
    os.set_inheritable(fd, False)       # inherited by us, never by a job
    sock = socket.socket(fileno=fd)
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid not in (0, os.getuid()):     # socket-activated: only root or ourselves may ask
        sys.exit(f"router spawner: refused a connection from uid {uid}")
    try:
        SpawnerLoop(sock).run()
    except (BrokenPipeError, ConnectionResetError):
        pass                            # the daemon died (kill -9): its EOF, said otherwise


if __name__ == "__main__":
    main()
