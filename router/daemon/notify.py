"""systemd's notify protocol, spoken directly: one datagram to $NOTIFY_SOCKET per message.

No libsystemd: READY=1, RELOADING=1 (with MONOTONIC_USEC), STOPPING=1 and WATCHDOG=1 are
plain text, and a service run outside systemd simply has no socket to send them to.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not run by systemd (or the socket is gone)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc)
        return False


def ready() -> bool:
    return notify("READY=1")


def reloading() -> bool:
    """RELOADING=1 must carry the monotonic clock (CLOCK_MONOTONIC, microseconds)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of what systemd asked for), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
