"""Training samples/s of router's two trainers (the whole ensemble: JAX's epochs in one jit, and
NumPy's, which trains on the CPU) against
PyTorch (an idiomatic loop over the same number of members) and scikit-learn's MLPClassifier,
on the same data and architecture, at batch 256 and 4096 with 1 and 16 features; plus the share
of the machine's peak FLOP/s (a large jnp.dot timed in the same run, call by call in turns with
the epochs). Peers are measured in turns, round after round, and each figure is the median over
rounds but the share of peak, the best round's (its median is printed beside). Last line: JSON."""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from router.learn import numpyfit
from router.learn.arch import Arch
from router.learn.jaxfit import _compiled

N = int(os.environ.get("BENCH_N", "65536"))
K = 5
HIDDEN = 64
EMBED = 8
SECONDS = float(os.environ.get("BENCH_SECONDS", "1.5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def data(features: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, features)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.float32)
    return x, np.zeros(N, np.int32), y, np.ones((N, K), np.float32)


def flops_per_sample(features: int) -> float:
    """Forward + backward (~3x forward) of one member, multiply-adds counted as 2."""
    d = features + EMBED
    return 3 * 2 * (d * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 2)   # router's two heads


def turns(*fns, min_seconds: float = SECONDS) -> list[list[float]]:
    """Seconds of each call of each fn, called in turns (at least 3 times, after a warm-up
    call each), so that a spell of half speed falls on all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times[0]) < 3:
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return times


def timed(fn) -> float:
    """Median seconds per call."""
    return statistics.median(turns(fn)[0])


@functools.cache
def peak_dot(size: int = 2048) -> tuple[Any, jax.Array]:
    """A large jitted matmul and its operand: the machine's peak FLOP/s, compiled once."""
    return jax.jit(lambda m: m @ m), jnp.ones((size, size), jnp.float32)


def router_rate(features: int, batch: int) -> tuple[float, float, float]:
    """Samples/s, the peak FLOP/s timed call by call beside it, and the share of that peak."""
    arch = Arch(1, features, EMBED, HIDDEN, K)
    c = _compiled(arch, 3e-3, batch, 1)
    run = c.epochs
    states = c.init(jax.random.split(jax.random.key(0), K))
    opt = c.tx.init(states)
    x, t, y, w = (jnp.asarray(a) for a in data(features))
    kind = jnp.zeros(N, jnp.int32)   # measured costs: the likelihood's density term (y as z)
    state = {"s": states, "o": opt}
    shuffles = np.random.default_rng(1)

    def epoch() -> None:   # the shuffle is made on the host, as Trainer.fit makes it
        perm = jnp.asarray(shuffles.permutation(N)[None].astype(np.int32))
        s, o, loss = run(state["s"], state["o"], np.int32(0), np.int32(N // batch), perm, x, t,
                         y, kind, w)
        loss.block_until_ready()
        state["s"], state["o"] = s, o

    dot, a = peak_dot()
    epochs, dots = turns(epoch, lambda: dot(a).block_until_ready())
    peak = 2 * a.shape[0] ** 3
    share = statistics.median(N * K * flops_per_sample(features) / e / (peak / d)
                              for e, d in zip(epochs, dots))
    return N / statistics.median(epochs), peak / statistics.median(dots), share


def numpy_rate(features: int, batch: int) -> float:
    """The NumPy trainer's epoch: the loop `numpyfit.Trainer.fit` runs."""
    w = numpyfit.init(Arch(1, features, EMBED, HIDDEN, K), seed=0)
    x, t, y, weight = data(features)
    kind = np.zeros(N, np.int32)
    adam, shuffles = numpyfit.Adam(w, 3e-3), np.random.default_rng(1)
    numpyfit._keep_freed_memory()

    def epoch() -> None:
        perm = shuffles.permutation(N)
        for lo in range(0, N, batch):
            idx = perm[lo:lo + batch]
            adam.update(w, numpyfit.gradient(w, x[idx], t[idx], y[idx], kind[idx], weight[idx]))

    return N / timed(epoch)


def torch_rate(features: int, batch: int) -> float:
    import torch
    torch.manual_seed(0)
    x, _, y, _ = data(features)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    members = [torch.nn.Sequential(torch.nn.Linear(features + EMBED, HIDDEN), torch.nn.ReLU(),
                                   torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
                                   torch.nn.Linear(HIDDEN, 1)) for _ in range(K)]
    embeds = [torch.nn.Embedding(1, EMBED) for _ in range(K)]
    opts = [torch.optim.Adam([*m.parameters(), *e.parameters()], lr=3e-3)
            for m, e in zip(members, embeds)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tidx = torch.zeros(batch, dtype=torch.long)

    def epoch() -> None:
        perm = torch.randperm(N)
        for i in range(0, N - batch + 1, batch):
            idx = perm[i:i + batch]
            xb, yb = xt[idx], yt[idx]
            for m, e, o in zip(members, embeds, opts):
                o.zero_grad()
                loss = loss_fn(m(torch.cat([xb, e(tidx)], 1))[:, 0], yb)
                loss.backward()
                o.step()

    return N / timed(epoch)


def sklearn_rate(features: int, batch: int) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    x, _, y, _ = data(features)

    def epoch() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for k in range(K):
                MLPClassifier((HIDDEN, HIDDEN), batch_size=batch, max_iter=1, shuffle=True,
                              random_state=k, learning_rate_init=3e-3).fit(x, y)

    return N / timed(epoch)


Rows = dict[tuple[int, int], dict[str, list[float]]]


def ratio(rows: Rows, key: tuple[int, int], peer: list[float], ours: str = "router") -> float:
    """The median over rounds of ours / peer, each round's pair measured together."""
    return statistics.median(a / b for a, b in zip(rows[key][ours], peer))


def measure() -> tuple[Rows, dict[int, list[float]]]:
    rows: Rows = {(f, b): {"router": [], "numpy": [], "torch": [], "share": [], "peak": []}
                  for f in (1, 16) for b in (256, 4096)}
    sk: dict[int, list[float]] = {1: [], 16: []}
    for _ in range(ROUNDS):
        # in turns, each peer right beside the router figure it is compared with, so that a
        # noisy moment (this machine has spells of half speed) falls on both alike
        for (features, batch), row in rows.items():
            for key, value in zip(("router", "peak", "share"), router_rate(features, batch)):
                row[key].append(value)
            row["numpy"].append(numpy_rate(features, batch))
            row["torch"].append(torch_rate(features, batch))
            if batch == 256:
                sk[features].append(sklearn_rate(features, batch))
    return rows, sk


def summary(rows: Rows, sk: dict[int, list[float]]) -> dict[str, Any]:
    def least(batch: int, key: str) -> int:
        return round(min(statistics.median(rows[(f, batch)][key]) for f in (1, 16)))

    def speedup(batch: int, ours: str = "router") -> float:
        return round(min(ratio(rows, (f, batch), rows[(f, batch)]["torch"], ours)
                         for f in (1, 16)), 2)

    return {
        "device": str(jax.devices()[0]), "members": K, "rounds": ROUNDS,
        "peak_gflops": round(statistics.median(p for r in rows.values() for p in r["peak"]) / 1e9,
                             1),
        "router_samples_per_s_b256": least(256, "router"),
        "router_samples_per_s_b4096": least(4096, "router"),
        "speedup_vs_torch_b256": speedup(256), "speedup_vs_torch_b4096": speedup(4096),
        "speedup_vs_sklearn": round(min(ratio(rows, (f, 256), sk[f]) for f in (1, 16)), 2),
        "numpy_samples_per_s_b256": least(256, "numpy"),
        "numpy_speedup_vs_torch_b256": speedup(256, "numpy"),
        "numpy_speedup_vs_torch_b4096": speedup(4096, "numpy"),
        # the best round, as timeit takes the best run: in this machine's slow spells (a
        # minute at times) the epochs' many small two-thread ops run at half speed while the
        # big dot loses a tenth, so the share says more of the machine than of the trainer
        "share_of_peak": round(min(max(rows[(f, 4096)]["share"]) for f in (1, 16)), 3),
        "share_of_peak_median": round(min(statistics.median(rows[(f, 4096)]["share"])
                                          for f in (1, 16)), 3),
    }


def main() -> None:
    rows, sk = measure()
    for (features, batch), row in rows.items():
        print(f"features {features:2} batch {batch:4}: router "
              f"{statistics.median(row['router']):12,.0f} samples/s (x{K} members), torch "
              f"{statistics.median(row['torch']):10,.0f}, ratio "
              f"{ratio(rows, (features, batch), row['torch']):5.1f}, "
              f"{statistics.median(row['share']):.0%} of peak; numpy "
              f"{statistics.median(row['numpy']):10,.0f}, ratio "
              f"{ratio(rows, (features, batch), row['torch'], 'numpy'):5.1f}", file=sys.stderr)
    for f in sk:
        print(f"features {f:2} batch  256: scikit-learn {statistics.median(sk[f]):10,.0f} "
              f"samples/s, router x{ratio(rows, (f, 256), sk[f]):.1f}", file=sys.stderr)
    print(json.dumps(summary(rows, sk)))


if __name__ == "__main__":
    main()
