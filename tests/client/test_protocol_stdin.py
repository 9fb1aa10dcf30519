"""The stdin request: checked like every other request, one line for what is wrong."""

from __future__ import annotations

import pytest

from router.client import protocol
from router.errors import ProtocolError


def test_a_stdin_chunk_round_trips_and_an_empty_one_is_the_end():
    req = protocol.check_request(protocol.decode(protocol.encode(
        protocol.stdin_request(3, b"\x00\xffdata"))))
    assert req == {"op": "stdin", "tag": 3, "data": b"\x00\xffdata", "eof": False}
    assert protocol.check_request(protocol.stdin_request(3, b""))["eof"] is True


@pytest.mark.parametrize("data, says", [(None, "base64"), ("!!", "base64"),
                                        ("A" * (4 * (protocol.STDIN_CHUNK // 3 + 2)),
                                         "at most")])
def test_bad_chunks_are_refused(data, says):
    with pytest.raises(ProtocolError, match=says):
        protocol.check_request({"op": "stdin", "tag": 1, "data": data})


def test_only_attached_submits_take_stdin():
    base = {"op": "submit", "argv": ["cat"], "cwd": "/", "stdin": True}
    assert protocol.check_request(base)["stdin"] is True
    assert protocol.check_request({**base, "detach": True})["stdin"] is False
    with pytest.raises(ProtocolError, match="stdin must be true or false"):
        protocol.check_request({**base, "stdin": "yes"})
