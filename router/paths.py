"""Where router's files live: the one resolver every command and the daemon use, so that
`router retrain` (the timer), `train`, `report` and the daemon read and write the same files.

Each path is, in order: the command's flag, the policy's `daemon.` key, the environment
(`ROUTER_STORE`, `ROUTER_MODEL`), then the XDG data directory. Plain strings and os.path: this
is on the submit path, where pathlib alone costs ~13 ms.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False   # typing costs the submit path ~5 ms; Any is an annotation only
if TYPE_CHECKING:
    from typing import Any


def data_dir() -> str:
    """The XDG data directory, or systemd's StateDirectory when run as a service."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return state.split(":")[0]
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "router")


def _configured(policy: Any | None, key: str) -> str | None:
    return policy.daemon.get(key) if policy is not None else None


def store(flag: str | None = None, policy: Any | None = None) -> str:
    """The history file: flag, the policy's daemon.store, $ROUTER_STORE, the XDG data dir."""
    return (flag or _configured(policy, "store") or os.environ.get("ROUTER_STORE")
            or os.path.join(data_dir(), "history.db"))


def model(flag: str | None = None, policy: Any | None = None) -> str:
    """The model file: flag, the policy's daemon.model, $ROUTER_MODEL, the XDG data dir."""
    return (flag or _configured(policy, "model") or os.environ.get("ROUTER_MODEL")
            or os.path.join(data_dir(), "model.rmod"))


SYSTEM_SOCKET = "/run/router/router.sock"


def socket() -> str:
    """Where a daemon started without --socket listens: $ROUTER_SOCKET, systemd's
    RuntimeDirectory, then XDG_RUNTIME_DIR, then the system's, then the user's data directory:
    never a world-writable one such as /tmp, where another user could create the name first
    and listen. Clients search more widely: client_sockets()."""
    explicit = os.environ.get("ROUTER_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return os.path.join(runtime.split(":")[0], "router.sock")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "router.sock")
    if os.getuid() == 0 or os.path.exists(SYSTEM_SOCKET):
        return SYSTEM_SOCKET
    return os.path.join(data_dir(), "router.sock")


def client_sockets() -> list[str]:
    """Where a client looks for a daemon, in order, taking the first that answers:
    $ROUTER_SOCKET alone when set; else the user's own daemon ($XDG_RUNTIME_DIR, systemd's
    RuntimeDirectory), the system daemon's /run/router/router.sock, the data directory's.
    A login with XDG_RUNTIME_DIR but no daemon of its own thus still finds the system's."""
    explicit = os.environ.get("ROUTER_SOCKET")
    if explicit:
        return [explicit]
    found: list[str] = []
    for base in (os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0],
                 os.environ.get("XDG_RUNTIME_DIR")):
        if base:
            found.append(os.path.join(base, "router.sock"))
    found += [SYSTEM_SOCKET, os.path.join(data_dir(), "router.sock")]
    return list(dict.fromkeys(found))


def private_dir(path: str, uid: int, gid: int) -> str:
    """A directory only uid may use, made for it by us (root) or by uid itself. In a shared
    directory such as /tmp another user could have made the name first: that is refused."""
    import stat
    try:
        os.mkdir(path, 0o700)
        if os.geteuid() == 0:
            os.chown(path, uid, gid)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
            from router.errors import BackendError
            raise BackendError(f"{path} is not a private directory of uid {uid}: remove it")
    return path


def policy() -> str | None:
    """$ROUTER_POLICY, then the user's and the system's policy file; None means the demo."""
    explicit = os.environ.get("ROUTER_POLICY")
    if explicit:
        return explicit
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    for candidate in (os.path.join(config, "router", "policy.yaml"), "/etc/router/policy.yaml"):
        if os.path.exists(candidate):
            return candidate
    return None


def demo_policy() -> str:
    """The embedded default policy (configs/demo.yaml, shipped inside the package)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.yaml")
