"""`router serve`: POST /predict on 127.0.0.1 answers like `predict --json`."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ROUTER
from daemon_fixture import PROG, free_port, prog_model, wait_for


def post(port: int, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_predict_over_http(tmp_path, env):
    prog_model(Path(env["ROUTER_MODEL"]))
    port = free_port()
    server = subprocess.Popen([*ROUTER, "serve", "--port", str(port)], env=env,
                              stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            try:
                return post(port, json.dumps({"argv": [PROG, "30"]}).encode())[0] == 200
            except OSError:
                return False
        wait_for(answers, what="router serve")
        code, hi = post(port, json.dumps({"argv": [PROG, "30"]}).encode())
        _, lo = post(port, json.dumps({"argv": [PROG, "12"]}).encode())
        assert code == 200 and hi["machine"] == "fast" and lo["machine"] == "cheap"
        assert {"template", "p_over", "sd", "machine", "reason"} <= set(hi)
        assert post(port, b"{not json")[0] == 400
        assert post(port, json.dumps({"argv": []}).encode())[0] == 400
    finally:
        server.terminate()
        server.wait(timeout=10)
