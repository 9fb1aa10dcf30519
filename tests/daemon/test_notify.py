"""systemd's notify protocol over a real unix datagram socket: the exact messages, the abstract
socket form, and silence (not an error) where no systemd listens."""

from __future__ import annotations

import os
import socket
import time

import pytest

from router.daemon import notify


@pytest.fixture
def sink(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_each_message_is_one_datagram_of_plain_text(sink):
    assert notify.ready() and notify.stopping()
    assert sink.recv(4096) == b"READY=1"
    assert sink.recv(4096) == b"STOPPING=1"


def test_reloading_carries_the_monotonic_clock_in_microseconds(sink):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notify.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = sink.recv(4096).decode().split("\n")
    assert first == "RELOADING=1" and second.startswith("MONOTONIC_USEC=")
    assert before <= int(second.split("=")[1]) <= after


def test_an_abstract_socket_is_written_with_an_at_sign(monkeypatch):
    name = f"router-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_systemd_nothing_is_sent_and_nothing_fails(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify.stopping() is False
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize("usec, pid, interval", [
    ("200000", None, 0.1),
    ("200000", "self", 0.1),
    ("200000", "1", None),          # meant for another process
    ("often", None, None),
    (None, None, None),
])
def test_watchdog_interval_is_half_of_what_systemd_asked(monkeypatch, usec, pid, interval):
    for key, value in (("WATCHDOG_USEC", usec),
                       ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert notify.watchdog_interval() == interval
