"""The options several command groups share: where the history, model, policy and socket
are (flag, else the environment, else the defaults of router.paths), the lines read from
stdin, and `--since`. Each command module imports these; none imports another command module."""

from __future__ import annotations

import sys
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable
    from typing import Any

REMAINDER = "..."          # argparse.REMAINDER, without importing argparse on the submit path


def store_path(args: argparse.Namespace) -> str:
    """--store, the policy's daemon.store, $ROUTER_STORE, else the data directory's."""
    from router import paths
    return paths.store(args.store, load_policy(args))


def model_path(args: argparse.Namespace) -> str:
    """--model, the policy's daemon.model, $ROUTER_MODEL, else the data directory's
    model.rmod (that directory, ours, is made when missing; one the user named never is)."""
    import os

    from router import paths
    path = paths.model(args.model, load_policy(args))
    if os.path.dirname(path) == paths.data_dir():
        os.makedirs(paths.data_dir(), exist_ok=True)
    return path


def policy_path(args: argparse.Namespace) -> str:
    from router import paths
    return str(args.policy or paths.policy() or paths.demo_policy())


def load_policy(args: argparse.Namespace) -> Any:
    """The policy, read once per command (the path resolver asks for it too)."""
    from router.policy import load_policy as load
    if getattr(args, "_policy", None) is None:
        args._policy = load(policy_path(args))
    return args._policy


def socket_paths(args: argparse.Namespace) -> list[str]:
    """--socket alone when given, else the client's search order (router.paths)."""
    from router import paths
    given = getattr(args, "socket", None)
    return [str(given)] if given else paths.client_sockets()


def socket_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH", help="daemon socket (default: $ROUTER_SOCKET, "
                   "else the first that answers of $XDG_RUNTIME_DIR/router.sock, "
                   "/run/router/router.sock, the data dir's router.sock)")


def stdin_lines() -> Iterable[str]:
    if sys.stdin is None or sys.stdin.closed:
        return iter(())
    return sys.stdin


def since(text: str | None) -> float | None:
    """`24h`, `7d`, `30m`, an ISO date or time, or epoch seconds."""
    if text is None:
        return None
    import time
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
            return time.time() - float(text[:-1]) * units[text[-1]]
        if text.replace(".", "", 1).isdigit():
            return float(text)
        import datetime as dt
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        from router.errors import UsageError
        raise UsageError(f"--since {text!r}: expected 24h, 7d, an ISO date or epoch seconds") \
            from None


def existing_store(args: argparse.Namespace) -> str:
    """The history a read-only command opens: a missing file is a typo, not an empty history
    (opening it would create an empty database and report nothing)."""
    import os
    path = store_path(args)
    if not os.path.exists(path):
        from router.errors import UsageError
        raise UsageError(f"no history at {path}: check --store (or $ROUTER_STORE)")
    return path
