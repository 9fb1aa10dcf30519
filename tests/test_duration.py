"""Time limits in Slurm's spellings, for `--time` and a machine's `time_limit` (issue 17
item 6: a policy default per machine)."""

from __future__ import annotations

import pytest

from router import duration
from router.errors import PolicyError
from router.policy import parse_policy


@pytest.mark.parametrize("text, seconds", [("30", 1800), ("0:1", 1), ("1:30", 90),
                                           ("1:00:00", 3600), ("2-0", 172800),
                                           ("1-2:03", 93780), ("1-2:03:04", 93784)])
def test_slurm_spellings(text, seconds):
    assert duration.seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "-1", "1:2:3:4", "0", "0:0"])
def test_bad_spellings_say_what_was_expected(text):
    with pytest.raises(ValueError):
        duration.seconds(text)


def _machine_limit(value: str) -> float | None:
    text = f"machines:\n  cheap:\n    backend: local\n    time_limit: {value}\n"
    return parse_policy(text, "p.yaml").machines["cheap"].time_limit


@pytest.mark.parametrize("value, seconds", [("3600", 3600), ("0.5", 0.5), ('"60"', 3600),
                                            ("'1:00:00'", 3600), ("1:30:00", 5400),
                                            ("2-0", 172800), ("null", None)])
def test_machine_time_limit_is_seconds_or_a_slurm_spelling(value, seconds):
    assert _machine_limit(value) == seconds


def test_machine_without_time_limit_has_none():
    assert parse_policy("machines: {cheap: {}}\n").machines["cheap"].time_limit is None


@pytest.mark.parametrize("value", ["soon", "0", "-5", "true", "[1]"])
def test_bad_machine_time_limit_names_file_line_and_key(value):
    with pytest.raises(PolicyError) as err:
        _machine_limit(value)
    assert "p.yaml:4: machines.cheap.time_limit" in str(err.value)
