"""Latency of one fast-path prediction of the whole ensemble (NumPy, what the daemon uses: the
cost distribution and p_over at a threshold), batched throughput, and a jitted JAX call of the
same model and p_over beside it. Last line: JSON with `fast_vs_jax_p99` (goal <= 0.25)."""

from __future__ import annotations

import json
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from router.learn.dataset import Dataset
from router.learn.model import Arch, ensemble_heads, from_arrays, graph, init_members
from router.learn.distribution import S_MIN
from router.learn.encoding import encode
from router.learn.train import TrainOptions, fit

CALLS = 20000


def ensemble_p_over(heads: jax.Array, log_threshold: jax.Array) -> jax.Array:
    """The fast path's combination of members (distribution.combine), in JAX."""
    mus, scales = heads[..., 0], jax.nn.softplus(heads[..., 1]) + S_MIN
    mu = mus.mean(axis=0)
    s = jnp.sqrt((scales ** 2).mean(axis=0) + 3.0 / math.pi ** 2 * mus.var(axis=0))
    return jax.nn.sigmoid((mu - log_threshold) / s)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e6, q))


def main() -> None:
    rng = np.random.default_rng(0)
    data = Dataset()
    for a in rng.uniform(1, 100, 400):
        data.add("/bin/prog {num}", (float(a),), int(a > 50), float(a) / 50, 1.0)
    model = fit(data, TrainOptions(epochs=50))
    feats = [(float(a),) for a in rng.uniform(1, 100, CALLS)]
    lat = []
    for f in feats:
        start = time.perf_counter()
        model.predict("/bin/prog {num}", f, 1.0)
        lat.append(time.perf_counter() - start)
    x, t = encode(data, model)
    n = 4096
    xb, tb = np.resize(x, (n, x.shape[1])), np.resize(t, n)
    start = time.perf_counter()
    for _ in range(20):
        model.predict_batch(tb, xb)
    batch_per_s = 20 * n / (time.perf_counter() - start)
    arch = Arch(**model.meta["arch"])
    states = from_arrays(init_members(arch, jax.random.split(jax.random.key(0), arch.members)),
                         model.weights)
    g = graph(arch)
    center, spread = model.meta["log_cost"]
    fwd = jax.jit(lambda s, x, t: ensemble_p_over(ensemble_heads(g, s, x, t), -center / spread))
    one_x, one_t = jnp.asarray(x[:1]), jnp.asarray(t[:1])
    fwd(states, one_x, one_t).block_until_ready()
    jlat = []
    for _ in range(2000):
        start = time.perf_counter()
        fwd(states, one_x, one_t).block_until_ready()
        jlat.append(time.perf_counter() - start)
    result = {"p50_us": round(percentile(lat, 50), 2), "p99_us": round(percentile(lat, 99), 2),
              "batch_per_s": round(batch_per_s), "jax_p50_us": round(percentile(jlat, 50), 1),
              "jax_p99_us": round(percentile(jlat, 99), 1), "members": arch.members}
    result["fast_vs_jax_p99"] = round(result["p99_us"] / result["jax_p99_us"], 3)
    print(f"fast path p50 {result['p50_us']} us, p99 {result['p99_us']} us; jitted JAX p99 "
          f"{result['jax_p99_us']} us; batched {result['batch_per_s']:,} predictions/s",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
