"""The spawner: a small process, stdlib only, that starts, watches and reaps local jobs.

Starting a process from the daemon cost it the GIL and thread hand-offs, and each job's two
pipes cost it a dozen system calls and event-loop callbacks; together they bounded it near
600 jobs/s on two cores. Here one single-threaded process does that work beside it:
posix_spawn (vfork and exec, no Python in the child), the job's stdout and stderr pipes and
a pidfd in one epoll, and wait4 for the rusage. The daemon sees only messages.

Run as `python -I -S spawner.py FD`, FD a SOCK_SEQPACKET socket to the daemon; it exits when
the daemon closes it. Requests are JSON lines, several a packet (a packet too big for the
socket travels in a memfd passed as its last descriptor, the packet saying "@"):
  {"op": "env", "id", "env"}   an environment, named for the spawns that use it
  {"op": "forget", "id"}       the daemon will not name it again
  {"op": "spawn", "id", "argv", "cwd", "env": ID, "cred": [uid, gid, groups] | null,
   "cgroup": DIR | null, "stdin": bool}   alone in its packet with the stdin pipe's read
                                          end when "stdin"
  {"op": "kill", "id", "sig"}
Replies are binary records (see the structs below), several a packet: S once a job started,
X when it could not start, O for what it wrote, E once it was reaped and all its output sent.
"""

from __future__ import annotations

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

MAX_FDS = 4
PACKET = 1 << 16
RECORD = struct.Struct("<cI")              # kind, payload length
STARTED = struct.Struct("<Ii")             # b"S": id, pid
FAILED = struct.Struct("<Ii")              # b"X": id, errno; then the message
ENDED = struct.Struct("<Iiddqd")           # b"E": id, status, utime, stime, maxrss, wall
OUTPUT = struct.Struct("<IB")              # b"O": id, fd; then the bytes
READ = PACKET - RECORD.size - OUTPUT.size
# Ignored or handled here, so a job would inherit them ignored: it gets the defaults.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM,
                   signal.SIGHUP)


def resolve(program: str, env: dict[str, str]) -> str:
    """The file execvpe would run for `program` under the job's PATH (we exec paths only)."""
    if "/" in program:
        return program
    for directory in os.get_exec_path(env):
        path = os.path.join(directory, program)
        if os.access(path, os.X_OK, effective_ids=True) and not os.path.isdir(path):
            return path
    raise FileNotFoundError(2, "No such file or directory", program)


class Job:
    __slots__ = ("id", "pid", "pidfd", "pipes", "popen", "reply", "started")

    def __init__(self, job_id: int, pid: int, pipes: dict[int, int], popen: object = None):
        self.id = job_id
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.pipes = pipes                  # read end -> 1 or 2
        self.started = time.monotonic()
        self.reply: bytes | None = None
        self.popen = popen


class Spawner:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.epoll = select.epoll()
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        self.home = os.getcwd()
        self.cwd: tuple | None = (self.home, None)     # where we are, and as whom we got in
        self.by_fd: dict[int, Job] = {}     # pidfd and pipe read ends -> job
        self.by_id: dict[int, Job] = {}
        self.out: list[bytes] = []          # records for the daemon, in order
        self.envs: dict[int, dict[str, str]] = {}
        self.todo: deque[tuple[dict, list[int]]] = deque()

    def run(self) -> None:
        """A packet's requests, then whatever ended meanwhile, in one reply; taking ended
        jobs between two spawns sent more packets and gained nothing measurable."""
        while True:
            for fd, _ in self.epoll.poll():
                if fd == self.sock.fileno():
                    if not self.receive():
                        return
                    while self.todo:
                        req, fds = self.todo.popleft()
                        try:
                            self.handle(req, fds)
                        finally:
                            for passed in fds:
                                os.close(passed)
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

    def handle(self, req: dict, fds: list[int]) -> None:
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
                _killpg(job.pid, req["sig"])
            return
        try:
            job = self.spawn(req, fds[0] if req["stdin"] else None)
        except (OSError, ValueError) as exc:
            why = (getattr(exc, "strerror", None) or str(exc)).encode()
            self.record(b"X", FAILED.pack(req["id"], getattr(exc, "errno", None) or 0) + why)
            return
        if req["cgroup"]:
            try:
                with open(os.path.join(req["cgroup"], "cgroup.procs"), "w") as f:
                    f.write(str(job.pid))
            except OSError:
                pass
        self.by_id[job.id] = job
        for fd in (job.pidfd, *job.pipes):
            self.by_fd[fd] = job
            self.epoll.register(fd, select.EPOLLIN)
        self.record(b"S", STARTED.pack(job.id, job.pid))

    def spawn(self, req: dict, stdin: int | None) -> Job:
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
                pid = os.posix_spawn(program, argv, env, setsid=True,
                                     setsigdef=DEFAULT_SIGNALS, file_actions=[
                                         (os.POSIX_SPAWN_DUP2, out_w, 1),
                                         (os.POSIX_SPAWN_DUP2, err_w, 2),
                                         (os.POSIX_SPAWN_DUP2, stdin, 0) if stdin is not None
                                         else (os.POSIX_SPAWN_OPEN, 0, "/dev/null",
                                               os.O_RDONLY, 0)])
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        return Job(req["id"], pid, {out_r: 1, err_r: 2}, popen)

    def chdir(self, cwd: str, cred: list | None) -> None:
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

    def popen_as(self, program: str, argv: list[str], env: dict[str, str], cred: list,
                 out: int, err: int, stdin: int | None) -> object:
        """Another user's job: posix_spawn cannot change uid, so fork: gid, groups, then uid."""
        import subprocess
        return subprocess.Popen(argv, executable=program, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL if stdin is None else stdin,
                                start_new_session=True, user=cred[0], group=cred[1],
                                extra_groups=cred[2])

    def read(self, job: Job, fd: int) -> None:
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

    def reap(self, job: Job) -> None:
        _, status, ru = os.wait4(job.pid, 0)
        if job.popen is not None:
            job.popen.returncode = status   # reaped here: subprocess must not wait for it
        _killpg(job.pid, signal.SIGKILL)    # what it left behind in its session goes with it
        job.reply = ENDED.pack(job.id, status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss,
                               time.monotonic() - job.started)
        self.forget(job, job.pidfd)

    def forget(self, job: Job, fd: int) -> None:
        """fd is done with; once the pidfd and both pipes are, the job's end goes out."""
        self.epoll.unregister(fd)
        os.close(fd)
        del self.by_fd[fd]
        job.pipes.pop(fd, None)
        if job.reply is not None and not job.pipes:
            self.record(b"E", job.reply)
            del self.by_id[job.id]

    def record(self, kind: bytes, payload: bytes) -> None:
        self.out.append(RECORD.pack(kind, len(payload)) + payload)

    def flush(self) -> None:
        """What is waiting goes out in order, in as few packets as it fits in; the daemon
        always reads, so a full socket only makes us wait."""
        packet: list[bytes] = []
        size = 0
        for item in self.out:
            if packet and size + len(item) > PACKET:
                self.sock.sendall(b"".join(packet))
                packet, size = [], 0
            packet.append(item)
            size += len(item)
        if packet:
            self.sock.sendall(b"".join(packet))
        self.out.clear()


@contextlib.contextmanager
def _acting_as(cred: list | None) -> Iterator[None]:
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


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_memfd(fd: int) -> bytes:
    try:
        return os.pread(fd, os.fstat(fd).st_size, 0)
    finally:
        os.close(fd)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)   # the daemon decides when we stop: at its EOF
    fd = int(sys.argv[1])
    os.closerange(3, fd)                # what the daemon's parent left open is not for jobs
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
    os.set_inheritable(fd, False)       # inherited by us, never by a job
    try:
        Spawner(socket.socket(fileno=fd)).run()
    except (BrokenPipeError, ConnectionResetError):
        pass                            # the daemon died (kill -9): its EOF, said otherwise


if __name__ == "__main__":
    main()
