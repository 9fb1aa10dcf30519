"""`router retrain` (what the systemd timer runs) reads and writes the policy's files, as the
daemon does, and on a fresh machine says in one line that there is nothing to learn from."""

from __future__ import annotations

import os
import subprocess

from conftest import ROUTER
from router import paths
from router.policy import parse_policy
from router.store import Store

POLICY = """machines:
  cheap: {price: 1, speed: 1}
daemon:
  store: %s
  model: %s
threshold: 0.05
"""


def fresh_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTER_", "XDG_"))}
    return dict(env, HOME=str(tmp_path / "home"), STATE_DIRECTORY="")


def test_the_resolver_takes_the_flag_then_the_policy_then_the_environment(tmp_path, monkeypatch):
    policy = parse_policy(POLICY % ("/p/h.db", "/p/m.rmod"))
    bare = parse_policy("machines:\n  a: {}\n")
    monkeypatch.setenv("ROUTER_STORE", "/env/h.db")
    monkeypatch.setenv("ROUTER_MODEL", "/env/m.rmod")
    assert paths.store("/flag.db", policy) == "/flag.db"
    assert (paths.store(None, policy), paths.model(None, policy)) == ("/p/h.db", "/p/m.rmod")
    assert (paths.store(None, bare), paths.model()) == ("/env/h.db", "/env/m.rmod")


def test_retrain_on_a_fresh_machine_says_there_is_no_data_in_one_line(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY % (tmp_path / "data" / "h.db", tmp_path / "data" / "m.rmod"))
    r = subprocess.run([*ROUTER, "retrain", "--policy", str(policy)], env=fresh_env(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.strip() .count("\n") == 0 and "nothing to learn from" in r.stdout
    assert str(tmp_path / "data" / "h.db") in r.stdout


def test_retrain_learns_from_and_writes_the_policys_store_and_model(tmp_path):
    store, model = tmp_path / "policy-store.db", tmp_path / "policy-model.rmod"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY % (store, model))
    with Store(store) as s, s.transaction() as db:
        s.add_runs_in(db, [{"source": "collect", "argv": ["/p", str(a)], "template": "/p {num}",
                            "features": [float(a)], "cost": a / 1000, "machine": "cheap",
                            "time": 1.0, "user": "u"}
                           for a in range(1, 101)])
    env = dict(fresh_env(tmp_path), ROUTER_STORE=str(tmp_path / "env.db"),
               ROUTER_MODEL=str(tmp_path / "env.rmod"))
    r = subprocess.run([*ROUTER, "retrain", "--policy", str(policy)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("promoted"), r.stdout
    assert model.exists() and not (tmp_path / "env.rmod").exists()
    assert not (tmp_path / "env.db").exists()
