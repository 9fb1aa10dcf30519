"""The figures every training reports on its validation split, from the fast path's batch form
(the same numbers the daemon's decisions would give): routing accuracy at the policy's cut,
the calibration error of p_over at each run's threshold, and the coverage of the predicted
10-90% cost interval (80% when the predicted spread is honest)."""

from __future__ import annotations

from typing import Any

import numpy as np

from router.learn import distribution as dist
from router.learn import verdict
from router.learn.dataset import Dataset
from router.learn.encoding import encode
from router.learn.modelfile import ModelFile, expected_calibration_error


def figures(model: ModelFile, data: Dataset, p_cut: float) -> dict[str, Any]:
    """Validation figures; None for each when there is no validation split (too few runs)."""
    if not len(data):
        return {"val_accuracy": None, "calibration_error": None, "coverage_10_90": None}
    x, t = encode(data, model)
    heads = model.predict_batch(t, x)
    mu, s = dist.combine_arrays(heads[..., 0], heads[..., 1])
    y = np.asarray(data.labels)
    threshold = np.asarray(data.thresholds, dtype=np.float64)
    p = dist.p_over_arrays(mu, s, np.log(np.where(threshold > 0, threshold, 1.0)))
    cost = np.asarray(data.costs, dtype=np.float64)
    exact = np.isfinite(cost) & (cost > 0) & ~np.asarray(data.timed_out, bool)
    return {
        "val_accuracy": float((verdict.called_over(p, p_cut) == (y == 1)).mean()),
        "calibration_error": expected_calibration_error(p, y.astype(float)),
        "coverage_10_90": dist.coverage(mu[exact], s[exact], np.log(cost[exact])),
    }
