"""The socket's JSON lines: the same bytes as json.dumps, the same values as json.loads, and
one ProtocolError for anything that is not one JSON object."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from router.client import protocol
from router.errors import ProtocolError

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(st.dictionaries(st.text(), values, max_size=6))
def test_encode_is_compact_json_and_decode_inverts_it(msg):
    line = protocol.encode(msg)
    assert line == json.dumps(msg, separators=(",", ":")).encode() + b"\n"
    assert protocol.decode(line) == json.loads(line)


@given(st.binary(max_size=200))
def test_random_bytes_decode_to_a_dict_or_one_protocol_error(data):
    try:
        msg = protocol.decode(data)
    except ProtocolError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(msg, dict) and msg == json.loads(data)


@pytest.mark.parametrize("line", [b"", b"{", b"[1]", b"{}x", b"\xff{}", b"[" * 100_000])
def test_malformed_lines_are_refused(line):
    with pytest.raises(ProtocolError):
        protocol.decode(line)


def test_non_finite_floats_travel_as_json_does():
    assert math.isnan(protocol.decode(protocol.encode({"x": math.nan}))["x"])
    with pytest.raises(TypeError):
        protocol.encode({"x": object()})
