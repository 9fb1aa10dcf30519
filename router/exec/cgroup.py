"""Each local job in a cgroup of its own: all its processes tracked, counted and killed.

A session leader's `wait4` counts only the descendants it waited for, and killing its process
group misses a child that left the session (a double fork, `setsid`). A cgroup holds every
process the job ever started: its CPU is read from the cgroup (`cpuacct.usage_user/_sys` on
v1, `cpu.stat` on v2), and the cgroup's members are killed at cancel, timeout, drain and when
the leader has ended.

Layout, per hierarchy that matters (v1 here: `cpu` for a machine's quota, `cpuacct` to count;
v2: the unified tree): the daemon's own cgroup (its delegated subtree under systemd) holds one
group per daemon and machine, `router-PID-MACHINE`, which holds one group per job,
`job-KEY`. Named by the daemon's pid, no other daemon (nor `router calibrate`) ever removes
another's. The spawner makes, joins and removes the job groups; it is born in the daemon's
cgroups and joins a job's group just before it spawns the job, so the job is born in it and
nothing it forks escapes. Stdlib only: the spawner imports it.

Without cgroups (not root and no delegation, or no such controller) every job still runs:
its CPU is wait4's and only its session is killed; the daemon logs why once per machine.
"""

from __future__ import annotations

import os
import signal
import time
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "/sys/fs/cgroup"
PERIOD_US = 100_000
KILL_ROUNDS = 50           # kill, then wait up to this many ms for the members to be gone


def own(hierarchy: str) -> str:
    """This process's cgroup in a hierarchy mounted at ROOT/NAME (v1) or at ROOT (v2)."""
    want = os.path.basename(hierarchy)
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if (hierarchy == ROOT and controllers == "") or want in controllers.split(","):
                return hierarchy + path.rstrip("/")
    raise FileNotFoundError(2, "not in this hierarchy", hierarchy)


def hierarchies(quota: bool) -> list[str]:
    """Where a machine's groups go: v1's cpuacct (to count) and cpu (for a quota), the same
    directory when they are mounted together; else the v2 tree."""
    if os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
        return [ROOT]
    found = []
    for name in ("cpuacct", "cpu") if quota else ("cpuacct",):
        path = os.path.realpath(os.path.join(ROOT, name))
        if os.path.isdir(path) and path not in found:
            found.append(path)
    if not found:
        raise FileNotFoundError(2, "no cpuacct or cgroup v2 hierarchy", ROOT)
    return found


def machine_groups(name: str, cpus: float | None) -> list[tuple[str, str]]:
    """(machine group, the daemon's own group) per hierarchy, made now, capped at `cpus`
    CPUs where asked; OSError says why it cannot be done here."""
    pairs = []
    for hierarchy in hierarchies(cpus is not None):
        home = own(hierarchy)
        group = os.path.join(home, f"router-{os.getpid()}-{name}")
        os.makedirs(group, exist_ok=True)
        pairs.append((group, home))
        if cpus is not None:
            _cap(hierarchy, home, group, cpus)
    return pairs


def _cap(hierarchy: str, home: str, group: str, cpus: float) -> None:
    quota = max(1000, int(cpus * PERIOD_US))
    if os.path.exists(os.path.join(group, "cpu.cfs_quota_us")):
        _write(os.path.join(group, "cpu.cfs_period_us"), str(PERIOD_US))
        _write(os.path.join(group, "cpu.cfs_quota_us"), str(quota))
    elif hierarchy == ROOT:
        _write(os.path.join(home, "cgroup.subtree_control"), "+cpu")
        _write(os.path.join(group, "cgroup.subtree_control"), "+cpu")
        _write(os.path.join(group, "cpu.max"), f"{quota} {PERIOD_US}")


def remove_stale(pairs: list[tuple[str, str]]) -> None:
    """Empty groups of daemons that died (kill -9) beside ours: never a live daemon's, and
    never one that still holds processes (what to do with those is a restart's decision)."""
    for _, home in pairs:
        for entry in os.listdir(home):
            parts = entry.split("-", 2)
            if len(parts) == 3 and parts[0] == "router" and parts[1].isdigit() \
                    and not os.path.exists(f"/proc/{parts[1]}"):
                group = os.path.join(home, entry)
                for job in os.listdir(group):
                    if job.startswith("job-"):
                        _rmdir(os.path.join(group, job))
                _rmdir(group)


class JobGroup:
    """One job's cgroup in each hierarchy: `job-KEY` under each machine group."""

    def __init__(self, pairs: list[Any], key: str | int):
        """pairs: (machine group, the daemon's own group) per hierarchy, as made by
        machine_groups (lists once they crossed the spawner's socket)."""
        self.dirs = [os.path.join(group, f"job-{key}") for group, _ in pairs]
        self.homes = [home for _, home in pairs]

    def make(self) -> None:
        for path in self.dirs:
            os.makedirs(path, exist_ok=True)

    def enter(self) -> None:
        """Move the calling process in (what it spawns is born here)."""
        for path in self.dirs:
            _write(os.path.join(path, "cgroup.procs"), "0")

    def leave(self) -> None:
        for home in self.homes:
            _write(os.path.join(home, "cgroup.procs"), "0")

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.dirs:
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    found.update(int(p) for p in f.read().split())
            except OSError:
                continue
        return sorted(found)

    def signal(self, sig: int) -> None:
        """Every member but ourselves: each is in the group now, so its pid is its own."""
        for pid in self.pids():
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, sig)
            except OSError:
                pass

    def kill(self) -> bool:
        """SIGKILL every member until none is left (they may still be forking); True once
        the group is empty."""
        for _ in range(KILL_ROUNDS):
            if not self._others():
                return True
            self.signal(signal.SIGKILL)
            time.sleep(0.001)
        return not self._others()

    def _others(self) -> list[int]:
        return [pid for pid in self.pids() if pid != os.getpid()]

    def cpu(self) -> tuple[float, float] | None:
        """User and system CPU seconds of every process the job ever ran, or None."""
        for path in self.dirs:
            try:
                with open(os.path.join(path, "cpuacct.usage_user")) as f:
                    user = int(f.read()) / 1e9
                with open(os.path.join(path, "cpuacct.usage_sys")) as f:
                    return user, int(f.read()) / 1e9
            except FileNotFoundError:
                pass
            try:
                with open(os.path.join(path, "cpu.stat")) as f:
                    stat = dict(line.split() for line in f)
                return int(stat["user_usec"]) / 1e6, int(stat["system_usec"]) / 1e6
            except (FileNotFoundError, KeyError):
                continue
        return None

    def remove(self) -> list[str]:
        """Kill what is left and remove the groups; what could not be, with why."""
        errors = [] if self.kill() else [f"{self.dirs[0]}: members left after SIGKILL"]
        for path in self.dirs:
            why = _rmdir(path)
            if why:
                errors.append(why)
        return errors


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _rmdir(path: str) -> str | None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    return None


def describe(exc: BaseException) -> str:
    """One line for the log."""
    return f"{getattr(exc, 'filename', None) or ''}: {getattr(exc, 'strerror', None) or exc}"


