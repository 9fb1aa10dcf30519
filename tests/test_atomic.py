"""Atomic replacement: all or nothing, and a file already there keeps its permissions."""

from __future__ import annotations

import os

import pytest

from router import atomic


def test_replaces_whole_and_keeps_the_mode(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic.write(path, b"new")
    assert path.read_bytes() == b"new" and os.stat(path).st_mode & 0o777 == 0o640
    atomic.write(tmp_path / "new.bin", b"x")
    assert (tmp_path / "new.bin").read_bytes() == b"x"


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "model.rmod"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic.write(path, "not bytes")                          # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.rmod"]
