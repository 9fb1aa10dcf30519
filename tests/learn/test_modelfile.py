"""The model file's envelope: a missing, foreign, truncated, newer or corrupt file is refused
with one ModelError naming the file, before anything in it is trusted."""

from __future__ import annotations

import hashlib

import pytest

from router.errors import ModelError
from router.learn import modelfile
from router.learn.modelfile import _HEADER, FORMAT, MAGIC


def envelope(payload: bytes, fmt: int = FORMAT, digest: bytes | None = None,
             length: int | None = None) -> bytes:
    digest = hashlib.sha256(payload).digest() if digest is None else digest
    return MAGIC + _HEADER.pack(fmt, digest, len(payload) if length is None else length) + payload


@pytest.mark.parametrize("content, says", [
    (b"garbage", "is not a router model file"),
    (b"", "is not a router model file"),
    (MAGIC + b"\x01\x00", "is truncated"),
    (envelope(b"x" * 10, fmt=FORMAT + 1), f"has format {FORMAT + 1}, newer than this router"),
    (envelope(b"x" * 10, length=20), "is truncated (10 of 20 bytes)"),
    (envelope(b"x" * 10, digest=b"\0" * 32), "is corrupt (content hash mismatch)"),
])
def test_a_bad_file_is_one_error_naming_it(tmp_path, content, says):
    path = tmp_path / "model.rmod"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        modelfile.load(path)
    assert says in str(info.value) and str(path) in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_a_missing_or_unreadable_file_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="run `router train` first"):
        modelfile.load(tmp_path / "none.rmod")
    with pytest.raises(ModelError, match="cannot read model .*: Is a directory"):
        modelfile.load(tmp_path)


def test_the_cache_refuses_a_bad_file_and_rereads_only_on_change(tmp_path, caplog):
    path = tmp_path / "model.rmod"
    cache = modelfile.ModelCache(path)
    assert cache.get() is None                      # no file yet: no model, no error
    path.write_bytes(b"garbage")
    assert cache.get() is None and "not a router model file" in caplog.text
    caplog.clear()
    assert cache.get() is None and caplog.text == ""     # unchanged: not read again
    cache.forget()
    assert cache.get() is None and "not a router model file" in caplog.text
