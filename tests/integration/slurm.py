"""A real Slurm cluster on this machine, from Debian's packages, without systemd.

munged, MariaDB, slurmdbd (CPU accounting: jobcomp/filetxt records none), slurmctld and slurmd,
each started as a plain background process and stopped by its pid, with everything under one
temp directory. One node with two partitions, `cheap` and `fast`. The node declares 8 CPUs
(`config_overrides`) so jobs do not wait for a 1-second scheduling tick.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from daemon_fixture import free_port, wait_for

CLUSTER = "routertest"


@dataclass
class Cluster:
    dir: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, check=check,
                              timeout=60)

    def spawn(self, name: str, argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log, **kw)
        self.procs.append(proc)
        return proc


def _as_user(user: str) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]


def _munge(c: Cluster) -> None:
    run = Path("/run/munge")
    run.mkdir(exist_ok=True)
    munge = pwd.getpwnam("munge")
    os.chown(run, munge.pw_uid, munge.pw_gid)
    if not Path("/etc/munge/munge.key").exists():
        subprocess.run(["mungekey", "-c"], check=True)
        os.chown("/etc/munge/munge.key", munge.pw_uid, munge.pw_gid)
    sock = run / "munge.socket.2"
    if sock.exists() and subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return   # a munged is already serving
    c.spawn("munged", [*_as_user("munge"), "munged", "-F", "--force"])
    wait_for(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0,
             60, "munged")


def _mariadb(c: Cluster) -> int:
    data, run = c.dir / "mysql", c.dir / "mysqld"
    data.mkdir()
    run.mkdir()
    mysql = pwd.getpwnam("mysql")
    for p in (data, run):
        os.chown(p, mysql.pw_uid, mysql.pw_gid)
    c.run("mariadb-install-db", "--user=mysql", f"--datadir={data}",
          "--auth-root-authentication-method=socket", "--skip-test-db")
    port = free_port()
    sock = run / "mysqld.sock"
    c.spawn("mariadb", ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data}",
                        f"--socket={sock}", "--bind-address=127.0.0.1", f"--port={port}",
                        f"--log-error={run / 'error.log'}", f"--pid-file={run / 'pid'}"])
    wait_for(lambda: c.run("mariadb", "-S", str(sock), "-u", "root", "-e", "select 1",
                           check=False).returncode == 0, 60, "mariadb")
    c.run("mariadb", "-S", str(sock), "-u", "root", "-e",
          "CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';"
          "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';"
          "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
          "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
    return port


SLURM_CONF = """
ClusterName={cluster}
SlurmctldHost={host}
SlurmUser=root
SlurmctldPort={ctl_port}
SlurmdPort={node_port}
AuthType=auth/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MessageTimeout=3
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={dbd_port}
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobCompType=jobcomp/none
NodeName={host} CPUs=8 State=UNKNOWN
PartitionName=cheap Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=fast Nodes={host} MaxTime=INFINITE State=UP
"""
SLURMDBD_CONF = """
AuthType=auth/munge
DbdHost=localhost
DbdPort={dbd_port}
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
PidFile={dir}/slurmdbd.pid
LogFile={dir}/log/slurmdbd.log
"""


def _configs(c: Cluster, db_port: int) -> None:
    for sub in ("state", "spool", "log"):
        (c.dir / sub).mkdir()
    values = dict(cluster=CLUSTER, host=socket.gethostname().split(".")[0], dir=c.dir,
                  db_port=db_port, dbd_port=free_port(), ctl_port=free_port(),
                  node_port=free_port())
    (c.dir / "slurm.conf").write_text(SLURM_CONF.format(**values))
    dbd = c.dir / "slurmdbd.conf"
    dbd.write_text(SLURMDBD_CONF.format(**values))
    os.chmod(dbd, 0o600)


def setup() -> Cluster:
    d = Path(tempfile.mkdtemp(prefix="router-slurm-"))
    os.chmod(d, 0o755)
    env = dict(os.environ, SLURM_CONF=str(d / "slurm.conf"))
    c = Cluster(d, env)
    try:
        _munge(c)
        db_port = _mariadb(c)
        _configs(c, db_port)
        c.spawn("slurmdbd", ["slurmdbd", "-D"])
        wait_for(lambda: c.run("sacctmgr", "-n", "list", "cluster", check=False).returncode == 0,
                 60, "slurmdbd")
        c.run("sacctmgr", "-i", "add", "cluster", CLUSTER, check=False)
        c.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(d / "slurm.conf")])
        c.spawn("slurmd", ["slurmd", "-D", "-f", str(d / "slurm.conf")])
        wait_for(lambda: "idle" in c.run("sinfo", "-h", "-o", "%t", check=False).stdout,
                 60, "an idle node")
    except BaseException:
        teardown(c)
        raise
    return c


def teardown(c: Cluster | None) -> None:
    if c is None:
        return
    for proc in reversed(c.procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    shutil.rmtree(c.dir, ignore_errors=True)
