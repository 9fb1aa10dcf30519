"""The fault-injection suite: each fault once, at a random moment of a mixed load, against a
real daemon; after each, the audit of tests/faults/harness.py must find nothing wrong."""

from __future__ import annotations

import pytest

from harness import FAULTS, Chaos, Tally


@pytest.mark.parametrize("fault", FAULTS)
def test_after_the_fault_every_job_is_recorded_once_and_final(tmp_path, fault):
    chaos = Chaos(tmp_path, seed=sum(map(ord, fault)))
    chaos.daemon.start()
    total = Tally()
    try:
        total.add(chaos.run_round(fault))
    finally:
        total.add(chaos.close())
    print(total.line())
    assert total.submitted and total.recorded == total.submitted, total.line()
    assert (total.lost, total.duplicated, total.unfinished, total.orphans, total.hangs,
            total.crashes) == (0, 0, 0, 0, 0, 0), total.line()
