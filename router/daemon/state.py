"""What every part of the daemon reads and updates: the policy and model in use, the history
writer, the dispatcher and its spool, counters and the drift of recent predictions.

One per daemon. The life cycle builds it and fills in the parts that need the event loop;
the server, the handlers and the background tasks all take it as their first argument.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from router import paths
from router.daemon.dispatcher import Dispatcher
from router.daemon.spool import Spool
from router.daemon.writer import StoreWriter
from router.learn import modelfile
from router.daemon.queues import QueueBook
from router.learn.drift import Drift
from router.policy import Policy

log = logging.getLogger(__name__)


class State:
    def __init__(self, policy: Policy, *, store: str | None = None, model: str | None = None,
                 sock: str | None = None):
        self.policy = policy
        d = policy.daemon
        self.store_path = os.path.abspath(paths.store(store, policy))
        self.model_path = Path(os.path.abspath(paths.model(model, policy)))
        self.socket_path = Path(os.path.abspath(sock or d["socket"] or paths.socket()))
        self.socket_named = bool(sock or d["socket"])   # its directory must exist, not be made
        self.models = modelfile.ModelCache(self.model_path)
        self.model: modelfile.ModelFile | None = None
        self.draining = False
        self.counters: dict[str, int] = {"jobs": 0, "failed": 0, "refused": 0}
        self.drift = Drift(policy.retrain["drift_window"], policy.retrain["min_accuracy"])
        self.metrics: Any = None
        self.queue_book = QueueBook()
        self.writer: StoreWriter
        self.dispatcher: Dispatcher
        self.spool: Spool

    def model_version(self) -> str | None:
        return self.model.version if self.model else None

    async def load_model(self) -> None:
        """In a thread: a stat, and a load only when the file changed. A bad file is refused
        and the model in use stays, whatever the fault inside the file."""
        try:
            self.model = await asyncio.to_thread(self.models.get)
        except Exception as exc:  # noqa: BLE001 - a valid header over bad contents
            log.error("model %s: cannot be used (%s: %s); keeping the model in use",
                      self.model_path, type(exc).__name__, exc)
