"""Training in NumPy: the same ensemble, loss and Adam as the JAX trainer, written by hand.

Why by hand: what a user waits for is the `router train` command, and on a history of a few
thousand runs importing JAX and compiling its epoch cost more than the whole fit (scikit-learn's
MLPClassifier, import included, is done before JAX is imported). At these sizes the work is a
few small matrix products per update, which NumPy's BLAS runs as fast as XLA's CPU backend does.
The network is three dense layers and the gradient of each is two products, so the backward
pass is short enough to write out; `tests/learn/test_numpyfit.py` checks it against
`jax.grad` of the JAX trainer's loss on the same weights and rows. Machines with an
accelerator, and trainings asked to use devices, go to the JAX trainer (`router.learn.jaxfit`).

Weights are the model file's arrays (see `router.learn.model.to_arrays`), members stacked on
axis 0; rows are (x, template, z, kind, weight) as in `encoding.Observations`, with one weight
per member ([N, K]: a member gives none to the runs it holds out).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from router.learn.distribution import BETA, S_MIN
from router.learn.encoding import ABOVE, EXACT
from router.learn.arch import Arch
from router.learn.schedule import Schedule

Weights = dict[str, np.ndarray]
_B1, _B2, _EPS = 0.9, 0.999, 1e-8   # optax.adam's defaults


def init(arch: Arch, seed: int) -> Weights:
    """Flax's defaults: LeCun-normal kernels (truncated at two standard deviations), zero
    biases, unit-variance-per-fan-in embeddings."""
    rng = np.random.default_rng(seed)

    def kernel(fan_in: int, fan_out: int) -> np.ndarray:
        w = rng.standard_normal((arch.members, fan_in, fan_out))
        while (bad := np.abs(w) > 2.0).any():
            w[bad] = rng.standard_normal(int(bad.sum()))
        return (w / math.sqrt(fan_in) / 0.87962566).astype(np.float32)

    k, h = arch.members, arch.hidden
    return {
        "embed": (rng.standard_normal((k, arch.n_templates, arch.embed_dim))
                  / math.sqrt(arch.embed_dim)).astype(np.float32),
        "w1": kernel(arch.n_features + arch.embed_dim, h), "b1": np.zeros((k, h), np.float32),
        "w2": kernel(h, h), "b2": np.zeros((k, h), np.float32),
        "w3": kernel(h, 2), "b3": np.zeros((k, 2), np.float32),
    }


def _forward(w: Weights, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every member's heads [K, N, 2] and what the backward pass needs. The first layer reads
    [x, one_hot(t)] against [w1's feature rows; each template's embedding folded through w1
    and b1]: one product, instead of a product, a gather and a sum."""
    n = x.shape[1]
    one_hot = np.zeros((len(t), w["embed"].shape[1]), np.float32)
    one_hot[np.arange(len(t)), t] = 1.0
    xa = np.concatenate([x, one_hot], 1)
    per_template = w["embed"] @ w["w1"][:, n:] + w["b1"][:, None]
    h1 = xa @ np.concatenate([w["w1"][:, :n], per_template], 1)
    np.maximum(h1, 0.0, out=h1)
    h2 = h1 @ w["w2"]
    h2 += w["b2"][:, None]
    np.maximum(h2, 0.0, out=h2)
    out = h2 @ w["w3"]
    out += w["b3"][:, None]
    return out, h1, h2, xa


def heads(w: Weights, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return _forward(w, x, t)[0]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def nll(out: np.ndarray, z: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Each observation's negative log-likelihood under each member's logistic [K, N]: the
    JAX trainer's `nll`."""
    mu, s = out[..., 0], _scale(out)
    u = (z - mu) / s
    exact = u + np.log(s) + 2.0 * np.logaddexp(0.0, -u)
    return np.where(kind == EXACT, exact, np.where(kind == ABOVE, np.logaddexp(0.0, u),
                                                   np.logaddexp(0.0, -u)))


def loss(w: Weights, x: np.ndarray, t: np.ndarray, z: np.ndarray, kind: np.ndarray,
         weight: np.ndarray) -> float:
    """Each member's weighted mean over rows, summed over members (each its own gradient)."""
    out = heads(w, x, t)
    per = nll(out, z, kind) * balance(out) * weight.T
    return float((per.sum(axis=1) / _norm(weight)).sum())


def _norm(weight: np.ndarray) -> np.ndarray:
    return np.maximum(weight.sum(axis=0), 1.0)


def _scale(out: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, out[..., 1]) + S_MIN


def balance(out: np.ndarray) -> np.ndarray:
    """Each run's weight in the loss, a constant to the gradient: the JAX trainer's `balance`."""
    return _scale(out) ** (2.0 * BETA)


def _head_grad(out: np.ndarray, z: np.ndarray, kind: np.ndarray,
               weight: np.ndarray) -> np.ndarray:
    """d loss / d heads [K, N, 2]. With u = (z - mu) / s: the density's term is
    u + log s + 2 softplus(-u), whose slope in u is tanh(u / 2); a bound's is softplus(+-u)."""
    raw, s = out[..., 1], _scale(out)
    u = (z - out[..., 0]) / s
    exact = kind == EXACT
    slope = np.where(exact, np.tanh(0.5 * u), np.where(kind == ABOVE, _sigmoid(u), -_sigmoid(-u)))
    scale = weight.T / _norm(weight)[:, None] * balance(out)
    d_mu = -slope / s * scale
    d_s = (exact / s - slope * u / s) * scale
    return np.stack([d_mu, d_s * _sigmoid(raw)], axis=-1)


def gradient(w: Weights, x: np.ndarray, t: np.ndarray, z: np.ndarray, kind: np.ndarray,
             weight: np.ndarray) -> Weights:
    """d loss / d weights, by the chain rule through the three layers."""
    out, h1, h2, xa = _forward(w, x, t)
    d_out = _head_grad(out, z, kind, weight)
    g = {"w3": h2.transpose(0, 2, 1) @ d_out, "b3": d_out.sum(axis=1)}
    d_a2 = d_out @ w["w3"].transpose(0, 2, 1)
    d_a2 *= h2 > 0
    g["w2"], g["b2"] = h1.transpose(0, 2, 1) @ d_a2, d_a2.sum(axis=1)
    d_a1 = d_a2 @ w["w2"].transpose(0, 2, 1)
    d_a1 *= h1 > 0
    n = x.shape[1]
    d_first = xa.T @ d_a1                     # [K, F + T, H]
    d_per_template = d_first[:, n:]
    g["embed"] = d_per_template @ w["w1"][:, n:].transpose(0, 2, 1)
    g["w1"] = np.concatenate([d_first[:, :n],
                              w["embed"].transpose(0, 2, 1) @ d_per_template], 1)
    g["b1"] = d_per_template.sum(axis=1)
    return g


class Adam:
    """optax.adam: bias-corrected first and second moments."""

    def __init__(self, w: Weights, lr: float):
        self.lr, self.count = lr, 0
        self.m = {k: np.zeros_like(a) for k, a in w.items()}
        self.v = {k: np.zeros_like(a) for k, a in w.items()}

    def update(self, w: Weights, g: Weights, lr_scale: float = 1.0) -> None:
        self.count += 1
        c1, c2 = 1.0 - _B1 ** self.count, 1.0 - _B2 ** self.count
        for k, grad in g.items():
            m, v = self.m[k], self.v[k]
            m *= _B1
            m += (1.0 - _B1) * grad
            v *= _B2
            v += (1.0 - _B2) * grad * grad
            w[k] -= (self.lr * lr_scale / c1) * m / (np.sqrt(v / c2) + _EPS)


def _keep_freed_memory() -> None:
    """Let glibc reuse freed arrays instead of returning them to the kernel: it maps each
    allocation over 128 kB afresh and unmaps it on free, so every activation of a batch costs
    page faults, more than the arithmetic on it. Elsewhere than glibc, nothing changes."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 1 << 28)   # M_MMAP_THRESHOLD
    libc.mallopt(-1, 1 << 28)   # M_TRIM_THRESHOLD


class Trainer:
    """The JAX trainer's interface (`fit`, `weights`), on the host."""

    backend = "numpy"

    def __init__(self, arch: Arch, opts: Any):
        _keep_freed_memory()
        self.arch, self.opts = arch, opts
        self.weights = init(arch, opts.seed)
        self.devices, self.version = ["cpu"], np.__version__

    def fit(self, rows: tuple[np.ndarray, ...]) -> dict[str, Any]:
        """Train on `rows` for the schedule's updates, shuffled each epoch."""
        n = len(rows[0])
        plan = Schedule.of(self.opts, n)
        w = {k: a.copy() for k, a in self.weights.items()}
        adam = Adam(w, self.opts.learning_rate)
        shuffles = np.random.default_rng(self.opts.seed + 1)
        for epoch in range(1, plan.epochs + 1):
            perm = shuffles.permutation(n)
            for lo in range(0, n, plan.batch):
                idx = perm[lo:lo + plan.batch]
                adam.update(w, gradient(w, *(a[idx] for a in rows)), plan.lr_scale(adam.count))
            if self.opts.progress and (epoch % plan.chunk == 0 or epoch == plan.epochs):
                plan.report(epoch, loss(w, *rows))
        self.weights = w
        return plan.info()
