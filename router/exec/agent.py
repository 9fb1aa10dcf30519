"""The remote half of the ssh backend: a stdlib-only agent, one per user and host.

The daemon starts it once over the host's master connection (`ssh host python3 -S -c AGENT`)
and sends it jobs as JSON lines on its stdin, so a job pays neither a handshake nor an ssh
client and a Python start (~30 ms together): only a fork and an exec on the remote host.
For each job it forks a session leader (its whole process group is the job), streams the
job's stdout and stderr back as lines tagged with the job's key, measures it with `wait4`
(user + system CPU of the job and every descendant it waited for) and reports that with the
exit code or signal. `kill` signals a job's group (SIGTERM, then SIGKILL 5 s later). When
its stdin closes (the daemon stopped or died, or the connection broke) it does that to every
job and exits. It needs only `python3` on the remote host.

Requests:  {"op": "run", "key", "cwd", "argv"}   {"op": "kill", "key"}
Events:    {"ev": "ready", "host"}   {"ev": "started", "key"}
           {"ev": "out", "key", "fd": 1|2, "data": base64}   {"ev": "exit", "key", "usage"}
"""

from __future__ import annotations

AGENT = r'''
import binascii, json, os, select, sys, time
jobs, owner, buf, stdin_open = {}, {}, b"", True
KILL_AFTER = 5.0


def send(msg):
    data = (json.dumps(msg) + "\n").encode()
    while data:
        data = data[os.write(1, data):]


def run(key, cwd, argv):
    (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(w1, 1)
        os.dup2(w2, 2)
        try:
            os.chdir(cwd)
        except OSError:
            pass
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            os.write(2, ("router: %s: %s\n" % (argv[0], e.strerror)).encode())
        os._exit(127)
    os.close(w1)
    os.close(w2)
    os.set_blocking(r1, False)            # a descriptor number may be reused within one
    os.set_blocking(r2, False)            # select round: never block on a stale "ready"
    pidfd = os.pidfd_open(pid)
    jobs[key] = {"pid": pid, "t0": time.monotonic(), "open": 2, "usage": None, "kill_at": None}
    owner.update({r1: (key, 1), r2: (key, 2), pidfd: (key, 0)})
    send({"ev": "started", "key": key})


def kill(job, sig):
    try:
        os.killpg(job["pid"], sig)
    except ProcessLookupError:            # forked but not yet its own session
        try:
            os.kill(job["pid"], sig)
        except OSError:
            pass
    except OSError:
        pass


def ended(job, pidfd):
    done, status, ru = os.wait4(job["pid"], os.WNOHANG)
    if not done:
        return False
    os.close(pidfd)
    kill(job, 9)                          # what it left in its session goes with it
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    job["usage"] = {"cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime,
                    "wall_s": time.monotonic() - job["t0"], "max_rss_kb": ru.ru_maxrss,
                    "exit": code}
    return True


def readable(fd):
    global buf, stdin_open
    if fd == 0:
        data = os.read(0, 65536)
        if not data:
            stdin_open = False
            for job in jobs.values():
                kill(job, 15)
                job["kill_at"] = job["kill_at"] or time.monotonic() + KILL_AFTER
        *lines, buf = (buf + data).split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if msg["op"] == "run":
                run(msg["key"], msg["cwd"], msg["argv"])
            elif msg["key"] in jobs:
                kill(jobs[msg["key"]], 15)
                jobs[msg["key"]]["kill_at"] = time.monotonic() + KILL_AFTER
        return
    key, kind = owner[fd]
    job = jobs[key]
    if kind == 0:
        if not ended(job, fd):
            return
        del owner[fd]
    else:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            send({"ev": "out", "key": key, "fd": kind,
                  "data": binascii.b2a_base64(data, newline=False).decode()})
            return
        del owner[fd]
        os.close(fd)
        job["open"] -= 1
    if job["usage"] is not None and job["open"] == 0:
        del jobs[key]
        send({"ev": "exit", "key": key, "usage": job["usage"]})


send({"ev": "ready", "host": os.uname()[1]})
while stdin_open or jobs:
    now = time.monotonic()
    for job in jobs.values():
        if job["kill_at"] is not None and now >= job["kill_at"] and job["usage"] is None:
            kill(job, 9)
            job["kill_at"] = None
    waits = [j["kill_at"] - now for j in jobs.values() if j["kill_at"] is not None]
    ready, _, _ = select.select(([0] if stdin_open else []) + list(owner), [], [],
                                max(0.0, min(waits)) if waits else None)
    for fd in ready:
        if fd == 0 or fd in owner:
            readable(fd)
'''
