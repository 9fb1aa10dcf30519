"""The remote half of the ssh backend: a stdlib-only Python program sent with every job.

It runs on the remote host (needs only `python3` there) with the job's directory and argv as
its arguments, and imports only modules built into the interpreter: `json` and `signal` would
double its start-up (~14 ms of every job). It starts the job as the leader of a new session
(saying so on a marker line, so a failure before that is known to have run nothing), measures it with `wait4` (user + system CPU of the job and every descendant it
waited for), and writes that usage as one marker line on stderr after the job's own output.
When its stdin closes (the job was cancelled, the submitter pressed Ctrl-C or the daemon
died) it kills the job's whole process group: SIGTERM, then SIGKILL 5 s later.
"""

from __future__ import annotations

MARK = "\x1erouter-usage "
STARTED = "\x1erouter-started\n"

SOURCE = r'''
import os, select, sys, time
cwd, argv = sys.argv[1], sys.argv[2:]
try:
    os.chdir(cwd)
except OSError:
    pass
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    os.setsid()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write("router: %s: %s\n" % (argv[0], e.strerror))
        os._exit(127)
sys.stderr.write("\x1erouter-started\n")
sys.stderr.flush()


def kill(sig):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


try:
    pidfd = [os.pidfd_open(pid)]      # wake exactly when the job ends (Linux 5.3+)
except (AttributeError, OSError):
    pidfd = []                        # else poll
watch, deadline = [0] + pidfd, None
while True:
    done, status, ru = os.wait4(pid, os.WNOHANG)
    if done:
        break
    timeout = None if pidfd and deadline is None else 0.05
    ready, _, _ = select.select(watch, [], [], timeout)
    if 0 in ready and not os.read(0, 4096):
        kill(15)                      # SIGTERM; SIGKILL (9) 5 s later
        watch.remove(0)
        deadline = time.monotonic() + 5
    if deadline is not None and time.monotonic() > deadline:
        kill(9)
kill(9)
code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
sys.stderr.write('\x1erouter-usage {"cpu_user_s": %r, "cpu_sys_s": %r, "wall_s": %r, '
                 '"max_rss_kb": %d, "exit": %d, "host": "%s"}\n'
                 % (ru.ru_utime, ru.ru_stime, time.monotonic() - t0, ru.ru_maxrss, code,
                    os.uname()[1]))
'''
