"""Where a client looks for a daemon, beside where a daemon listens (router.paths)."""

from __future__ import annotations

from router import paths


def test_client_search_puts_the_system_socket_after_the_users_own(monkeypatch, tmp_path):
    monkeypatch.delenv("ROUTER_SOCKET", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    found = paths.client_sockets()
    assert found == [str(tmp_path / "router.sock"), paths.SYSTEM_SOCKET,
                     str(tmp_path / "data" / "router" / "router.sock")]
    assert paths.socket() == found[0]         # the daemon's own choice is unchanged


def test_router_socket_is_the_only_place_looked_at(monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTER_SOCKET", str(tmp_path / "x.sock"))
    assert paths.client_sockets() == [str(tmp_path / "x.sock")] == [paths.socket()]
