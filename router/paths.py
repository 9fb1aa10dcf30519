"""Where router's files live by default (XDG), so every command agrees without flags."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The XDG data directory, or systemd's StateDirectory when run as a service."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "router"


def store() -> Path:
    return Path(os.environ.get("ROUTER_STORE") or data_dir() / "history.db")


def model() -> Path:
    return Path(os.environ.get("ROUTER_MODEL") or data_dir() / "model.rmod")


def socket() -> Path:
    """The daemon's socket: $ROUTER_SOCKET, systemd's RuntimeDirectory, then XDG_RUNTIME_DIR."""
    explicit = os.environ.get("ROUTER_SOCKET")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    if runtime:
        return Path(runtime.split(":")[0]) / "router.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "router.sock"
    if os.getuid() == 0 or Path("/run/router/router.sock").exists():
        return Path("/run/router/router.sock")
    return Path(f"/tmp/router-{os.getuid()}.sock")


def policy() -> Path | None:
    """$ROUTER_POLICY, then the user's and the system's policy file; None means the demo."""
    explicit = os.environ.get("ROUTER_POLICY")
    if explicit:
        return Path(explicit)
    for candidate in (
        Path(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")) / "router/policy.yaml",
        Path("/etc/router/policy.yaml"),
    ):
        if candidate.exists():
            return candidate
    return None


def demo_policy() -> Path:
    """The embedded default policy (configs/demo.yaml, shipped inside the package)."""
    return Path(__file__).with_name("demo.yaml")
