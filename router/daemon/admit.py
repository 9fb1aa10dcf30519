"""Who may submit, and when: the checks a submit passes before anything is decided."""

from __future__ import annotations

import os

from router.daemon.peer import Peer
from router.daemon.state import State
from router.errors import ProtocolError


def admit(st: State, peer: Peer) -> None:
    """Raise ProtocolError, with the one line the submitter sees, when the job may not run."""
    if st.draining:
        raise ProtocolError("daemon is shutting down: not accepting jobs")
    if os.geteuid() != 0 and peer.uid != os.geteuid():
        raise ProtocolError(f"this daemon runs as uid {os.geteuid()} and serves only it")
    if not st.policy.allows(peer.uid):
        raise ProtocolError(f"uid {peer.uid} may not submit (policy access)")


def may_see(peer: Peer, owner_uid: int | None) -> bool:
    """A job's record and output are its owner's and root's."""
    return peer.uid == 0 or peer.uid == owner_uid
