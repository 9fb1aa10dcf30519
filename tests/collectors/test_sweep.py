import json
import os
import shlex
import subprocess
import time

from hypothesis import given, strategies as st


from conftest import EXAMPLES, ROUTER, need_program
from collectors.sweep import build_argv
from router.store import Store


def collect(args, stdin="", env=None, **kw):
    return subprocess.run([*ROUTER, "collect", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=120, **kw)


def test_sweep_writes_json_lines_and_rows(env):
    r = collect(["--", str(EXAMPLES / "prog")], "10\n30\n\n64\n", env)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert [l["argv"][-1] for l in lines] == ["10", "30", "64"]
    for line in lines:
        for key in ("argv", "template", "features", "cpu_user_s", "cpu_sys_s", "wall_s",
                    "max_rss_kb", "exit", "timed_out"):
            assert key in line
        assert line["exit"] == 0 and line["template"].endswith("prog {num}")
    assert lines[1]["cost"] > 2 * lines[0]["cost"]       # 30 is inside the expensive band
    with Store(env["ROUTER_STORE"]) as s:
        assert [r["features"] for r in s.runs()] == [[10.0], [30.0], [64.0]]


def test_text_output_and_sweep_shortcut_and_placeholder(env):
    r = collect(["--text", "--sweep", "1:3", "--", "/bin/echo", "{}", "x"], env=env)
    assert r.returncode == 0, r.stderr
    assert [l.split()[0] for l in r.stdout.splitlines()] == ["1", "2", "3"]
    assert all(float(l.split()[1]) >= 0 for l in r.stdout.splitlines())


def test_parallel_runs_keep_input_order_and_repeat(env):
    r = collect(["-j", "3", "--repeat", "2", "--text", "--", "/bin/sleep"],
                "0.3\n0.01\n0.1\n", env)
    assert [l.split()[0] for l in r.stdout.splitlines()] == ["0.3", "0.3", "0.01", "0.01",
                                                              "0.1", "0.1"]


def test_cpu_of_grandchildren_matches_usr_bin_time(env, tmp_path):
    """Both measure the same execution: /usr/bin/time wraps the run the collector measures."""
    need_program("/usr/bin/time")
    cmd = ["/usr/bin/time", "-f", "TIME %U %S", str(EXAMPLES / "spawner")]
    r = collect(["--output", str(tmp_path), "--", *cmd], "600\n", env)
    line = json.loads(r.stdout)
    times = (tmp_path / "0.err").read_text().split("TIME")[-1].split()
    expected = float(times[0]) + float(times[1])
    measured = line["cpu_user_s"] + line["cpu_sys_s"]
    assert expected > 0.3
    assert abs(measured - expected) <= 0.1 * expected, (measured, expected)


def _alive(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return out.split()


def test_timeout_kills_the_whole_session(env, tmp_path):
    marker = str(tmp_path / "sleeper")
    os.symlink(EXAMPLES / "sleeper", marker)
    start = time.monotonic()
    r = collect(["--timeout", "0.5", "--", marker], "1000\n", env)
    line = json.loads(r.stdout)
    assert line["timed_out"] is True and line["exit"] == -9
    assert time.monotonic() - start < 30
    deadline = time.monotonic() + 5
    while _alive("sleep 1000") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive("sleep 1000")


def test_failed_run_is_recorded_with_status_and_stderr(env):
    r = collect(["--", "/bin/sh", "-c", "echo boom >&2; exit 3"], "1\n", env)
    assert r.returncode == 1 and "1 of 1 runs failed" in r.stderr   # issue 17 item 7
    line = json.loads(r.stdout)
    assert line["exit"] == 3 and "boom" in line["stderr_tail"] and line["state"] == "failed"


def test_output_dir_keeps_program_output(env, tmp_path):
    out = tmp_path / "out"
    collect(["--output", str(out), "--", "/bin/echo"], "hello\n", env)
    assert (out / "0.out").read_text() == "hello\n"


def test_missing_program_fails_before_the_sweep(env):
    r = collect(["--", "./no-such-prog"], "1\n", env)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "no such program: ./no-such-prog" in r.stderr


def test_unparsable_line_names_the_line_and_keeps_rows(env):
    r = collect(["--", "/bin/echo"], "1\n2\n'unbalanced\n4\n", env)
    assert r.returncode != 0
    assert "line 3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with Store(env["ROUTER_STORE"]) as s:
        assert s.count() == 2


def test_unwritable_store_is_one_line(env, tmp_path):
    (tmp_path / "f").write_text("")
    r = collect(["--store", str(tmp_path / "f" / "h.db"), "--", "/bin/true"], "1\n", env)
    assert r.returncode != 0 and "history store" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_kills_children_and_keeps_finished_rows(env, tmp_path):
    import signal
    p = subprocess.Popen([*ROUTER, "collect", "--", "/bin/sleep"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env, text=True)
    p.stdin.write("0.01\n0.01\n777\n")
    p.stdin.flush()
    deadline = time.monotonic() + 20
    while not _alive("sleep 777") and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=20) == 130
    assert not _alive("sleep 777")
    with Store(env["ROUTER_STORE"]) as s:
        assert s.count() == 2


@given(st.text(alphabet=st.sampled_from(list("ab1 \t'\"\\\x0b\r\u00a0é")), max_size=12))
def test_plain_lines_split_as_shlex_splits_them(line):
    try:
        expected = ["p", *shlex.split(line)]
    except ValueError:
        return
    assert build_argv(["p"], line, 1) == expected
