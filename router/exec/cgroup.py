"""Each local job in a cgroup of its own: all its processes tracked, counted and killed.

A session leader's `wait4` counts only the descendants it waited for, and killing its process
group misses a child that left the session (a double fork, `setsid`). A cgroup holds every
process the job ever started: its CPU is read from the cgroup (`cpuacct.usage_user/_sys` on
v1, `cpu.stat` on v2), and the cgroup's members are killed at cancel, timeout, drain and when
the leader has ended.

Layout, per hierarchy that matters (v1 here: `cpu` for a machine's quota, `cpuacct` to count;
v2: the unified tree): the daemon's own cgroup (its delegated subtree under systemd) holds one
group per daemon and machine, `router-PID-MACHINE`, which holds one group per running job,
`slot-N`, reused by the next job once empty. Named by the daemon's pid, no other daemon (nor
`router calibrate`) ever removes another's. The spawner makes and fills the slots; it is born
in the daemon's cgroups and enters a slot just before it spawns the job, so the job is born
in it and nothing it forks escapes, then goes back to its own. Stdlib only: the spawner
imports it.

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
                remove_groups([(os.path.join(home, entry), home)])


class Slot:
    """A job's cgroup, `slot-N` under each machine group, kept for the next job once it is
    empty: making and removing a cgroup per job cost several times more than a job's own
    start. Its files stay open, and its CPU counter is read before the job and after it."""

    def __init__(self, pairs: list[Any], n: int):
        """pairs: (machine group, the daemon's own group) per hierarchy, as machine_groups
        made them (lists once they crossed the spawner's socket)."""
        self.n = n
        self.dirs = slot_dirs(pairs, n)
        self.fds: list[int] = []
        for path in self.dirs:
            os.makedirs(path, exist_ok=True)
        try:
            self.enter_fds = [self._open(path, "cgroup.procs", os.O_WRONLY)
                              for path in self.dirs]
            self.procs_fd = self._open(self.dirs[0], "cgroup.procs", os.O_RDONLY)
            self.usage_fds = self._usage()
        except OSError:
            self.close()
            raise
        self.base: tuple[float, float] | None = None

    def _open(self, path: str, name: str, flags: int) -> int:
        fd = os.open(os.path.join(path, name), flags | os.O_CLOEXEC)
        self.fds.append(fd)
        return fd

    def _usage(self) -> list[int]:
        """The precise total and the user/system split (v1 counts the split by ticks, so
        only its ratio is used): cpuacct.usage and cpuacct.usage_all, or v2's cpu.stat."""
        for path in self.dirs:
            if os.path.exists(os.path.join(path, "cpuacct.usage_all")):
                return [self._open(path, "cpuacct.usage", os.O_RDONLY),
                        self._open(path, "cpuacct.usage_all", os.O_RDONLY)]
            if os.path.exists(os.path.join(path, "cpu.stat")):   # v1's cpu.stat: throttling
                fd = self._open(path, "cpu.stat", os.O_RDONLY)
                if b"usage_usec" in os.pread(fd, 1 << 16, 0):
                    return [fd]
        return []

    def enter(self) -> None:
        """Move the calling process in: what it spawns now is born here."""
        for fd in self.enter_fds:
            os.write(fd, b"0")

    def mark(self) -> None:
        """The job's CPU counts from here: read while the slot is empty, before we enter it
        (read after the spawn, a job running while we wait for the CPU would lose its
        start). Our own few system calls inside it are charged to the job."""
        self.base = self._cpu_total()

    def pids(self) -> list[int]:
        return [int(p) for p in os.pread(self.procs_fd, 1 << 16, 0).split()]

    def signal(self, sig: int) -> None:
        """Every member but ourselves: each is in the group now, so its pid is its own."""
        signal_members(self.pids(), sig)

    def kill(self) -> bool:
        """SIGKILL every member until none is left; True once the group is empty."""
        return kill_members(self.pids)

    def cpu(self) -> tuple[float, float] | None:
        """User and system CPU seconds of every process the job ran, or None."""
        total = self._cpu_total()
        if total is None or self.base is None:
            return None
        return total[0] - self.base[0], total[1] - self.base[1]

    def _cpu_total(self) -> tuple[float, float] | None:
        """(user, system) CPU seconds so far: the precise total, split by the kernel's ratio."""
        if not self.usage_fds:
            return None
        texts = [os.pread(fd, 1 << 16, 0).decode() for fd in self.usage_fds]
        if len(texts) == 2:                                    # v1: ns, split per CPU
            total = int(texts[0]) / 1e9
            rows = [line.split() for line in texts[1].splitlines()[1:] if line]
            user, system = sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)
        else:                                                  # v2: us
            stat = dict(line.split() for line in texts[0].splitlines() if line)
            total = int(stat["usage_usec"]) / 1e6
            user, system = int(stat["user_usec"]), int(stat["system_usec"])
        share = user / (user + system) if user + system else 1.0
        return total * share, total * (1 - share)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


class SlotPool:
    """The spawner's slots for one machine, and its way back to its own cgroups."""

    def __init__(self, pairs: list[Any]):
        self.pairs = pairs
        self.free: list[Slot] = []
        self.made = 0
        self.home_fds = [os.open(os.path.join(home, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
                         for _, home in pairs]

    def take(self) -> Slot:
        if self.free:
            return self.free.pop()
        self.made += 1
        return Slot(self.pairs, self.made)

    def leave(self) -> None:
        """Back into our own cgroups, so our CPU is never a job's."""
        for fd in self.home_fds:
            os.write(fd, b"0")

    def give(self, slot: Slot) -> bool:
        """A slot whose job has ended: kept once empty; False when members outlived SIGKILL
        (it is then retired, never reused)."""
        if slot.kill():
            slot.base = None
            self.free.append(slot)
            return True
        slot.close()
        return False


def slot_dirs(pairs: list[Any], n: int) -> list[str]:
    return [os.path.join(group, f"slot-{n}") for group, _ in pairs]


def members(dirs: list[str]) -> list[int]:
    found: set[int] = set()
    for path in dirs:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                found.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return sorted(found)


def signal_members(pids: list[int], sig: int) -> None:
    for pid in pids:
        if pid != os.getpid():
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def kill_members(pids: Any) -> bool:
    """SIGKILL what pids() lists (they may still be forking) until it lists nobody but us,
    waiting a little for the dying; True once it is empty."""
    for _ in range(KILL_ROUNDS):
        left = [pid for pid in pids() if pid != os.getpid()]
        if not left:
            return True
        signal_members(left, signal.SIGKILL)
        time.sleep(0.001)
    return not [pid for pid in pids() if pid != os.getpid()]


def remove_groups(pairs: list[Any]) -> list[str]:
    """A machine's groups and their slots, once empty; what could not be removed, and why."""
    errors = []
    for group, _ in pairs:
        try:
            entries = os.listdir(group)
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.startswith(("slot-", "job-")):
                why = _rmdir(os.path.join(group, entry))
                errors += [why] if why else []
        why = _rmdir(group)
        errors += [why] if why else []
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


