"""Bad files and bad requests get one line each and never a hang, a dead task or a dropped
connection: policies without machines or not UTF-8, a model with a valid hash over bad
contents, ids past SQLite's integers, booleans that are not, slots changed by SIGHUP,
a history file with corrupt pages."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from daemon_fixture import POLICY, ROUTER, RunningDaemon, wait_for

from router.learn import modelfile  # noqa: E402
from router.store import Store  # noqa: E402

BAD_POLICIES = {"empty": b"", "no machines": b"threshold: 1.0\n",
                "not utf-8": b"machines:\n  a: {backend: local}\n# \xff\xfe\n"}


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("name", BAD_POLICIES)
def test_policy_check_and_daemon_start_refuse_a_bad_policy_in_one_line(tmp_path, env, name):
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(BAD_POLICIES[name])
    for args in (["policy", "check", str(policy)], ["daemon", "--policy", str(policy)]):
        r = subprocess.run([*ROUTER, *args], capture_output=True, text=True, env=env, timeout=60)
        line = one_line_error(r)
        assert "machines: at least one machine" in line or "not UTF-8" in line


class NotifySink:
    """systemd's side of the notify socket, for counting READY=1."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.got: list[str] = []

    def count(self, message: str) -> int:
        while True:
            try:
                self.got.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return sum(m == message for m in self.got)


def test_sighup_with_bad_policies_keeps_the_old_one_and_says_ready(tmp_path):
    sink = NotifySink(tmp_path / "notify.sock")
    d = RunningDaemon(tmp_path, POLICY, {"NOTIFY_SOCKET": str(sink.path)})
    try:
        d.start()
        wait_for(lambda: sink.count("READY=1") == 1, what="READY=1")
        for n, text in enumerate(BAD_POLICIES.values(), 2):
            d.policy.write_bytes(text)
            d.signal(signal.SIGHUP)
            wait_for(lambda: sink.count("READY=1") == n, what=f"READY=1 after reload {n - 1}")
            assert d.router("submit", "--", "/bin/true").returncode == 0
        assert d.log.read_text().count("policy reload refused") == 3
        d.signal(signal.SIGTERM)
        assert d.proc.wait(timeout=30) == 0
    finally:
        d.stop()
        sink.sock.close()


def test_sighup_changing_slots_is_refused_and_says_so(daemon):
    daemon.policy.write_text(POLICY.replace("slots: 2}\n  fast", "slots: 5}\n  fast")
                             .replace("under: cheap", "under: fast"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in daemon.log.read_text(), what="refusal")
    assert "machines.cheap.slots changed: restart the daemon" in daemon.log.read_text()
    assert "reloaded" not in daemon.log.read_text()
    assert daemon.router("submit", "--dry-run", "--", "/bin/true").stdout.startswith("cheap")


@pytest.fixture
def daemon(tmp_path):
    d = RunningDaemon(tmp_path, POLICY)
    yield d.start()
    d.stop()


def test_a_model_with_a_good_hash_over_bad_contents_leaves_polling_alive(daemon, tmp_path):
    payload = b"not an npz archive"
    head = modelfile._HEADER.pack(modelfile.FORMAT, hashlib.sha256(payload).digest(),
                                  len(payload))
    (tmp_path / "model.rmod").write_bytes(modelfile.MAGIC + head + payload)
    wait_for(lambda: "cannot be used" in daemon.log.read_text(), what="bad model refused")
    _good_model(tmp_path / "model.rmod")
    wait_for(lambda: "model v" in daemon.log.read_text(), what="the next good model loaded")
    r = daemon.router("submit", "--dry-run", "--", "/bin/true")
    assert r.returncode == 0 and "no model\n" not in r.stdout


def _good_model(path: Path) -> None:
    from router.learn.dataset import Dataset
    from router.learn.train import TrainOptions, fit

    data = Dataset()
    for n in range(40):
        data.add("/bin/true", (float(n),), n % 2, 0.0, 0.04)
    modelfile.save(fit(data, TrainOptions(epochs=5, members=2)), path)


def request(d: RunningDaemon, msg: dict) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(d.sock))
        s.sendall(json.dumps(msg).encode() + b"\n")
        reply = s.makefile("rb").readline()
    assert reply, f"the daemon dropped the connection on {msg}"
    return json.loads(reply)


@pytest.mark.parametrize("msg", [
    {"op": "status", "id": 1 << 63}, {"op": "cancel", "id": 1 << 64},
    {"op": "follow", "id": 10 ** 30},
    {"op": "submit", "argv": ["/bin/true"], "detach": "no"},
    {"op": "submit", "argv": ["/bin/true"], "dry_run": 1},
    {"op": "submit", "argv": ["/bin/true"], "quiet": None}, {"op": "jobs", "all": "yes"},
])
def test_out_of_range_ids_and_untyped_flags_get_one_error_line(daemon, msg):
    reply = request(daemon, msg)
    assert reply["ok"] is False and re.search(r"must be (a positive integer|true or false)",
                                              reply["error"])
    assert "Traceback" not in daemon.log.read_text()
    assert request(daemon, {"op": "ping"})["ok"] is True


def test_a_store_with_corrupt_pages_is_refused_at_start(tmp_path, env):
    path = tmp_path / "history.db"
    with Store(path) as s, s.transaction() as db:
        for _ in range(3000):
            s.add_run_in(db, {"time": 1.0, "user": "u" * 50, "argv": ["x"] * 20,
                              "template": "x", "features": [1.0], "machine": "cheap",
                              "source": "collect"})
    with Store(path) as s:
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as f:
        f.seek(5 * 4096)
        f.write(b"\xff" * 3 * 4096)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    r = subprocess.run([*ROUTER, "daemon", "--policy", str(policy), "--store", str(path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert "is corrupt" in one_line_error(r)
    assert not os.path.exists(env["ROUTER_SOCKET"])
