"""`router serve`: answer `POST /predict` on 127.0.0.1 with the same JSON as `predict --json`.

The model is read once and re-read when its file changes, so a retrain is picked up without a
restart; prediction uses the NumPy fast path.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from router.learn.modelfile import ModelCache
from router.errors import RouterError
from router.policy import Policy, route

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def make_handler(policy: Policy, models: ModelCache) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: Any) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/predict":
                return self._reply(404, {"error": "only POST /predict"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._reply(413, {"error": "request too large"})
            try:
                req = json.loads(self.rfile.read(length) or b"null")
                argv = req["argv"]
                if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
                    raise ValueError("argv must be a non-empty list of strings")
            except (ValueError, KeyError, TypeError) as exc:
                return self._reply(400, {"error": f"bad request: {exc}"})
            try:
                self._reply(200, route(argv, models.get(), policy, req.get("cwd")))
            except RouterError as exc:
                self._reply(422, {"error": str(exc)})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

    return Handler


def serve(policy: Policy, model_path: Path, port: int, host: str = "127.0.0.1") -> None:
    server = ThreadingHTTPServer((host, port), make_handler(policy, ModelCache(model_path)))
    log.warning("serving POST /predict on http://%s:%d", host, server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
