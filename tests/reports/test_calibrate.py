"""`router calibrate --write`: speeds land in the policy file, everything else stays as written."""

from __future__ import annotations

import pytest

from router.reports.calibrate import write_speeds
from router.errors import PolicyError
from router.policy import load_policy

POLICY = """# machines, by hand
machines:
  cheap:
    backend: local   # the box under the desk
    price: 1.0
    speed: 0.5
  fast:
    backend: local
    price: 3.0
  flow: {backend: local, price: 2.0}
threshold: 0.04   # seconds
"""


def test_speeds_are_set_in_place_and_comments_kept(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    write_speeds(str(path), {"cheap": 0.25, "fast": 2.5, "flow": 1.5})
    text = path.read_text()
    assert "# machines, by hand" in text and "# the box under the desk" in text
    assert "threshold: 0.04   # seconds" in text
    machines = load_policy(path).machines
    assert (machines["cheap"].speed, machines["fast"].speed, machines["flow"].speed) == \
        (0.25, 2.5, 1.5)
    write_speeds(str(path), {"fast": 3.0})                    # again: replaced, not repeated
    assert path.read_text().count("speed:") == 3 and load_policy(path).machines["fast"].speed == 3


def test_a_result_that_does_not_validate_leaves_the_file_alone(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    with pytest.raises(PolicyError):
        write_speeds(str(path), {"cheap": -1.0})
    assert path.read_text() == POLICY
