"""A real daemon, real jobs: routing, streaming, exit codes, cancel, reload, drain, users."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import shutil
import stat
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from daemon_fixture import POLICY, PROG, ROOT, RunningDaemon, prog_model, wait_for
from users import Client, shared_dir

from router.store import Store


def test_routes_by_the_model_and_streams_output(tmp_path):
    d = RunningDaemon(tmp_path, POLICY)
    prog_model(tmp_path / "model.rmod")
    d.start()
    try:
        hi = d.router("submit", "--json", "--", PROG, "30")
        lo = d.router("submit", "--json", "--", PROG, "60")
        assert hi.returncode == 0 and hi.stderr.split()[0] == "30", hi.stderr  # --json: output
        assert json.loads(hi.stdout.splitlines()[-1])["machine"] == "fast"     # on stderr
        assert json.loads(lo.stdout.splitlines()[-1])["machine"] == "cheap"
        with Store(d.env["ROUTER_STORE"]) as s:
            rows = s.all_runs()
        assert [(r["machine"], r["state"]) for r in rows] == [("fast", "done"), ("cheap", "done")]
        assert rows[0]["reason"].startswith("model p=") and rows[0]["cost"] > rows[1]["cost"]
        assert rows[0]["model_version"].startswith("v1-")
    finally:
        d.stop()


def test_stdout_stderr_and_exit_codes(daemon):
    r = daemon.router("submit", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = daemon.router("submit", "--", "/bin/sh", "-c", "kill -9 $$")
    assert r.returncode == 128 + 9
    r = daemon.router("submit", "--", "./no-such-program")
    assert r.returncode == 127 and "no such program" in r.stderr


def test_each_submits_one_job_per_line_over_one_connection(daemon, tmp_path):
    r = daemon.router("submit", "--each", "--", "/bin/echo", "n", input="1\n2\n3\n")
    assert r.returncode == 0 and sorted(r.stdout.split("\n")[:-1]) == ["n 1", "n 2", "n 3"]
    # the environment goes once per connection; every job still runs with it, in our cwd
    env = dict(daemon.env, ROUTER_TEST_MARK="x y")
    r = daemon.router("submit", "--each", "--", "/bin/sh", "-c", 'echo "$ROUTER_TEST_MARK $PWD"',
                      input="1\n2\n3\n", env=env, cwd=tmp_path)
    assert r.stdout.splitlines() == [f"x y {tmp_path}"] * 3
    r = daemon.router("submit", "--each", "--", "/bin/sh", "-c", 'exit "$0"', input="0\n4\n")
    assert r.returncode == 123


def test_each_keeps_the_lines_of_jobs_running_at_once_whole(daemon):
    # two jobs at once (2 slots), each writing its line in two pieces 0.5 s apart
    r = daemon.router("submit", "--each", "--", "/bin/sh", "-c",
                      'printf "%s-" "$0"; sleep 0.5; echo end', input="a\nb\n")
    assert r.returncode == 0 and sorted(r.stdout.splitlines()) == ["a-end", "b-end"], r.stdout
    r = daemon.router("submit", "--each", "--", "/bin/sh", "-c", 'printf "%s" "$0"',
                      input="z\n")
    assert r.stdout == "z"      # a last piece with no newline still comes out at the job's end


def test_quiet_submits_get_no_queued_event(daemon):
    def events(**extra) -> list[str]:
        req = {"op": "submit", "tag": 5, "argv": ["/bin/true"], "cwd": "/", **extra}
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(daemon.sock))
            s.sendall(json.dumps(req).encode() + b"\n")
            got = []
            for line in s.makefile("rb"):
                got.append(json.loads(line))
                if got[-1]["event"] == "exit" or extra.get("detach"):
                    break
        assert all(ev["tag"] == 5 for ev in got)
        return [ev["event"] for ev in got]

    assert events() == ["queued", "exit"]
    assert events(quiet=True) == ["exit"]
    assert events(quiet=True, detach=True) == ["queued"]     # the job id is all it gets


def test_detach_follow_cancel(daemon):
    r = daemon.router("submit", "--parsable", "--detach", "--", "/bin/sh", "-c",
                      "echo started; exec sleep 300")
    job = int(r.stdout)
    wait_for(lambda: daemon.status(job)["state"] == "running", what="running")
    follower = subprocess.Popen([*daemon_router(daemon), "follow", str(job)], env=daemon.env,
                                stdout=subprocess.PIPE, text=True)
    assert daemon.router("cancel", str(job)).returncode == 0
    out, _ = follower.communicate(timeout=30)
    assert out == "started\n" and follower.returncode == 128 + signal.SIGTERM
    assert daemon.status(job)["state"] == "cancelled"
    r = daemon.router("cancel", "999")
    assert r.returncode != 0 and "no job 999" in r.stderr


def daemon_router(d: RunningDaemon) -> list[str]:
    return [sys.executable, "-m", "router"]


def test_ctrl_c_on_submit_cancels_the_job(daemon):
    p = subprocess.Popen([*daemon_router(daemon), "submit", "--", "/bin/sleep", "300"],
                         env=daemon.env)
    wait_for(lambda: "running" in daemon.router("jobs").stdout, what="job running")
    p.send_signal(signal.SIGINT)
    p.wait(timeout=20)
    wait_for(lambda: daemon.status(1)["state"] == "cancelled", what="cancelled")


def test_reload_refuses_a_bad_policy_and_applies_a_good_one(daemon):
    daemon.policy.write_text("machines: [oops\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "policy reload refused" in daemon.log.read_text(), what="refusal logged")
    assert daemon.router("submit", "--", "/bin/true").returncode == 0
    daemon.policy.write_text(POLICY.replace("under: cheap", "under: fast"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in daemon.log.read_text(), what="reload")
    r = daemon.router("submit", "--dry-run", "--", "/bin/true")
    assert r.stdout.startswith("fast")


def test_a_new_model_file_is_picked_up_and_a_bad_one_refused(tmp_path):
    d = RunningDaemon(tmp_path, POLICY).start()
    try:
        assert d.router("submit", "--dry-run", "--", PROG, "30").stdout.split("\t")[2] == \
            "no model\n"
        (tmp_path / "model.rmod").write_bytes(b"garbage")
        wait_for(lambda: "not a router model" in d.log.read_text(), what="bad model refused")
        prog_model(tmp_path / "model.rmod")
        wait_for(lambda: d.router("submit", "--dry-run", "--", PROG, "30").stdout.startswith(
            "fast"), what="new model in use")
    finally:
        d.stop()


def test_sigterm_drains_running_jobs_and_refuses_new_ones(daemon):
    job = int(daemon.router("submit", "--parsable", "--detach", "--", "/bin/sleep", "1").stdout)
    wait_for(lambda: daemon.status(job)["state"] == "running", what="running")
    daemon.signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=30) == 0
    with Store(daemon.env["ROUTER_STORE"]) as s:
        assert s.get(job)["state"] == "done"


def test_drain_timeout_cancels_what_is_left(tmp_path):
    d = RunningDaemon(tmp_path, POLICY.replace("drain_timeout: 20", "drain_timeout: 0.5"))
    d.start()
    job = int(d.router("submit", "--parsable", "--detach", "--", "/bin/sleep", "300").stdout)
    wait_for(lambda: d.status(job)["state"] == "running", what="running")
    assert d.stop() == 0
    with Store(d.env["ROUTER_STORE"]) as s:
        assert s.get(job)["state"] == "cancelled"


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(st.sampled_from(["op", "argv", "id", "tag", "cwd", "env", "detach"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=20),
                              st.lists(st.text(max_size=5), max_size=3)),
                    max_size=5).map(lambda d: json.dumps(d).encode()),
))
def test_garbage_requests_never_hurt_the_daemon(fuzz_daemon, payload):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(fuzz_daemon.sock))
        s.sendall(payload.replace(b"\n", b" ") + b"\n")
        reply = s.makefile("rb").readline()
    assert reply, f"no answer to {payload!r}"     # every line gets one, even a blank one
    msg = json.loads(reply)
    assert msg.get("ok") is False or msg.get("event") in ("queued", "decision") \
        or msg.get("ok") is True


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory):
    d = RunningDaemon(tmp_path_factory.mktemp("fuzz"), POLICY).start()
    before = _fds(d.proc.pid)
    yield d
    with socket.socket(socket.AF_UNIX) as s:     # oversized and truncated requests too
        s.connect(str(d.sock))
        try:
            s.sendall(b'{"op": "ping", "pad": "' + b"x" * (2 << 20) + b'"}\n')
            reply = s.makefile("rb").readline()
        except (BrokenPipeError, ConnectionResetError):
            reply = b"too large (closed while we were still sending)"
        assert b"too large" in reply
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(d.sock))
        s.sendall(b'{"op": "sub')
    assert d.router("submit", "--", "/bin/true").returncode == 0
    wait_for(lambda: _fds(d.proc.pid) <= before + 2, what="fds released")
    d.stop()


def test_socket_mode_and_owner(daemon):
    st_ = os.stat(daemon.sock)
    assert stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_uid == os.getuid()


def test_no_daemon_runs_here_or_refuses(tmp_path, env):
    r = subprocess.run([sys.executable, "-m", "router", "submit", "--here", "--", "/bin/echo",
                        "hi"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "hi\n" and "running here" in r.stderr
    assert len(r.stderr.splitlines()) == 1
    with Store(env["ROUTER_STORE"]) as s:
        assert s.all_runs()[0]["reason"] == "no daemon: ran here"
    r = subprocess.run([sys.executable, "-m", "router", "submit", "--no-fallback", "--",
                        "/bin/true"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no daemon at" in r.stderr


def as_user(user: pwd.struct_passwd, d: RunningDaemon, others: Client,
            *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(others.argv(user, "-m", "router", *args),
                          env=others.env(d.env, HOME="/", USER=user.pw_name),
                          capture_output=True, text=True, timeout=60, cwd="/")


def test_root_daemon_runs_jobs_as_the_submitter_and_guards_their_jobs(other_users, others):
    a, b = other_users
    tmp = shared_dir("router-users-")   # others must reach the socket
    d = RunningDaemon(tmp, POLICY.replace("daemon: {", "daemon: {socket_mode: 0666, "))
    d.start()
    try:
        r = as_user(a, d, others, "submit", "--", "/bin/sh", "-c", "id -u; id -g; id -G")
        assert r.returncode == 0, r.stderr
        uid, gid, groups = r.stdout.split("\n")[:3]
        assert (int(uid), int(gid)) == (a.pw_uid, a.pw_gid)
        assert "0" not in groups.split()    # the root daemon's groups were dropped
        job = int(as_user(a, d, others, "submit", "--parsable", "--detach", "--", "/bin/sleep",
                          "300").stdout)
        for verb in ("status", "cancel", "follow"):
            r = as_user(b, d, others, verb, str(job))
            assert r.returncode != 0 and "belongs to another user" in r.stderr, (verb, r.stderr)
        assert as_user(a, d, others, "cancel", str(job)).returncode == 0
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


RAW_SUBMIT = """
import base64, json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\\n")
f = s.makefile("rb")
for line in f:
    ev = json.loads(line)
    if ev.get("event") == "out":
        ev["data"] = base64.b64decode(ev["data"]).decode()
    print(json.dumps(ev), flush=True)
    if ev.get("ok") is False or ev.get("event") == "exit":
        break
"""


def raw_submit(user: pwd.struct_passwd, d: RunningDaemon, others: Client, argv: list[str],
               cwd: str) -> str:
    """A submit sent as `user` with any cwd, as a hand-made client could send it."""
    req = json.dumps({"op": "submit", "argv": argv, "cwd": cwd, "env": {"PATH": "/usr/bin:/bin"}})
    r = subprocess.run(others.argv(user, "-c", RAW_SUBMIT, str(d.sock), req),
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_root_daemon_enters_the_cwd_as_the_submitter(other_users, others):
    a, _ = other_users
    tmp = shared_dir("router-cwd-")
    hidden = tmp / "hidden"
    (hidden / "sub").mkdir(parents=True)
    (hidden / "sub" / "s").write_text("secret\n")
    os.chmod(hidden, 0o700)
    d = RunningDaemon(tmp, POLICY.replace("daemon: {", "daemon: {socket_mode: 0666, "))
    d.start()
    try:
        there = raw_submit(a, d, others, ["cat", "s"], str(hidden / "sub"))
        nowhere = raw_submit(a, d, others, ["cat", "s"], str(hidden / "nowhere"))
        root = raw_submit(a, d, others, ["ls"], "/root")
        assert "secret" not in there
        templates = {json.loads(r.splitlines()[0])["template"] for r in (there, nowhere)}
        assert templates == {"cat s"}     # the hidden file is not told to exist
        for reply in (there, nowhere, root):
            assert "Permission denied" in reply, reply
            assert "No such file" not in reply, reply     # nothing told of what is there
        relative = raw_submit(a, d, others, ["cat", "s"], "sub")
        assert "cwd must be an absolute path" in relative
        ok = raw_submit(a, d, others, ["cat", "s"], str(tmp))   # a directory the user can enter
        assert '"exit": 1' in ok and "No such file" in ok and "Permission denied" not in ok
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


SQUATTER = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
import os; os.chmod(sys.argv[1], 0o666)
s.listen()
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(5)
data = b""
try:
    while chunk := c.recv(65536):
        data += chunk
except OSError:
    pass
open(sys.argv[2], "wb").write(data)
"""


def test_client_sends_nothing_to_a_socket_another_user_serves(other_users, others):
    a, b = other_users
    tmp = shared_dir("router-squat-", 0o777)
    sock, got = tmp / "router.sock", tmp / "got"
    squatter = subprocess.Popen(others.argv(b, "-c", SQUATTER, str(sock), str(got)),
                                stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline() == "listening\n"
        env = others.env(dict(os.environ), HOME="/", USER=a.pw_name, ROUTER_SOCKET=str(sock),
                         SECRET_TOKEN="hunter2")
        r = subprocess.run(others.argv(a, "-m", "router", "submit", "--no-fallback", "--",
                                       "/bin/true"),
                           env=env, capture_output=True, text=True, timeout=60, cwd="/")
        assert r.returncode != 0 and "neither root nor you" in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1
        squatter.wait(timeout=20)
        assert got.read_bytes() == b""
    finally:
        if squatter.poll() is None:
            squatter.kill()
            squatter.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_default_socket_is_never_in_a_world_writable_directory(tmp_path, request):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ROUTER_SOCKET", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR")}
    env["HOME"] = str(tmp_path)
    code = "from router import paths; print(paths.socket())"
    cmd, cwd = [sys.executable, "-c", code], ROOT
    if os.geteuid() == 0:
        others: Client = request.getfixturevalue("others")
        nobody = pwd.getpwnam("nobody")
        cmd, cwd, env = others.argv(nobody, "-c", code), "/", others.env(env)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    directory = os.path.dirname(path)
    while not os.path.exists(directory):
        directory = os.path.dirname(directory)
    assert not os.stat(directory).st_mode & stat.S_IWOTH, path
