"""The cost model: a small Flax MLP that says how likely a run is to cost more than its
template's threshold.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


@dataclass(frozen=True)
class Arch:
    """The shape of the network; saved in the model file so a load rebuilds the same one."""

    n_templates: int
    n_features: int
    embed_dim: int = 8
    hidden: int = 64
    members: int = 5


class MLP(nnx.Module):
    """features ++ embed(template) -> 64 -> 64 -> 1 logit (ReLU between)."""

    def __init__(self, arch: Arch, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(arch.n_templates, arch.embed_dim, rngs=rngs)
        self.l1 = nnx.Linear(arch.n_features + arch.embed_dim, arch.hidden, rngs=rngs)
        self.l2 = nnx.Linear(arch.hidden, arch.hidden, rngs=rngs)
        self.out = nnx.Linear(arch.hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array, template: jax.Array) -> jax.Array:
        h = jnp.concatenate([x, self.embed(template)], axis=-1)
        h = nnx.relu(self.l1(h))
        h = nnx.relu(self.l2(h))
        return self.out(h)[..., 0]


def graph(arch: Arch) -> nnx.GraphDef[MLP]:
    """The network's structure without parameters, to merge with a member's state."""
    return nnx.split(MLP(arch, rngs=nnx.Rngs(0)))[0]


def init_members(arch: Arch, keys: jax.Array) -> nnx.State:
    """Every member's parameters, one per key, stacked on a leading axis of size K."""
    return jax.vmap(lambda k: nnx.split(MLP(arch, rngs=nnx.Rngs(k)))[1])(keys)


def ensemble_logits(graphdef: nnx.GraphDef[MLP], states: nnx.State, x: jax.Array,
                    template: jax.Array) -> jax.Array:
    """Logits of every member for a batch: shape [K, batch]."""
    def member(state: nnx.State) -> jax.Array:
        return nnx.merge(graphdef, state)(x, template)
    return jax.vmap(member)(states)


def to_arrays(states: nnx.State) -> dict[str, Any]:
    """Stacked parameters as plain arrays, named as the model file stores them."""
    d = nnx.to_pure_dict(states)
    return {
        "embed": d["embed"]["embedding"], "w1": d["l1"]["kernel"], "b1": d["l1"]["bias"],
        "w2": d["l2"]["kernel"], "b2": d["l2"]["bias"], "w3": d["out"]["kernel"][..., 0],
        "b3": d["out"]["bias"][..., 0],
    }


def from_arrays(states: nnx.State, arrays: dict[str, Any]) -> nnx.State:
    """The inverse of to_arrays, into a state of the same structure."""
    pure = {
        "embed": {"embedding": arrays["embed"]}, "l1": {"kernel": arrays["w1"], "bias": arrays["b1"]},
        "l2": {"kernel": arrays["w2"], "bias": arrays["b2"]},
        "out": {"kernel": arrays["w3"][..., None], "bias": arrays["b3"][..., None]},
    }
    pure = jax.tree.map(jnp.asarray, pure)
    nnx.replace_by_pure_dict(states, pure)
    return states
