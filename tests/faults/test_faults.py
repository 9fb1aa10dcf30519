"""The fault-injection suite: each fault once, at a random moment of a mixed load, against a
real daemon; after each, the audit of tests/faults/harness.py must find nothing wrong."""

from __future__ import annotations

import pytest

import disk
from conftest import need
from harness import FAULTS, NEEDS_DISK, Chaos, Tally


@pytest.mark.parametrize("fault", FAULTS)
def test_after_the_fault_every_job_is_recorded_once_and_final(tmp_path, fault):
    ext4 = None
    if fault in NEEDS_DISK:
        why = disk.why_not()
        need(why is None, why or "")
        ext4 = disk.Ext4Disk(tmp_path)
    chaos = Chaos(tmp_path, seed=sum(map(ord, fault)), disk=ext4)
    chaos.daemon.start()
    total = Tally()
    try:
        total.add(chaos.run_round(fault))
    finally:
        total.add(chaos.close())
        if ext4 is not None:
            ext4.remove()
    print(total.line())
    assert total.submitted and total.recorded == total.submitted, total.line()
    assert (total.lost, total.duplicated, total.unfinished, total.orphans, total.hangs,
            total.crashes) == (0, 0, 0, 0, 0, 0), total.line()
