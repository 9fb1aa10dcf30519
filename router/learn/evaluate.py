"""The figures every training reports on its validation split, from the fast path's batch form
(the same numbers the daemon's decisions would give): routing accuracy at the policy's cut,
the calibration error of p_over at each run's threshold, and the coverage of the predicted
10-90% cost interval (80% when the predicted spread is honest).

The learned scales come out too narrow on small sets (each member fits its training runs'
noise: 64% coverage on the examples' sweeps), so one factor on every scale is fitted on the
validation inputs (temperature scaling, kept in the model file), two-fold so that the coverage
reported is measured on inputs the factor was not fitted on. It moves no routing decision:
p_over stays on the side of the threshold that the location mu is."""

from __future__ import annotations

from typing import Any

import numpy as np

from router.learn import distribution as dist
from router.learn import verdict
from router.learn.dataset import Dataset
from router.learn.encoding import encode
from router.learn.modelfile import ModelFile, expected_calibration_error


def _measured(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    cost = np.asarray(data.costs, dtype=np.float64)
    exact = np.isfinite(cost) & (cost > 0) & ~np.asarray(data.timed_out, bool)
    return cost, exact


def _distribution(model: ModelFile, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    x, t = encode(data, model)
    heads = model.predict_batch(t, x)
    return dist.combine_arrays(heads[..., 0], heads[..., 1])


def scaled(model: ModelFile, tau: float) -> ModelFile:
    """The same model with another scale factor."""
    return ModelFile(model.weights, model.templates, model.thresholds, model.n_features,
                     model.mean, model.scale, {**model.meta, "scale_factor": tau})


def scale_factor(model: ModelFile, data: Dataset) -> float:
    """The factor on every member's scale that makes the 10-90% interval hold 80% of `data`'s
    measured costs (1 when it has none); kept within [0.5, 20]."""
    cost, exact = _measured(data)
    if exact.sum() < 5:
        return 1.0
    measured, z = data.subset(np.flatnonzero(exact)), np.log(cost[exact])
    tau = 1.0
    for _ in range(3):   # the members' disagreement is not scaled: a few fixed-point steps
        mu, s = _distribution(scaled(model, tau), measured)
        tau = float(np.clip(tau * np.quantile(np.abs(z - mu) / (s * np.log(9.0)), 0.8),
                            0.5, 20.0))
    return tau


def figures(model: ModelFile, data: Dataset, p_cut: float) -> dict[str, Any]:
    """Validation figures; None for each when there is no validation split (too few runs)."""
    if not len(data):
        return {"val_accuracy": None, "calibration_error": None, "coverage_10_90": None}
    mu, s = _distribution(model, data)
    y = np.asarray(data.labels)
    threshold = np.asarray(data.thresholds, dtype=np.float64)
    p = dist.p_over_arrays(mu, s, np.log(np.where(threshold > 0, threshold, 1.0)))
    cost, exact = _measured(data)
    return {
        "val_accuracy": float((verdict.called_over(p, p_cut) == (y == 1)).mean()),
        "calibration_error": expected_calibration_error(p, y.astype(float)),
        "coverage_10_90": dist.coverage(mu[exact], s[exact], np.log(cost[exact])),
    }


def validate(model: ModelFile, data: Dataset, group: np.ndarray, val_idx: np.ndarray,
              p_cut: float) -> dict[str, Any]:
    """The scale factor (into model.meta) and the validation figures. The factor is fitted on
    each half of the validation inputs and the coverage measured on the other (two-fold), so
    the coverage reported is out of sample; the model keeps the two factors' geometric mean."""
    held = np.unique(group[val_idx])
    first = np.isin(group[val_idx], held[: len(held) // 2])
    if not (first.any() and (~first).any()):
        return figures(model, data.subset(val_idx), p_cut)
    covered, factors = [], []
    for fit_on, check in ((first, ~first), (~first, first)):
        tau = scale_factor(model, data.subset(val_idx[fit_on]))
        factors.append(tau)
        check_set = data.subset(val_idx[check])
        covered.append(figures(scaled(model, tau), check_set, p_cut)["coverage_10_90"])
    model.meta["scale_factor"] = float(np.sqrt(factors[0] * factors[1]))
    out = figures(scaled(model, model.meta["scale_factor"]), data.subset(val_idx), p_cut)
    if None not in covered:
        out["coverage_10_90"] = float(np.mean(covered))
    return out
