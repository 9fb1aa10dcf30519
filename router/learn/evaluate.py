"""The figures every training reports on its held-out runs, each predicted by the member that
did not train on it (`folds`), from the fast path's batch form: routing accuracy at the
policy's cut, the calibration error of p_over at each run's threshold, and the coverage of
the predicted 10-90% cost interval (80% when the predicted spread is honest).

The learned scales come out too narrow on small sets (each member fits its training runs'
noise: 64% coverage on the examples' sweeps), so one factor on every scale is fitted on the
held-out inputs (temperature scaling, kept in the model file), two-fold so that the coverage
reported is measured on inputs the factor was not fitted on. It moves no routing decision:
p_over stays on the side of the threshold that the location mu is. One member's figures are a
little worse than the ensemble's would be: they are a floor, not a flattering estimate. So is
the coverage: the factor is fitted for one member's interval, and the ensemble's adds its
members' disagreement, so on new inputs its 10-90% interval holds more than the 80% reported
(it errs wide, not narrow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from router.learn import distribution as dist
from router.learn import folds, verdict
from router.learn.encoding import EXACT, Observations
from router.learn.modelfile import ModelFile, expected_calibration_error


@dataclass
class _Split:
    """The validation runs as arrays: every member's predicted (mu, s) at scale factor 1, and
    what was measured. The model is run once; a scale factor only multiplies the scales."""

    mus: np.ndarray      # [K, N]
    scales: np.ndarray   # [K, N]
    labels: np.ndarray
    log_t: np.ndarray
    exact: np.ndarray    # measured costs (not bounds)
    log_cost: np.ndarray

    def part(self, rows: np.ndarray) -> _Split:
        return _Split(self.mus[:, rows], self.scales[:, rows], self.labels[rows],
                      self.log_t[rows], self.exact[rows], self.log_cost[rows])

    def distribution(self, tau: float) -> tuple[np.ndarray, np.ndarray]:
        return dist.combine_arrays(self.mus, self.scales * tau)


def _held_out(model: ModelFile, x: np.ndarray, t: np.ndarray, y: np.ndarray,
              obs: Observations, fold: np.ndarray) -> _Split:
    """Each run as predicted by the member holding it out (`folds`), from the rows the
    training encoded; costs and thresholds back in log seconds."""
    heads = model.predict_batch(t, x)[fold, np.arange(len(fold))][None]
    tau = float(model.meta.get("scale_factor", 1.0))
    center, spread = model.meta["log_cost"]
    exact = obs.kind == EXACT
    return _Split(heads[..., 0], heads[..., 1] / tau, y,
                  center + spread * obs.log_threshold.astype(np.float64), exact,
                  np.where(exact, center + spread * obs.z.astype(np.float64), 0.0))


def scale_factor(split: _Split) -> float:
    """The factor on every member's scale that makes the 10-90% interval hold 80% of the
    split's measured costs (1 when it has fewer than 5); kept within [0.5, 20]."""
    measured = split.part(np.flatnonzero(split.exact))
    if len(measured.labels) < 5:
        return 1.0
    tau = 1.0
    for _ in range(3):   # the members' disagreement is not scaled: a few fixed-point steps
        mu, s = measured.distribution(tau)
        tau = float(np.clip(tau * np.quantile(np.abs(measured.log_cost - mu) / (s * np.log(9.0)),
                                              0.8), 0.5, 20.0))
    return tau


def figures(split: _Split, tau: float, p_cut: float) -> dict[str, Any]:
    """Validation figures; None for each when there is no validation split (too few runs)."""
    if not len(split.labels):
        return {"val_accuracy": None, "calibration_error": None, "coverage_10_90": None}
    mu, s = split.distribution(tau)
    p = dist.p_over_arrays(mu, s, split.log_t)
    e = split.exact
    return {
        "val_accuracy": float((verdict.called_over(p, p_cut) == (split.labels == 1)).mean()),
        "calibration_error": expected_calibration_error(p, split.labels.astype(float)),
        "coverage_10_90": dist.coverage(mu[e], s[e], split.log_cost[e]),
    }


MAX_ROWS = 100_000   # held-out runs the figures are computed on, at most (a random sample)


def validate(model: ModelFile, x: np.ndarray, t: np.ndarray, y: np.ndarray, obs: Observations,
             group: np.ndarray, fold: np.ndarray, p_cut: float) -> dict[str, Any]:
    """The scale factor (into model.meta) and the held-out figures, with `val_samples`. The
    factor is fitted on each half of the held-out inputs and the coverage measured on the
    other (two-fold), so the coverage reported is out of sample; the model keeps the two
    factors' geometric mean."""
    rows = np.flatnonzero(fold != folds.NONE)
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_ROWS, replace=False))
    held_obs = Observations(obs.z[rows], obs.kind[rows], obs.log_threshold[rows])
    split = _held_out(model, x[rows], t[rows], y[rows], held_obs, fold[rows])
    # group ids follow the history's order: halves by id would be halves by program
    held = np.random.default_rng(0).permutation(np.unique(group[rows]))
    first = np.isin(group[rows], held[: len(held) // 2])
    if not (first.any() and (~first).any()):
        out = figures(split, float(model.meta.get("scale_factor", 1.0)), p_cut)
        return {**out, "val_samples": len(rows)}
    covered, factors = [], []
    for fit_on, check in ((first, ~first), (~first, first)):
        tau = scale_factor(split.part(np.flatnonzero(fit_on)))
        factors.append(tau)
        covered.append(figures(split.part(np.flatnonzero(check)), tau, p_cut)["coverage_10_90"])
    model.meta["scale_factor"] = float(np.sqrt(factors[0] * factors[1]))
    out = figures(split, model.meta["scale_factor"], p_cut)
    if None not in covered:
        out["coverage_10_90"] = float(np.mean(covered))
    return {**out, "val_samples": len(rows)}
