"""Which runs each ensemble member holds out, and the rows a trainer reads.

Every member trains on all runs but one fold of the distinct inputs, a different fold each
(K-fold over the K members). Each run is then predicted, for the validation figures, by the
member that never saw it, and still teaches the other K - 1: one training gives held-out
figures and a model that learned from every run. A split and a refit on everything, as before,
trained twice; a split alone would leave a fifth of a small history unlearned. Folds are by
distinct input: the same `INPUT | LABEL` line 500 times in and out of one member's fold would
let its figures see its own training rows. Fewer than 20 distinct inputs, or one member: no
fold, every member trains on every run, and there are no held-out figures (a figure from two
held-out rows says nothing).
"""

from __future__ import annotations

import numpy as np

NONE = -1   # the fold of a run every member trains on
MIN_DISTINCT = 20


def assign(group: np.ndarray, members: int, seed: int) -> np.ndarray:
    """Each run's fold: the member that does not train on it, or NONE."""
    distinct = np.unique(group)
    if members < 2 or len(distinct) < MIN_DISTINCT:
        return np.full(len(group), NONE, dtype=np.int64)
    fold_of = np.random.default_rng(seed).permutation(len(distinct)) % members
    return fold_of[np.searchsorted(distinct, group)]


def member_weights(weight: np.ndarray, fold: np.ndarray, members: int) -> np.ndarray:
    """[N, K]: each run's weight for each member, 0 for the member holding it out."""
    w = np.repeat(np.asarray(weight, dtype=np.float32)[:, None], members, axis=1)
    held = np.flatnonzero(fold != NONE)
    w[held, fold[held]] = 0.0
    return w


def collapse(group: np.ndarray, rows: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Identical observations of one input as one row weighing as many: the same gradient,
    fewer rows per epoch (label lines repeat; measured costs almost never do). `rows` are
    (x, t, z, kind, w [N, K])."""
    x, t, z, kind, w = rows
    keys = np.stack([group.astype(np.float64), kind.astype(np.float64), z.astype(np.float64)], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    weight = np.stack([np.bincount(inverse, weights=w[:, k], minlength=len(first))
                       for k in range(w.shape[1])], 1).astype(np.float32)
    return x[first], t[first], z[first], kind[first], weight
