"""Training: whole epochs in one jitted function, the ensemble vmapped, data-parallel over devices.

An epoch is `lax.scan` over batches inside one `jax.jit`, so Python dispatch does not bound the
speed; every ensemble member is trained at once on stacked parameters; the batch axis is
sharded over a `Mesh` of the devices used (on a GPU or TPU, all of them; on the CPU one by
default, since sharding over forced host devices only made the CPU slower here). The loss is
the negative log-likelihood of each run's log cost under each member's logistic, censored for
runs that only bound it (see `encoding.Observations`); runs over and under their threshold are
weighted so that a rare "expensive" class still counts; training stops early on a validation
split of distinct inputs; a seed makes it deterministic.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from router.learn import verdict
from router.learn.dataset import Dataset
from router.errors import DataError
from router.learn.distribution import S_MIN
from router.learn.model import Arch, ensemble_heads, from_arrays, graph, init_members, to_arrays
from router.learn import evaluate
from router.learn.encoding import (ABOVE, EXACT, Layout, class_weights, encode, groups, layout,
                                   log_cost_scale, observations)
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
    max_epochs: int = 3000
    patience: int = 1000           # updates without a better validation score before stopping
    learning_rate: float = 3e-3
    val_fraction: float = 0.2
    devices: int | None = None     # None: all accelerators, or one CPU device
    progress: bool = False
    min_steps: int = 3000          # small data sets get more epochs, not fewer updates
    epochs: int | None = None      # train exactly this many epochs, no early stopping
    p_cut: float = verdict.DEFAULT_CUT   # the policy's route.p_over: what counts as a call of over


def pick_devices(count: int | None) -> list[Any]:
    devices = jax.local_devices()
    if count is None:
        count = 1 if devices[0].platform == "cpu" else len(devices)
    if count > len(devices):
        raise DataError(f"asked for {count} devices, JAX sees {len(devices)}")
    return devices[:count]


def _cost_means(data: Dataset, templates: list[str]) -> dict[str, list[float]]:
    """Mean cost of each template's under and over runs: the expected-cost rule's inputs."""
    sums: dict[str, list[float]] = {t: [0.0, 0.0, 0.0, 0.0] for t in templates}
    for t, y, c in zip(data.templates, data.labels, data.costs):
        if not math.isnan(c):
            s = sums[t]
            s[2 * y] += c
            s[2 * y + 1] += 1
    return {t: [s[0] / s[1] if s[1] else 0.0, s[2] / s[3] if s[3] else 0.0]
            for t, s in sums.items()}


def _split(group: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows, split by distinct input: a repeated input (the same
    `INPUT | LABEL` line 500 times) on both sides would let validation see its own training
    rows, and early stopping would never see the model get worse. Fewer than 20 distinct
    inputs: no validation split (a figure from two held-out rows says nothing)."""
    distinct = np.unique(group)
    n_val = int(len(distinct) * fraction) if len(distinct) >= 20 else 0
    held = np.random.default_rng(seed).permutation(distinct)[:n_val]
    is_val = np.isin(group, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _collapse(group: np.ndarray, rows: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Identical observations of one input as one row weighing as many: the same gradient,
    fewer rows per epoch (label lines repeat; measured costs almost never do)."""
    x, t, z, kind, w = rows
    keys = np.stack([group.astype(np.float64), kind.astype(np.float64), z.astype(np.float64)], 1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=w, minlength=len(first)).astype(np.float32)
    return x[first], t[first], z[first], kind[first], weight


def _enable_compile_cache() -> None:
    """Reuse compiled epochs across processes: a second `router train` skips the compile."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    try:
        jax.config.update("jax_compilation_cache_dir", os.path.join(base, "router", "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (AttributeError, ValueError) as exc:   # older JAX: compile every time
        log.debug("no persistent compilation cache: %s", exc)


_enable_compile_cache()


def _padded(pad: int, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array with `pad` zero rows more: a whole number of batches; padded rows weigh
    nothing (their weight is 0)."""
    return [np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a
            for a in arrays]


def _batch_rows(a: jax.Array, mesh: Mesh | None) -> jax.Array:
    """[steps, batch, ...] with each batch split over the mesh's devices (data-parallel)."""
    return a if mesh is None else jax.lax.with_sharding_constraint(
        a, NamedSharding(mesh, P(None, "data")))


@dataclass(frozen=True)
class Compiled:
    """The jitted functions of one architecture, learning rate, batch and chunk. A row is
    (x, template, z, kind, weight): see `encoding.Observations`."""

    tx: optax.GradientTransformation
    epochs: Any     # (states, opt_state, perms, *rows) -> (states, opt_state, last loss)
    loss: Any       # (states, *rows) -> mean negative log-likelihood
    init: Any       # (keys) -> stacked member states
    p_over: Any     # (states, x, t, log_threshold) -> the ensemble's p_over [N]


def nll(heads: jax.Array, z: jax.Array, kind: jax.Array) -> jax.Array:
    """Negative log-likelihood of each observation under each member's logistic: the density
    of a measured log cost, or the probability of the side of a bound (censored)."""
    mu, s = heads[..., 0], jax.nn.softplus(heads[..., 1]) + S_MIN
    u = (z - mu) / s
    exact = u + jnp.log(s) + 2.0 * jax.nn.softplus(-u)
    return jnp.where(kind == EXACT, exact, jnp.where(kind == ABOVE, jax.nn.softplus(u),
                                                     jax.nn.softplus(-u)))


def ensemble_p_over(heads: jax.Array, log_threshold: jax.Array) -> jax.Array:
    """The same combination of members as the fast path (distribution.combine)."""
    mus, scales = heads[..., 0], jax.nn.softplus(heads[..., 1]) + S_MIN
    mu = mus.mean(axis=0)
    s = jnp.sqrt((scales ** 2).mean(axis=0) + 3.0 / math.pi ** 2 * mus.var(axis=0))
    return jax.nn.sigmoid((mu - log_threshold) / s)


@functools.lru_cache(maxsize=8)
def _compiled(arch: Arch, lr: float, batch: int, chunk: int,
              mesh: Mesh | None = None) -> Compiled:
    """The jitted functions for one architecture: built once per process, not per fit."""
    graphdef = graph(arch)
    tx = optax.adam(lr)

    def loss_fn(states: Any, x: jax.Array, t: jax.Array, z: jax.Array, kind: jax.Array,
                w: jax.Array) -> jax.Array:
        per = nll(ensemble_heads(graphdef, states, x, t), z[None, :], kind[None, :]) * w[None, :]
        return per.sum() / jnp.maximum(w.sum(), 1.0)   # summed over members: separate grads

    def step(carry: Any, rows: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        states, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(states, *rows)
        updates, opt_state = tx.update(grads, opt_state, states)
        return (optax.apply_updates(states, updates), opt_state), loss

    def epochs(states: Any, opt_state: Any, perms: jax.Array,
               *rows: jax.Array) -> tuple[Any, Any, jax.Array]:
        """One epoch per row of `perms` [chunk, n], each one lax.scan over the batches of the
        set shuffled by it. The shuffles come from the host: `jax.random.permutation` sorts,
        and on the CPU it took 30 ms for 65k rows, more than a whole epoch at batch 4096."""
        n = rows[0].shape[0]

        def epoch(carry: Any, perm: jax.Array) -> tuple[Any, jax.Array]:
            batches = tuple(_batch_rows(a[perm].reshape(n // batch, batch, *a.shape[1:]), mesh)
                            for a in rows)
            carry, losses = jax.lax.scan(step, carry, batches)
            return carry, losses.mean()

        (states, opt_state), losses = jax.lax.scan(epoch, (states, opt_state), perms)
        return states, opt_state, losses[-1]

    def p_over(states: Any, x: jax.Array, t: jax.Array, log_threshold: jax.Array) -> jax.Array:
        return ensemble_p_over(ensemble_heads(graphdef, states, x, t), log_threshold)

    return Compiled(tx, jax.jit(epochs), jax.jit(loss_fn),
                    jax.jit(functools.partial(init_members, arch)), jax.jit(p_over))


class Trainer:
    """Trains one ensemble on one device set; the compiled functions are shared."""

    CHUNK = 10   # epochs per jitted call at most, and how often early stopping looks

    def __init__(self, arch: Arch, opts: TrainOptions):
        self.arch = arch
        self.opts = opts
        self.devices = pick_devices(opts.devices)
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, P())
        self.rows = NamedSharding(self.mesh, P("data"))
        self.base = _compiled(arch, opts.learning_rate, 1, 1)
        keys = jax.random.split(jax.random.key(opts.seed), arch.members)
        self.states = self.base.init(keys)

    def fit(self, rows: tuple[np.ndarray, ...],
            val: tuple[np.ndarray, ...] | None) -> dict[str, Any]:
        """Train; with `val`, stop early, but never before `min_steps` updates or half the epoch
        cap, whichever comes first (on a few hundred runs of several templates one shared
        validation error can stop before a hard template, a band, is learned), and keep the
        states of epoch max(best, that floor): the model a refit of that many epochs makes, so
        the validation figures describe it. `rows` are (x, t, z, kind, w), `val` the same plus
        (log_threshold, label)."""
        n = len(rows[0])
        ndev = len(self.devices)
        batch = max(ndev, min(self.opts.batch, n) // ndev * ndev)
        rows = tuple(_padded((-n) % batch, *rows))
        steps_per_epoch = len(rows[0]) // batch
        floor = min(self.opts.max_epochs // 2, max(3, -(-self.opts.min_steps // steps_per_epoch)))
        patience = -(-self.opts.patience // steps_per_epoch)
        epochs = self.opts.epochs or (self.opts.max_epochs if val is not None else floor)
        chunk = max(1, min(self.CHUNK, epochs, patience))   # looks at least once per patience
        run = _compiled(self.arch, self.opts.learning_rate, batch, chunk,
                        self.mesh if ndev > 1 else None).epochs
        placed = [jax.device_put(a, self.rows) for a in rows]
        states = jax.device_put(self.states, self.replicated)
        opt_state = self.base.tx.init(states)
        shuffles = np.random.default_rng(self.opts.seed + 1)
        stop, epoch = _Stopping(states, floor, patience, bool(self.opts.epochs)), 0
        vals = [jax.device_put(a, self.replicated) for a in val] if val is not None else None
        while epoch < epochs:
            perms = np.stack([shuffles.permutation(len(rows[0])) for _ in range(chunk)])
            states, opt_state, loss = run(states, opt_state,
                                          jax.device_put(perms.astype(np.int32), self.replicated),
                                          *placed)
            epoch += chunk
            score = self._score(states, vals, loss)
            if self.opts.progress:
                print(f"\repoch {epoch} loss {float(loss):.4f} val error {score[0]:.4f}",
                      end="", file=sys.stderr, flush=True)
            if stop.after(epoch, chunk, states, score):
                break
        if self.opts.progress:
            print(file=sys.stderr)
        chosen, self.states = stop.chosen(epoch, states, vals is not None)
        return {"epochs": epoch, "best_epoch": stop.best_epoch, "best_loss": stop.best[1],
                "batch": batch, "steps_per_epoch": steps_per_epoch, "chosen_epoch": chosen}

    def _score(self, states: Any, vals: list[jax.Array] | None, loss: jax.Array) -> tuple:
        """Validation error first (it is what routing gets wrong), loss to break ties: loss
        alone stops too early on small, nearly noiseless sets, where confident boundaries
        cost loss on one held-out run but route better. The loss counts to 1e-3: on separable
        data it falls forever by less, and would never let early stopping stop."""
        if vals is None:
            return (0.0, float(loss))
        x, t, z, kind, w, log_t, y = vals
        p = self.base.p_over(states, x, t, log_t)
        err = float(jnp.mean(verdict.called_over(p, self.opts.p_cut) != (y == 1)))
        return (round(err, 6), round(float(self.base.loss(states, x, t, z, kind, w)), 3))


class _Stopping:
    """Early stopping's bookkeeping: the best score's states and epoch, the floor's (the first
    epoch stopping may happen at), and the epochs since the best."""

    def __init__(self, states: Any, floor: int, patience: int, fixed: bool):
        self.best, self.best_states, self.best_epoch = (math.inf, math.inf), states, 0
        self.floor, self.floor_states, self.floor_epoch = floor, states, 0
        self.patience, self.since_best, self.fixed = patience, 0, fixed

    def after(self, epoch: int, chunk: int, states: Any, score: tuple) -> bool:
        """Whether to stop after this chunk of epochs."""
        if score < self.best:
            self.best, self.best_states, self.since_best, self.best_epoch = score, states, 0, epoch
        else:
            self.since_best += chunk
        if not self.floor_epoch and epoch >= self.floor:
            self.floor_states, self.floor_epoch = states, epoch
        return self.since_best >= self.patience and epoch >= self.floor and not self.fixed

    def chosen(self, epoch: int, states: Any, validated: bool) -> tuple[int, Any]:
        """The epoch and states to keep: the last without validation or with a fixed count,
        else the best, but never before the floor."""
        if not validated or self.fixed:
            return epoch, states
        if self.best_epoch < self.floor_epoch:
            return self.floor_epoch, self.floor_states
        return self.best_epoch, self.best_states


def _warm_start(trainer: Trainer, base: ModelFile, shell: Layout) -> None:
    """Start from the base model's weights; new templates get embeddings near the average."""
    arrays = {k: np.array(v) for k, v in to_arrays(trainer.states).items()}   # writable copies
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
    trainer.states = from_arrays(trainer.states, arrays)


def _trainer(arch: Arch, opts: TrainOptions, base: ModelFile | None, shell: Layout) -> Trainer:
    trainer = Trainer(arch, opts)
    if base is not None:
        _warm_start(trainer, base, shell)
    return trainer


def _base_shape(opts: TrainOptions, base: ModelFile | None) -> TrainOptions:
    """An incremental fit keeps the base model's members and sizes."""
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
    train_idx, val_idx = _split(group, opts.val_fraction, opts.seed)

    def rows(idx: np.ndarray) -> tuple[np.ndarray, ...]:
        return x[idx], t[idx], obs.z[idx], obs.kind[idx], class_weights(y[idx])

    trainer = _trainer(arch, opts, base, shell)
    val = None
    if len(val_idx):
        val = (*rows(val_idx), obs.log_threshold[val_idx], y[val_idx])
    info = trainer.fit(_collapse(group[train_idx], rows(train_idx)), val)
    meta = {"log_cost": [center, spread], "cost_means": _cost_means(data, shell.templates),
            "scale_factor": base.meta.get("scale_factor", 1.0) if base else 1.0}
    split_model = _model(trainer, shell, meta)
    figures = evaluate.validate(split_model, data, group, val_idx, opts.p_cut)
    meta["scale_factor"] = split_model.meta["scale_factor"]
    if len(val_idx):   # the split chose the epochs; the model itself learns from every run
        refit = TrainOptions(**{**opts.__dict__, "epochs": max(info["chosen_epoch"], 1)})
        trainer = _trainer(arch, refit, base, shell)
        trainer.fit(_collapse(group, rows(np.arange(len(y)))), None)
    meta.update({
        "arch": arch.__dict__, "samples": len(y), "train_samples": int(len(train_idx)),
        "val_samples": int(len(val_idx)), **figures,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "jax_version": jax.__version__, "devices": [str(d) for d in trainer.devices],
        "seed": opts.seed, "generation": (base.meta.get("generation", 0) + 1) if base else 1,
        "watermark": max(data.seqs, default=0), **info, **(extra_meta or {}),
    })
    if base is not None:
        meta["cost_means"] = {**base.meta.get("cost_means", {}), **meta["cost_means"]}
        meta["watermark"] = max(meta["watermark"], base.meta.get("watermark", 0))
    return _model(trainer, shell, meta)


def _model(trainer: Trainer, shell: Layout, meta: dict[str, Any]) -> ModelFile:
    weights = {k: np.asarray(v, dtype=np.float64) for k, v in to_arrays(trainer.states).items()}
    return ModelFile(weights, shell.templates, shell.thresholds, shell.n_features,
                     shell.mean, shell.scale, dict(meta))
