"""A real Slurm (Debian's slurmctld, slurmd, slurmdbd with MariaDB, munge): routed jobs run in
the right partition and their CPU, as Slurm's own accounting reports it, lands in the history;
a job still running in Slurm when the daemon is killed -9 is watched again by the next one
(and cancelled with scancel when it was attached: its submitter left with the daemon, or when
its machine left the policy meanwhile: nothing could watch it)."""

from __future__ import annotations

import subprocess

import pytest

import slurm as test_slurm
from conftest import need_program, need_root
from daemon_fixture import PROG, ROUTER, RunningDaemon, prog_model, wait_for

from router.store import Store

POLICY = """
machines:
  cheap: {backend: slurm, price: 1.0, slots: 4, fallback: here, options: {partition: cheap}}
  fast: {backend: slurm, price: 3.0, slots: 4, fallback: here, options: {partition: fast}}
  here: {backend: local, price: 2.0, slots: 2}
threshold: 0.04
route: {over: fast, under: cheap}
"""


@pytest.fixture(scope="module")
def cluster():
    need_root()
    need_program("slurmctld", "slurmd", "slurmdbd", "sbatch", "sacct", "munged", "mariadbd",
                 "setpriv")
    made = None
    try:
        made = test_slurm.setup()
        yield made
    finally:
        test_slurm.teardown(made)


BURN = 'echo start; sleep 4; i=0; while [ "$i" -lt 200000 ]; do i=$((i + 1)); done; echo end'


def test_a_job_running_in_slurm_outlives_a_killed_daemon_and_is_recorded_once(cluster, tmp_path):
    d = RunningDaemon(tmp_path, POLICY, {"SLURM_CONF": cluster.env["SLURM_CONF"]})
    d.start()
    try:
        r = d.router("submit", "--parsable", "--detach", "-p", "cheap", "--", "/bin/sh", "-c",
                     BURN)
        assert r.returncode == 0, r.stderr
        job, out = int(r.stdout), tmp_path / "spool" / f"{r.stdout.strip()}.out"
        attached = subprocess.Popen([*ROUTER, "submit", "-p", "cheap", "--", "/bin/sleep", "60"],
                                    env=d.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        orphan = int(d.router("submit", "--parsable", "--detach", "-p", "fast", "--",
                              "/bin/sleep", "61").stdout)
        with Store(d.env["ROUTER_STORE"]) as s:   # the two submits race for the next id
            wait_for(lambda: [r for r in s.all_runs() if r["argv"] == ["/bin/sleep", "60"]],
                     timeout=60, what="the attached job recorded")
            attached_id = next(r["id"] for r in s.all_runs() if r["argv"] == ["/bin/sleep", "60"])
            wait_for(lambda: all((s.get(i) or {}).get("remote_id") for i in (attached_id, orphan)),
                     timeout=60, what="the attached and the fast job running in Slurm")
        wait_for(lambda: out.exists() and out.read_text() == "start\n", timeout=60,
                 what="the job's first line in the spool")
        d.kill9()
        attached.wait(timeout=30)
        d.policy.write_text(POLICY.replace("fast", "quick").replace("partition: quick",
                                                                    "partition: fast"))
        d.start()
        with Store(d.env["ROUTER_STORE"]) as s:
            wait_for(lambda: s.get(job)["state"] != "running" != s.get(attached_id)["state"],
                     timeout=120, what="both ends, recorded by the new daemon")
            row, other = s.get(job), s.get(attached_id)
        assert row["state"] == "done", row
        assert other["state"] == "cancelled", other
        with Store(d.env["ROUTER_STORE"]) as s:
            left = s.get(orphan)
        assert left["state"] == "killed" and "left the policy" in left["stderr_tail"], left
        for gone in (other, left):
            wait_for(lambda: cluster.run("sacct", "-X", "-n", "-P", "-o", "State", "-j",
                                         gone["remote_id"]).stdout.startswith("CANCELLED"),
                     timeout=30, what=f"Slurm's record of {gone['remote_id']} cancelled")
        assert d.router("follow", str(job)).stdout == "start\nend\n"   # the rest, once
        out = cluster.run("sacct", "-j", row["remote_id"], "-n", "-P", "-o",
                          "UserCPU,SystemCPU").stdout.split("\n")[0].split("|")
        slurm_cpu = sum(float(v.split(":")[-1]) + 60 * float(v.split(":")[-2]) for v in out)
        assert row["cpu_user_s"] + row["cpu_sys_s"] == pytest.approx(slurm_cpu, abs=2e-3)
        assert "2 adopted" in d.log.read_text()
    finally:
        d.stop()


def test_jobs_run_in_their_partition_and_slurm_accounts_their_cpu(cluster, tmp_path):
    d = RunningDaemon(tmp_path, POLICY, {"SLURM_CONF": cluster.env["SLURM_CONF"]})
    prog_model(tmp_path / "model.rmod")
    d.start()
    try:
        hi = d.router("submit", "--", PROG, "30", timeout=120)
        lo = d.router("submit", "--", PROG, "12", timeout=120)
        assert hi.returncode == 0 and hi.stdout.startswith("30 "), hi.stderr
        assert lo.returncode == 0 and lo.stdout.startswith("12 "), lo.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            rows = s.all_runs()
        assert [r["machine"] for r in rows] == ["fast", "cheap"]
        for row, partition in zip(rows, ("fast", "cheap")):
            shown = cluster.run("scontrol", "-o", "show", "job", row["remote_id"]).stdout
            assert f" Partition={partition} " in shown
            out = cluster.run("sacct", "-j", row["remote_id"], "-n", "-P", "-o",
                              "UserCPU,SystemCPU").stdout.split("\n")[0].split("|")
            slurm_cpu = sum(float(v.split(":")[-1]) + 60 * float(v.split(":")[-2]) for v in out)
            assert row["cpu_user_s"] + row["cpu_sys_s"] == pytest.approx(slurm_cpu, abs=2e-3)
        assert rows[0]["cpu_user_s"] > 0.03 and rows[0]["cost"] > rows[1]["cost"]

        cluster.run("scontrol", "shutdown", "slurmctld", check=False)   # Slurm down
        r = d.router("submit", "--", PROG, "30", timeout=180)
        assert r.returncode == 0 and r.stdout.startswith("30 "), r.stderr
        with Store(d.env["ROUTER_STORE"]) as s:
            last = s.all_runs()[-1]
        assert last["machine"] == "here" and last["reason"] == "fast down: fallback"
    finally:
        d.stop()
