"""One Usage, one exit value convention, one cost: what every runner ends in."""

from __future__ import annotations

import os
import signal
import subprocess

from router.exec.usage import Usage, cost, exit_of, exit_value, from_wait


def _status(argv: list[str]) -> int:
    pid = os.posix_spawn(argv[0], argv, {})
    return os.waitpid(pid, 0)[1]


def test_a_wait_status_becomes_the_exit_code_or_minus_the_signal():
    assert exit_value(_status(["/bin/sh", "-c", "exit 3"])) == 3
    assert exit_value(_status(["/bin/sh", "-c", "kill -TERM $$"])) == -signal.SIGTERM
    assert exit_of(3) == 3 and exit_of(0, 9) == -9     # Slurm's ExitCode "0:9"


def test_cost_is_cpu_times_speed_rounded_like_the_history():
    u = Usage(0.1234567, 0.2, 1.0, 100, 0)
    assert (u.cpu_user_s, u.cpu_s) == (0.123457, 0.323457)
    assert u.cost(2.0) == cost(u.cpu_s, 2.0) == 0.646914


def test_from_wait_takes_what_wait4_gave():
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 5"])
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = status
    u = from_wait(status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, 0.5)
    assert (u.exit, u.wall_s, u.max_rss_kb) == (5, 0.5, ru.ru_maxrss)
    assert set(u.to_dict()) == set(Usage.__slots__)
