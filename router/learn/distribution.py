"""A run's cost as a distribution: a logistic over the natural log of its reference CPU seconds.

Why a logistic in log space: costs span decades and their noise is multiplicative, so log cost
is near symmetric with a spread that depends on the program, not on its size; the logistic's
CDF is a sigmoid, so the chance of going over any threshold t is the seed's sigmoid,
p_over(t) = sigmoid((mu - log t) / s), in closed form at decision time, and so are its
quantiles (mu + s log(q / (1 - q))) and its censored likelihoods (a run killed at its time
limit, or a line that says only "over"). A few fixed quantiles would need a monotone fit and
interpolation for each threshold; a Gaussian has no closed-form CDF in NumPy's scalar math.

Each ensemble member predicts its own (mu_k, s_k); the ensemble's distribution is the logistic
with the members' mixture's mean and variance, so the members' disagreement (the epistemic
part) widens it as the learned scales (the run-to-run noise) do. NumPy and math only: the
daemon's fast path uses this module.
"""

from __future__ import annotations

import math

import numpy as np

S_MIN = 0.01      # floor of a member's scale, in the model's normalised log units
BETA = 0.5        # training weighs each run's likelihood by its scale^(2 BETA): see jaxfit
_VAR = 3.0 / math.pi ** 2   # a logistic of scale s has variance s^2 pi^2 / 3


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-min(max(v, -500.0), 500.0)))


def softplus(v: float) -> float:
    return v if v > 30.0 else math.log1p(math.exp(v))


def combine(mus: list[float], scales: list[float]) -> tuple[float, float]:
    """The ensemble's logistic: the members' mixture's mean, and the scale of its variance."""
    k = len(mus)
    mu = sum(mus) / k
    spread = sum((m - mu) * (m - mu) for m in mus) / k
    return mu, math.sqrt(sum(s * s for s in scales) / k + _VAR * spread)


def p_over(mu: float, s: float, threshold: float) -> float:
    """P(cost > threshold) for the logistic (mu, s) of log cost."""
    if not threshold > 0 or math.isnan(mu):
        return float("nan")
    return sigmoid((mu - math.log(threshold)) / s)


def quantile(mu: float, s: float, q: float) -> float:
    """The cost (seconds) under which a run falls with probability q."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    return math.exp(mu + s * math.log(q / (1.0 - q)))


def combine_arrays(mus: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """combine() over a batch: members on axis 0."""
    mu = mus.mean(axis=0)
    return mu, np.sqrt((scales ** 2).mean(axis=0) + _VAR * mus.var(axis=0))


def p_over_arrays(mu: np.ndarray, s: np.ndarray, log_threshold: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip((mu - log_threshold) / s, -500, 500)))


def coverage(mu: np.ndarray, s: np.ndarray, log_cost: np.ndarray, low: float = 0.1,
             high: float = 0.9) -> float | None:
    """Share of costs inside the predicted [low, high] quantile interval; None without costs."""
    if not len(log_cost):
        return None
    lo = mu + s * math.log(low / (1 - low))
    hi = mu + s * math.log(high / (1 - high))
    return float(((log_cost >= lo) & (log_cost <= hi)).mean())
