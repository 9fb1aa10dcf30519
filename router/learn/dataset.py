"""Training sets: labelled (template, features) samples from the history or from lines.

A label is whether a run's cost went over its template's threshold. Lines may be JSON objects
(what `router collect` prints) or the pipes write-up's `INPUT | LABEL` text, so
`yes "$(cat data.txt)" | head -n 10000 | router train --data - -- ./prog` works: INPUT is the
arguments of the command given after --, so the model learns the template `predict` and the
daemon will look up (`./prog {num}`), and a text line without that command is refused.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from router.errors import DataError
from router.features import shape

ThresholdFor = Callable[[list[str]], float]


@dataclass
class Dataset:
    """Parallel lists, one entry per sample."""

    templates: list[str] = field(default_factory=list)
    features: list[tuple[float, ...]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    timed_out: list[bool] = field(default_factory=list)   # cost is a lower bound: killed

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, template: str, features: tuple[float, ...], label: int, cost: float,
            threshold: float, seq: int = 0, timed_out: bool = False) -> None:
        self.templates.append(template)
        self.features.append(features)
        self.labels.append(label)
        self.costs.append(cost)
        self.thresholds.append(threshold)
        self.seqs.append(seq)
        self.timed_out.append(timed_out)

    def extend(self, other: Dataset) -> None:
        for name in ("templates", "features", "labels", "costs", "thresholds", "seqs",
                     "timed_out"):
            getattr(self, name).extend(getattr(other, name))

    def subset(self, indices: Iterable[int]) -> Dataset:
        out = Dataset()
        for i in indices:
            out.add(self.templates[i], self.features[i], self.labels[i], self.costs[i],
                    self.thresholds[i], self.seqs[i], self.timed_out[i])
        return out


def from_runs(rows: Iterable[dict[str, Any]], threshold_for: ThresholdFor) -> Dataset:
    """Samples from history rows; each row's threshold comes from its own command line."""
    data = Dataset()
    for row in rows:
        if row.get("cost") is None:
            continue
        threshold = threshold_for(row["argv"])
        data.add(row["template"], tuple(row["features"]), int(row["cost"] > threshold),
                 float(row["cost"]), threshold, int(row.get("done_seq") or 0),
                 bool(row.get("timed_out")))
    return data


def _json_sample(obj: Any, lineno: int, threshold_for: ThresholdFor | None,
                 data: Dataset) -> None:
    if not isinstance(obj, dict):
        raise DataError(f"data line {lineno}: expected a JSON object")
    try:
        if "template" in obj:
            template, feats = str(obj["template"]), tuple(float(v) for v in obj["features"])
        else:
            sh = shape([str(a) for a in obj["argv"]], obj.get("cwd"))
            template, feats = sh.template, sh.features
        cost = obj.get("cost")
        argv = [str(a) for a in obj.get("argv") or template.split()]
        threshold = threshold_for(argv) if threshold_for else float("nan")
        if "label" in obj:
            label = _label(obj["label"], lineno)
        elif cost is not None and threshold_for is not None:
            label = int(float(cost) > threshold)
        else:
            raise DataError(f"data line {lineno}: needs 'label', or 'cost' and a threshold")
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"data line {lineno}: bad field {exc}") from None
    data.add(template, feats, label, float(cost) if cost is not None else float("nan"), threshold)


def _label(value: Any, lineno: int) -> int:
    text = str(value).strip()
    if text not in ("0", "1", "0.0", "1.0", "True", "False", "true", "false"):
        raise DataError(f"data line {lineno}: label must be 0 or 1, got {text!r}")
    return int(text in ("1", "1.0", "True", "true"))


def from_lines(lines: Iterable[str], threshold_for: ThresholdFor | None,
               cmd: list[str] | None = None) -> Dataset:
    """Samples from JSON lines or `INPUT | LABEL` lines; errors name the line number."""
    data = Dataset()
    prefix = list(cmd or [])
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"data line {lineno}: not JSON: {exc.msg}") from None
            _json_sample(obj, lineno, threshold_for, data)
            continue
        if "|" not in text:
            raise DataError(f"data line {lineno}: expected 'INPUT | LABEL' or a JSON object")
        if not prefix:
            raise DataError(f"data line {lineno}: 'INPUT | LABEL' lines need the program they "
                            f"are arguments of: router train --data FILE -- ./prog")
        inp, _, label = text.rpartition("|")
        try:
            sh = shape(prefix + shlex.split(inp))
        except ValueError as exc:
            raise DataError(f"data line {lineno}: cannot parse input: {exc}") from None
        data.add(sh.template, sh.features, _label(label, lineno), float("nan"),
                 threshold_for(prefix) if threshold_for else float("nan"))
    if not len(data):
        raise DataError("no training samples in the data")
    return data
