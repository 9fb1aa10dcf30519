"""The spool of job output: old output goes, running and recent jobs' output stays."""

from __future__ import annotations

import os
import time

from router.daemon.spool import Spool


def test_prune_removes_only_old_output_of_finished_jobs(tmp_path):
    spool = Spool(tmp_path / "spool")
    old = time.time() - 10 * 86400
    for name in ("1.out", "1.err", "2.out", "3.out", "notes.txt"):
        (spool.dir / name).write_text(name)
    for name in ("1.out", "1.err", "2.out", "notes.txt"):
        os.utime(spool.dir / name, (old, old))
    assert spool.prune(7 * 86400, keep={2}) == 2                 # job 2 still runs
    assert sorted(p.name for p in spool.dir.iterdir()) == ["2.out", "3.out", "notes.txt"]
    assert spool.read(1, 1, None) == b"" and spool.read(3, 1, None) == b"3.out"
