"""Input encoding: from a training set to the arrays a network reads, and the layout a model
file keeps so that the fast path encodes one job the same way.

Kept apart from the training loop (and from JAX): the encoding is a property of the data and the
model file, and retraining, the fast path and tests read it without the optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router.errors import DataError
from router.learn.dataset import Dataset
from router.learn.modelfile import ModelFile, slog


def scaling(data: Dataset, templates: list[str], width: int,
            base: ModelFile | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-template mean and spread of slog(features); a base model's are kept as they were."""
    mean = np.zeros((len(templates), width))
    scale = np.ones((len(templates), width))
    by_t: dict[str, list[tuple[float, ...]]] = {}
    for t, f in zip(data.templates, data.features):
        by_t.setdefault(t, []).append(f)
    for i, t in enumerate(templates):
        if base is not None and t in base.index:
            j, n = base.index[t], base.n_features[base.index[t]]
            mean[i, :n], scale[i, :n] = base.mean[j, :n], base.scale[j, :n]
        elif t in by_t:
            x = slog(np.asarray(by_t[t], dtype=float))
            n = x.shape[1]
            mean[i, :n] = x.mean(axis=0)
            scale[i, :n] = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    return mean, scale


def encode(data: Dataset, model: ModelFile | Layout) -> tuple[np.ndarray, np.ndarray]:
    """Scaled, padded features [N, F] and template indices [N]; one array operation per
    template, not per run (a history of a million runs is read in one command)."""
    index = model.index
    t_idx = np.array([index[t] for t in data.templates], dtype=np.int32)
    x = np.zeros((len(data), model.width), dtype=np.float32)
    order = np.argsort(t_idx, kind="stable")
    bounds = np.flatnonzero(np.diff(t_idx[order])) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        i = int(t_idx[rows[0]])
        try:
            f = np.array([data.features[r] for r in rows], dtype=float)
        except ValueError:
            raise DataError(f"template {model.templates[i]!r} has runs with different "
                            "feature counts") from None
        n = f.shape[1] if f.ndim == 2 else 0
        if n:
            x[rows, :n] = (slog(f) - model.mean[i, :n]) / model.scale[i, :n]
    return x, t_idx


def _template_info(data: Dataset, base: ModelFile | None) -> tuple[list[str], list[float], list[int]]:
    templates = list(base.templates) if base else []
    thresholds = list(base.thresholds) if base else []
    n_features = list(base.n_features) if base else []
    known = set(templates)
    latest: dict[str, tuple[float, int]] = {}
    for t, f, th in zip(data.templates, data.features, data.thresholds):
        if t in latest and latest[t][1] != len(f):
            raise DataError(f"template {t!r} has runs with {latest[t][1]} and {len(f)} features")
        latest[t] = (th, len(f))
    for t, (th, n) in latest.items():
        if t not in known:
            templates.append(t)
            thresholds.append(th)
            n_features.append(n)
            known.add(t)
        else:
            i = templates.index(t)
            thresholds[i] = th
            if n_features[i] != n:
                raise DataError(f"model for other features: template {t!r} has "
                                f"{n_features[i]} features in the model, {n} in the data")
    return templates, thresholds, n_features


@dataclass
class Layout:
    """Templates, their thresholds and feature counts, and the feature scaling of a model."""

    templates: list[str]
    thresholds: list[float]
    n_features: list[int]
    mean: np.ndarray
    scale: np.ndarray

    @property
    def width(self) -> int:
        return int(self.mean.shape[1])

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.templates)}


def layout(data: Dataset, base: ModelFile | None) -> Layout:
    templates, thresholds, n_features = _template_info(data, base)
    width = max([*n_features, base.width if base else 0, 1])
    mean, scale = scaling(data, templates, width, base)
    return Layout(templates, thresholds, n_features, mean, scale)


EXACT, ABOVE, BELOW = 0, 1, 2   # what a sample says of its log cost: it, or a bound


@dataclass
class Observations:
    """What each run teaches the distribution head, in the model's normalised log units: a
    measured cost (its density), or a censored one (a Tobit-style bound): a run killed at its
    time limit cost more than it had used; an `INPUT | LABEL` line says over or under its
    threshold, nothing more."""

    z: np.ndarray              # [N] the log cost, or the bound
    kind: np.ndarray           # [N] EXACT, ABOVE or BELOW
    log_threshold: np.ndarray  # [N] each run's threshold, normalised the same way


def log_cost_scale(data: Dataset, base: ModelFile | None) -> tuple[float, float]:
    """Centre and spread of log cost, so the network's outputs start near 0 and 1; a base
    model's are kept, so its weights mean what they meant."""
    if base is not None:
        c, s = base.meta["log_cost"]
        return float(c), float(s)
    cost = np.asarray(data.costs, dtype=np.float64)
    cost = cost[np.isfinite(cost) & (cost > 0)]
    if not len(cost):
        cost = np.asarray(data.thresholds, dtype=np.float64)
        cost = cost[np.isfinite(cost) & (cost > 0)]
    if not len(cost):
        return 0.0, 1.0
    z = np.log(cost)
    return float(z.mean()), float(max(z.std(), 0.1))


def observations(data: Dataset, center: float, spread: float) -> Observations:
    cost = np.asarray(data.costs, dtype=np.float64)
    threshold = np.asarray(data.thresholds, dtype=np.float64)
    measured = np.isfinite(cost) & (cost > 0)
    ok_t = np.isfinite(threshold) & (threshold > 0)
    if not (measured | ok_t).all():
        raise DataError("a run has neither a measured cost nor a threshold to bound it")
    labels = np.asarray(data.labels)
    kind = np.where(measured, np.where(np.asarray(data.timed_out, bool), ABOVE, EXACT),
                    np.where(labels == 1, ABOVE, BELOW))
    log_t = np.log(np.where(ok_t, threshold, 1.0))
    z = np.where(measured, np.log(np.where(measured, cost, 1.0)), log_t)
    return Observations(((z - center) / spread).astype(np.float32), kind.astype(np.int32),
                        ((log_t - center) / spread).astype(np.float32))


def groups(data: Dataset) -> np.ndarray:
    """One id per distinct input (template and features): repeats of one input are one group,
    so a split never puts the same input on both sides."""
    ids: dict[tuple[str, tuple[float, ...]], int] = {}
    return np.array([ids.setdefault((t, tuple(f)), len(ids))
                     for t, f in zip(data.templates, data.features)], dtype=np.int64)


def class_weights(y: np.ndarray) -> np.ndarray:
    pos = y.sum()
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return np.ones(len(y), dtype=np.float32)
    return np.where(y == 1, len(y) / (2 * pos), len(y) / (2 * neg)).astype(np.float32)


