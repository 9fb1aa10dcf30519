"""Training a model: the encoding, the weighting, the folds and the held-out figures, around a
trainer that does the updates. Two trainers do the same fit: NumPy's (`numpyfit`) for histories
where importing and compiling JAX would cost more than the whole fit, JAX's (`jaxfit`) for
large ones and accelerators. Runs over and under their threshold are weighted so that a rare
"expensive" class still counts; each member holds out one fold of distinct inputs
(`folds`), which gives the validation figures without a second training; a seed makes it
deterministic.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.errors import DataError
from router.learn import evaluate, folds, verdict
from router.learn.arch import Arch
from router.learn.dataset import Dataset
from router.learn.encoding import (Layout, class_weights, encode, groups, layout, log_cost_scale,
                                   observations)
from router.learn.modelfile import ModelFile

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Knobs with defaults that fit a few hundred to a few million runs."""

    seed: int = 0
    members: int = 5
    hidden: int = 64
    embed_dim: int = 8
    batch: int = 256
    steps: int = 600               # updates a training makes at least (see `schedule`)
    min_epochs: int = 5            # epochs a large history gets at least
    learning_rate: float = 1e-2    # the peak: it rises, then falls linearly (`schedule`)
    devices: int | None = None     # None: all accelerators, or one CPU device
    progress: bool = False
    epochs: int | None = None      # train exactly this many epochs
    p_cut: float = verdict.DEFAULT_CUT   # the policy's route.p_over: what counts as a call of over
    trainer: str = "auto"          # numpy, jax, or auto: JAX where there are devices for it


def _cost_means(data: Dataset, templates: list[str]) -> dict[str, list[float]]:
    """Mean cost of each template's under and over runs: the report's estimate of a predicted
    cost for history rows recorded before decisions stored theirs."""
    sums: dict[str, list[float]] = {t: [0.0, 0.0, 0.0, 0.0] for t in templates}
    for t, y, c in zip(data.templates, data.labels, data.costs):
        if not math.isnan(c):
            s = sums[t]
            s[2 * y] += c
            s[2 * y + 1] += 1
    return {t: [s[0] / s[1] if s[1] else 0.0, s[2] / s[3] if s[3] else 0.0]
            for t, s in sums.items()}


def _warm_start(trainer: Any, base: ModelFile, shell: Layout) -> None:
    """Start from the base model's weights; new templates get embeddings near the average."""
    arrays = {k: np.array(v) for k, v in trainer.weights.items()}   # writable copies
    old = {k: np.asarray(v) for k, v in base.weights.items()}
    k, t_old, _ = old["embed"].shape
    arrays["embed"][:, :t_old] = old["embed"]
    arrays["embed"][:, t_old:] = old["embed"].mean(axis=1, keepdims=True)
    f_old = base.width
    arrays["w1"][:] = 0.0
    arrays["w1"][:, :f_old] = old["w1"][:, :f_old]
    arrays["w1"][:, shell.width:] = old["w1"][:, f_old:]
    for name in ("b1", "w2", "b2", "w3", "b3"):
        arrays[name] = old[name]
    trainer.weights = arrays


def _use_jax(opts: TrainOptions) -> bool:
    """JAX where it has devices to use: an accelerator, or devices asked for. On the CPU the
    whole NumPy training, from import to model, took less time than JAX's at every size
    `bench/time_to_model.py` runs (up to a million runs), though JAX's compiled epochs are
    faster per sample at large batches."""
    if opts.trainer != "auto":
        return opts.trainer == "jax"
    return opts.devices is not None or _accelerator_plugin()


def _accelerator_plugin() -> bool:
    """Whether a JAX GPU or TPU plugin is installed, found without importing JAX: CUDA and
    ROCm plugins live in JAX's `jax_plugins` namespace package, TPUs need `libtpu`. (Listing
    every installed distribution instead cost more than a tenth of a small training.)"""
    import importlib.util
    return any(importlib.util.find_spec(name) is not None for name in ("jax_plugins", "libtpu"))


def _trainer(arch: Arch, opts: TrainOptions, base: ModelFile | None, shell: Layout) -> Any:
    if _use_jax(opts):
        from router.learn.jaxfit import Trainer
    else:
        from router.learn.numpyfit import Trainer
    trainer = Trainer(arch, opts)
    if base is not None:
        _warm_start(trainer, base, shell)
    return trainer


def _base_shape(opts: TrainOptions, base: ModelFile | None) -> TrainOptions:
    """An incremental fit keeps the base model's members and sizes. It runs the same schedule
    as a fresh one: at a quarter of the rate, `bench/retrain_scaling.py`'s incremental
    accuracy fell further behind a full retrain's (2.6 points against 1.3)."""
    if base is None:
        return opts
    w1, embed = base.weights["w1"], base.weights["embed"]
    return TrainOptions(**{**opts.__dict__, "members": w1.shape[0], "hidden": w1.shape[2],
                           "embed_dim": embed.shape[2]})


def fit(data: Dataset, opts: TrainOptions, base: ModelFile | None = None,
        extra_meta: dict[str, Any] | None = None) -> ModelFile:
    """Train a model on `data`; with `base`, start from its weights (incremental)."""
    if len(data) == 0:
        raise DataError("no training samples")
    shell = layout(data, base)
    opts = _base_shape(opts, base)
    arch = Arch(len(shell.templates), shell.width, opts.embed_dim, opts.hidden, opts.members)
    x, t = encode(data, shell)
    y = np.asarray(data.labels, dtype=np.float32)
    center, spread = log_cost_scale(data, base)
    obs = observations(data, center, spread)
    group = groups(data)
    fold = folds.assign(group, arch.members, opts.seed)
    weight = folds.member_weights(class_weights(y), fold, arch.members)
    trainer = _trainer(arch, opts, base, shell)
    info = trainer.fit(folds.collapse(group, (x, t, obs.z, obs.kind, weight)))
    meta = {"log_cost": [center, spread], "cost_means": _cost_means(data, shell.templates),
            "scale_factor": base.meta.get("scale_factor", 1.0) if base else 1.0}
    model = _model(trainer, shell, meta)
    figures = evaluate.validate(model, x, t, y, obs, group, fold, opts.p_cut)
    meta["scale_factor"] = model.meta["scale_factor"]
    meta.update({
        "arch": arch.__dict__, "samples": len(y), **figures,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "trainer": trainer.backend, "trainer_version": trainer.version,
        "devices": [str(d) for d in trainer.devices],
        "seed": opts.seed, "generation": (base.meta.get("generation", 0) + 1) if base else 1,
        "watermark": max(data.seqs, default=0), **info, **(extra_meta or {}),
    })
    if base is not None:
        meta["cost_means"] = {**base.meta.get("cost_means", {}), **meta["cost_means"]}
        meta["watermark"] = max(meta["watermark"], base.meta.get("watermark", 0))
    return _model(trainer, shell, meta)


def _model(trainer: Any, shell: Layout, meta: dict[str, Any]) -> ModelFile:
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in trainer.weights.items()}
    return ModelFile(weights, shell.templates, shell.thresholds, shell.n_features,
                     shell.mean, shell.scale, dict(meta))
