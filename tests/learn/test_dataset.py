"""Training sets from lines and from the history: both line forms, and errors that name the
line (a data file is the user's input)."""

from __future__ import annotations

import json
import math

import pytest

from router.errors import DataError
from router.learn.dataset import from_lines, from_runs


def threshold_for(argv: list[str]) -> float:
    return 2.0 if argv[0] == "/slow" else 1.0


def test_json_lines_and_pipe_lines_make_the_same_kind_of_sample():
    lines = [
        "# a comment, then a blank line",
        "",
        json.dumps({"template": "/p {num}", "features": [3], "label": 1}),
        json.dumps({"argv": ["/slow", "5"], "cost": 1.5}),      # labelled by its threshold
        json.dumps({"argv": ["/p", "7"], "cost": 1.5}),
    ]
    data = from_lines(lines, threshold_for)
    assert data.templates == ["/p {num}", "/slow {num}", "/p {num}"]
    assert data.features == [(3.0,), (5.0,), (7.0,)]
    assert data.labels == [1, 0, 1] and data.thresholds[1:] == [2.0, 1.0]
    text = from_lines(["4 | 1", "'a b' 9 | false"], None, cmd=["/q"])
    assert text.labels == [1, 0] and text.features[0] == (4.0,)
    assert all(math.isnan(c) for c in text.costs)


@pytest.mark.parametrize("lines, says", [
    (["1 | 1", "{oops"], "data line 2: not JSON"),
    (["3 | maybe"], "data line 1: label must be 0 or 1, got 'maybe'"),
    (["no pipe here"], "data line 1: expected 'INPUT | LABEL' or a JSON object"),
    ([json.dumps({"argv": ["/p", "1"], "cost": 3})], "needs 'label', or 'cost' and a threshold"),
    ([json.dumps({"template": "/p {num}", "label": 1})], "data line 1: bad field"),
    (["\"unclosed | 1"], "data line 1: cannot parse input"),
    (["# only a comment", ""], "no training samples in the data"),
])
def test_bad_data_is_one_error_naming_its_line(lines, says):
    """Given the program the lines are arguments of; without it, see the next test."""
    with pytest.raises(DataError) as info:
        from_lines(lines, None, cmd=["/p"])
    assert says in str(info.value)


def test_label_lines_without_the_program_say_how_to_give_it():
    with pytest.raises(DataError, match="need the program they are arguments of"):
        from_lines(["3 | 1"], None)


def test_history_rows_without_a_cost_are_no_sample_and_each_has_its_own_threshold():
    rows = [
        {"argv": ["/slow", "1"], "template": "/slow {num}", "features": [1.0], "cost": 3.0,
         "done_seq": 7},
        {"argv": ["/p", "1"], "template": "/p {num}", "features": [1.0], "cost": None},
        {"argv": ["/p", "2"], "template": "/p {num}", "features": [2.0], "cost": 0.5},
    ]
    data = from_runs(rows, threshold_for)
    assert (data.labels, data.costs, data.thresholds, data.seqs) == \
        ([1, 0], [3.0, 0.5], [2.0, 1.0], [7, 0])
    part = data.subset([1])
    assert (part.templates, part.costs) == (["/p {num}"], [0.5])
    part.extend(data)
    assert len(part) == 3 and part.seqs == [0, 7, 0]
