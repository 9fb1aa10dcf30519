"""`router serve`'s handler on a real HTTP server on 127.0.0.1: what it refuses, and the shape
of an answer (the model's own answers are tested with a trained model in integration)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

from router.learn.modelfile import ModelCache
from router.policy import parse_policy
from router.reports.serve import MAX_BODY, make_handler

POLICY = """
machines:
  cheap: {price: 1.0}
  fast: {price: 3.0, speed: 2.0}
route: {over: fast, under: cheap, no_model: fast}
"""


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    missing = tmp_path_factory.mktemp("serve") / "no-model.rmod"
    handler = make_handler(parse_policy(POLICY), ModelCache(missing))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


def post(port: int, body: bytes, path: str = "/predict",
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_an_answer_is_predict_json_s_shape_with_its_reason(port):
    code, body = post(port, json.dumps({"argv": ["/bin/echo", "42"]}).encode())
    assert code == 200
    assert body["machine"] == "fast" and body["reason"] == "no model"
    assert body["template"] == "/bin/echo {num}" and body["features"] == [42.0]
    assert {"p_over", "sd", "threshold", "model_version"} <= set(body)


@pytest.mark.parametrize("body, says", [
    (b"{not json", "bad request"),
    (b"", "bad request"),
    (b"[1, 2]", "bad request"),
    (json.dumps({"argv": []}).encode(), "argv must be a non-empty list of strings"),
    (json.dumps({"argv": ["/bin/echo", 3]}).encode(), "argv must be a non-empty list"),
    (json.dumps({"cmd": ["/bin/echo"]}).encode(), "bad request"),
])
def test_a_bad_request_is_a_400_that_says_why(port, body, says):
    code, reply = post(port, body)
    assert code == 400 and says in reply["error"], reply


def test_only_post_predict_is_served_and_a_huge_body_is_refused_unread(port):
    assert post(port, b"{}", path="/other") == (404, {"error": "only POST /predict"})
    code, reply = post(port, b"{}", headers={"Content-Length": str(MAX_BODY + 1)})
    assert (code, reply) == (413, {"error": "request too large"})
