"""The JAX trainer: whole epochs in one jitted function, the ensemble vmapped, data-parallel
over devices. For large histories and accelerators; small ones train in NumPy
(`router.learn.numpyfit`), where importing JAX would cost more than the fit.

An epoch is `lax.scan` over batches inside one `jax.jit`, so Python dispatch does not bound the
speed; every ensemble member is trained at once on stacked parameters; the batch axis is
sharded over a `Mesh` of the devices used (on a GPU or TPU, all of them; on the CPU one by
default, since sharding over forced host devices only made the CPU slower here). The loss is
the negative log-likelihood of each run's log cost under each member's logistic, censored for
runs that only bound it (see `encoding.Observations`).

Each run's term is weighed by its predicted scale to the power 2 BETA, the scale held constant
(beta-NLL, Seitzer et al. 2022). Why: the likelihood's pull on a location falls as 1 / s^2, so
a member that meets a region it cannot fit yet (the step of a band) can widen its scale there
instead, and then the pull is too weak for it ever to fit: on the examples' sweeps, about one
member in seven gave up on prog's band so, and one such member made the ensemble's mean cost
there twice the true one. The weight is not a parameter's function, so each input's best
(mu, s) stays the same; only how hard each run pulls changes.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from router.errors import DataError
from router.learn.distribution import BETA, S_MIN
from router.learn.encoding import ABOVE, EXACT
from router.learn.model import Arch, ensemble_heads, from_arrays, graph, init_members, to_arrays
from router.learn.schedule import Schedule, rate_share

log = logging.getLogger(__name__)


def pick_devices(count: int | None) -> list[Any]:
    devices = jax.local_devices()
    if count is None:
        count = 1 if devices[0].platform == "cpu" else len(devices)
    if count > len(devices):
        raise DataError(f"asked for {count} devices, JAX sees {len(devices)}")
    return devices[:count]


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
    (x, template, z, kind, weight [K]): see `encoding.Observations` and `train`'s folds."""

    tx: optax.GradientTransformation
    epochs: Any     # (states, opt_state, step, total, perms, *rows) -> (states, opt_state, loss)
    loss: Any       # (states, *rows) -> members' mean negative log-likelihoods, summed
    init: Any       # (keys) -> stacked member states


def nll(heads: jax.Array, z: jax.Array, kind: jax.Array) -> jax.Array:
    """Negative log-likelihood of each observation under each member's logistic: the density
    of a measured log cost, or the probability of the side of a bound (censored)."""
    mu, s = heads[..., 0], _scale(heads)
    u = (z - mu) / s
    exact = u + jnp.log(s) + 2.0 * jax.nn.softplus(-u)
    return jnp.where(kind == EXACT, exact, jnp.where(kind == ABOVE, jax.nn.softplus(u),
                                                     jax.nn.softplus(-u)))


def _scale(heads: jax.Array) -> jax.Array:
    return jax.nn.softplus(heads[..., 1]) + S_MIN


def balance(heads: jax.Array) -> jax.Array:
    """Each run's weight in the loss, s^(2 BETA) held constant: see the module's docstring."""
    return jax.lax.stop_gradient(_scale(heads)) ** (2.0 * BETA)


@functools.lru_cache(maxsize=8)
def _compiled(arch: Arch, lr: float, batch: int, chunk: int,
              mesh: Mesh | None = None) -> Compiled:
    """The jitted functions for one architecture: built once per process, not per fit."""
    graphdef = graph(arch)
    tx = optax.scale_by_adam()   # with the schedule's rate: optax.adam, its rate falling

    def loss_fn(states: Any, x: jax.Array, t: jax.Array, z: jax.Array, kind: jax.Array,
                w: jax.Array) -> jax.Array:
        heads = ensemble_heads(graphdef, states, x, t)
        per = nll(heads, z[None, :], kind[None, :]) * balance(heads) * w.T
        return (per.sum(axis=1) / jnp.maximum(w.sum(axis=0), 1.0)).sum()   # separate grads

    def step(carry: Any, rows: tuple[jax.Array, ...]) -> tuple[Any, jax.Array]:
        states, opt_state, i, total = carry
        loss, grads = jax.value_and_grad(loss_fn)(states, *rows)
        updates, opt_state = tx.update(grads, opt_state, states)
        rate = -lr * rate_share(i, total, jnp.minimum)
        states = optax.apply_updates(states, jax.tree.map(lambda u: rate * u, updates))
        return (states, opt_state, i + 1, total), loss

    def epochs(states: Any, opt_state: Any, first: jax.Array, total: jax.Array,
               perms: jax.Array, *rows: jax.Array) -> tuple[Any, Any, jax.Array]:
        """One epoch per row of `perms` [chunk, n], each one lax.scan over the batches of the
        set shuffled by it; `first` is the first update's number, `total` the run's. The
        shuffles come from the host: `jax.random.permutation` sorts, and on the CPU it took
        30 ms for 65k rows, more than a whole epoch at batch 4096."""
        n = rows[0].shape[0]

        def epoch(carry: Any, perm: jax.Array) -> tuple[Any, jax.Array]:
            batches = tuple(_batch_rows(a[perm].reshape(n // batch, batch, *a.shape[1:]), mesh)
                            for a in rows)
            carry, losses = jax.lax.scan(step, carry, batches)
            return carry, losses.mean()

        carry = (states, opt_state, first.astype(jnp.float32), total.astype(jnp.float32))
        (states, opt_state, _, _), losses = jax.lax.scan(epoch, carry, perms)
        return states, opt_state, losses[-1]

    return Compiled(tx, jax.jit(epochs), jax.jit(loss_fn),
                    jax.jit(functools.partial(init_members, arch)))


class Trainer:
    """Trains one ensemble on one device set; the compiled functions are shared."""

    backend = "jax"

    def __init__(self, arch: Arch, opts: Any):
        self.arch = arch
        self.opts = opts
        self.devices, self.version = pick_devices(opts.devices), jax.__version__
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, P())
        self.rows = NamedSharding(self.mesh, P("data"))
        self.base = _compiled(arch, opts.learning_rate, 1, 1)
        keys = jax.random.split(jax.random.key(opts.seed), arch.members)
        self.states = self.base.init(keys)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in to_arrays(self.states).items()}

    @weights.setter
    def weights(self, arrays: dict[str, np.ndarray]) -> None:
        self.states = from_arrays(self.states, arrays)

    def fit(self, rows: tuple[np.ndarray, ...]) -> dict[str, Any]:
        """Train on `rows` (x, t, z, kind, w) for the schedule's updates."""
        n, ndev = len(rows[0]), len(self.devices)
        plan = Schedule.of(self.opts, n, ndev)
        rows = tuple(_padded((-n) % plan.batch, *rows))
        compiled = functools.partial(_compiled, self.arch, self.opts.learning_rate, plan.batch,
                                     mesh=self.mesh if ndev > 1 else None)
        run = compiled(plan.chunk).epochs
        placed = [jax.device_put(a, self.rows) for a in rows]
        states = jax.device_put(self.states, self.replicated)
        opt_state = self.base.tx.init(states)
        shuffles = np.random.default_rng(self.opts.seed + 1)
        total = np.int32(plan.total_steps)
        for first in range(0, plan.epochs, plan.chunk):
            chunk = min(plan.chunk, plan.epochs - first)
            if chunk < plan.chunk:   # the last, shorter chunk compiles once more
                run = compiled(chunk).epochs
            perms = np.stack([shuffles.permutation(len(rows[0])) for _ in range(chunk)])
            states, opt_state, loss = run(states, opt_state,
                                          np.int32(first * plan.steps_per_epoch), total,
                                          jax.device_put(perms.astype(np.int32), self.replicated),
                                          *placed)
            if self.opts.progress:
                plan.report(first + chunk, float(loss))
        self.states = states
        return plan.info()
