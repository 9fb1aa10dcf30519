"""The cost model: a small Flax MLP that predicts, for a run, the distribution of its log cost:
the location and scale of a logistic (see `router.learn.distribution` for why a logistic), from
which the chance of going over any threshold follows at decision time.

One model serves every template through a learned **template embedding** concatenated to the
scaled features, rather than one small MLP per template. Why: the hidden layers are shared, so a
template with few runs borrows the shapes (steps, bands, products) learned from the others; a
new template joins an incremental retrain by adding one embedding row instead of a new network;
and a batch of mixed templates is one matmul. Features are padded to the widest template; the
embedding tells the network which positions mean what.

An ensemble of K members (different seeds) is trained at once with `jax.vmap` over stacked
parameters: the prediction is the members' mean, their spread the model's uncertainty.

Hot paths are functional: the module is split once into a graph and a state, and jitted pure
functions merge them, which costs nothing per call (`nnx.jit` on objects cost ~1 ms a call here).
Every layer's weight gradient is computed by hand (`dense`): see there why.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from router.learn.arch import Arch


HEADS = 2   # per run: the logistic's location and its scale before softplus (normalised units)


class MLP(nnx.Module):
    """features ++ embed(template) -> 64 -> 64 -> (location, raw scale) (ReLU between)."""

    def __init__(self, arch: Arch, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(arch.n_templates, arch.embed_dim, rngs=rngs)
        self.l1 = nnx.Linear(arch.n_features + arch.embed_dim, arch.hidden, rngs=rngs)
        self.l2 = nnx.Linear(arch.hidden, arch.hidden, rngs=rngs)
        self.out = nnx.Linear(arch.hidden, HEADS, rngs=rngs)

    def __call__(self, x: jax.Array, template: jax.Array) -> jax.Array:
        """[x, embed(t)] @ w1 + b1 is computed as x @ w1[:n] + (embed @ w1[n:] + b1)[t]: the same
        function, but the embedding's gradient is then a sum of rows per template instead of a
        product with the whole batch's input gradient, which nothing else needs (+15-25%
        samples/s on the CPU at batch 256 and 4096 here)."""
        w1, n = self.l1.kernel[...], x.shape[-1]
        per_template = self.embed.embedding[...] @ w1[n:] + self.l1.bias[...]
        h = nnx.relu(dense(x, w1[:n]) + per_template[template])
        h = nnx.relu(dense(h, self.l2.kernel[...]) + self.l2.bias[...])
        return dense(h, self.out.kernel[...]) + self.out.bias[...]


SPLIT_ROWS = 256   # batches of at least this many rows get the split weight gradient
SPLITS = 8


@jax.custom_vjp
def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """x @ w, whose weight gradient x.T @ g is built to suit XLA's CPU backend. As autodiff
    writes it, that product reads x by columns, which YNNPACK (XLA's fast CPU kernels) does not
    take, so it went to a generic kernel on one core: a third of a training step at batch 4096.
    Transposing x explicitly (the barrier keeps XLA from folding the transpose back into the
    product) and splitting the batch in 8 makes it 8 row-major products both cores share:
    +20% samples/s at batch 4096 here, +10% at 256 with 16 features. The output layer's, two
    columns wide, was a tenth of a step at batch 256 in autodiff's form. Smaller batches and
    other backends keep the plain form."""
    return x @ w


def _dense_fwd(x: jax.Array, w: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return x @ w, (x, w)


def _dense_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, w = res
    rows, width = x.shape
    if rows < SPLIT_ROWS or rows % SPLITS or jax.default_backend() != "cpu":
        return g @ w.T, x.T @ g
    xt = jnp.swapaxes(x.reshape(SPLITS, rows // SPLITS, width), 1, 2)
    xt = jax.lax.optimization_barrier(xt)
    return g @ w.T, jnp.einsum("sib,sbj->sij", xt, g.reshape(SPLITS, rows // SPLITS, -1)).sum(0)


dense.defvjp(_dense_fwd, _dense_bwd)


def graph(arch: Arch) -> nnx.GraphDef[MLP]:
    """The network's structure without parameters, to merge with a member's state."""
    return nnx.split(MLP(arch, rngs=nnx.Rngs(0)))[0]


def init_members(arch: Arch, keys: jax.Array) -> nnx.State:
    """Every member's parameters, one per key, stacked on a leading axis of size K."""
    return jax.vmap(lambda k: nnx.split(MLP(arch, rngs=nnx.Rngs(k)))[1])(keys)


def ensemble_heads(graphdef: nnx.GraphDef[MLP], states: nnx.State, x: jax.Array,
                   template: jax.Array) -> jax.Array:
    """Every member's (location, raw scale) for a batch: shape [K, batch, 2]."""
    def member(state: nnx.State) -> jax.Array:
        return nnx.merge(graphdef, state)(x, template)
    return jax.vmap(member)(states)


def to_arrays(states: nnx.State) -> dict[str, Any]:
    """Stacked parameters as plain arrays, named as the model file stores them."""
    d = nnx.to_pure_dict(states)
    return {
        "embed": d["embed"]["embedding"], "w1": d["l1"]["kernel"], "b1": d["l1"]["bias"],
        "w2": d["l2"]["kernel"], "b2": d["l2"]["bias"], "w3": d["out"]["kernel"],
        "b3": d["out"]["bias"],
    }


def from_arrays(states: nnx.State, arrays: dict[str, Any]) -> nnx.State:
    """The inverse of to_arrays, into a state of the same structure."""
    pure = {
        "embed": {"embedding": arrays["embed"]}, "l1": {"kernel": arrays["w1"], "bias": arrays["b1"]},
        "l2": {"kernel": arrays["w2"], "bias": arrays["b2"]},
        "out": {"kernel": arrays["w3"], "bias": arrays["b3"]},
    }
    pure = jax.tree.map(jnp.asarray, pure)
    nnx.replace_by_pure_dict(states, pure)
    return states
