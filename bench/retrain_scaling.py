"""Incremental retrain for a batch of 1,000 new jobs on top of 10k, 100k and 1M jobs of
history, next to `--full` on the same histories, and accuracy of both on held-out jobs.
Last line: JSON with incremental_ratio_1m_vs_10k, full_ratio_1m_vs_10k, accuracy_gap_points."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from router.learn import modelfile, retrain
from router.learn.dataset import Dataset
from router.policy import parse_policy
from router.store import Store
from router.learn.train import TrainOptions, fit

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000,1000000").split(",")]
BATCH = 1000
POLICY = parse_policy("machines: {cheap: {}, fast: {price: 3.0}}\nthreshold: 1.0\n"
                      "route: {over: fast, under: cheap}\nretrain: {holdout: 200}\n")
PROGRAMS = {   # template -> (features from rng, cost)
    "/bin/band {num}": (lambda r: (r.uniform(1, 64),), lambda f: 2.0 if 24 <= f[0] < 40 else 0.5),
    "/bin/grid {num} {num}": (lambda r: (r.uniform(1, 100), r.uniform(1, 100)),
                              lambda f: f[0] * f[1] / 1500),
    "/bin/decades {num}": (lambda r: (10 ** r.uniform(0, 6),), lambda f: math.log10(f[0]) / 3),
    "/bin/noisy {num}": (lambda r: (r.uniform(1, 100),), lambda f: f[0] / 50),
}


def runs(n: int, rng: np.random.Generator) -> list[dict]:
    out = []
    names = list(PROGRAMS)
    for i in range(n):
        t = names[i % len(names)]
        gen, cost = PROGRAMS[t]
        f = gen(rng)
        noise = rng.uniform(0.9, 1.1) if "noisy" in t else 1.0
        out.append({"time": 1.0, "user": "bench", "argv": [t.split()[0], *map(str, f)],
                    "template": t, "features": list(map(float, f)), "machine": "cheap",
                    "source": "job", "cost": cost(f) * noise})
    return out


def fill(store: Store, n: int, rng: np.random.Generator) -> None:
    for start in range(0, n, 20000):
        with store.transaction() as db:
            for row in runs(min(20000, n - start), rng):
                store.add_run_in(db, row)


def held_out(rng: np.random.Generator) -> Dataset:
    data = Dataset()
    for row in runs(4000, rng):
        data.add(row["template"], tuple(row["features"]), int(row["cost"] > 1.0), row["cost"], 1.0)
    return data


def candidate(path: str, version: str | None) -> modelfile.ModelFile:
    """The retrain's candidate, promoted or kept aside as rejected."""
    model = modelfile.load(path)
    return model if model.version == version else modelfile.load(path + ".rejected")


def one_size(tmp: Path, n: int, test: Dataset, opts: TrainOptions) -> dict:
    rng = np.random.default_rng(n)
    store = Store(tmp / f"h{n}.db")
    fill(store, n, rng)
    base = fit(_reservoir(store), opts)   # the model so far: trained on a sample
    base.meta["watermark"] = store.done_seq()
    inc_path, full_path = str(tmp / f"inc{n}.rmod"), str(tmp / f"full{n}.rmod")
    modelfile.save(base, inc_path)
    shutil.copy(inc_path, full_path)
    fill(store, BATCH, rng)                                         # the new batch
    t0 = time.perf_counter()
    inc = retrain.retrain(store, POLICY, inc_path, opts=opts)
    t_inc = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = retrain.retrain(store, POLICY, full_path, full=True, opts=opts)
    t_full = time.perf_counter() - t0
    store.close()
    acc_inc = retrain.accuracy(candidate(inc_path, inc.version), test)
    acc_full = retrain.accuracy(candidate(full_path, full.version), test)
    print(f"history {n:>9,}: incremental {t_inc:6.1f}s ({inc.new_runs} new + {inc.reservoir} "
          f"reservoir) acc {acc_inc:.3f} | full {t_full:7.1f}s ({full.new_runs} runs) acc "
          f"{acc_full:.3f}", file=sys.stderr)
    return {"n": n, "incremental_s": t_inc, "full_s": t_full, "acc_incremental": acc_inc,
            "acc_full": acc_full}


def _reservoir(store: Store) -> Dataset:
    from router.learn import dataset
    return dataset.from_runs(store.reservoir(), POLICY.threshold_for)


def main() -> None:
    opts = TrainOptions(seed=0)
    test = held_out(np.random.default_rng(99))
    with tempfile.TemporaryDirectory() as tmp:
        one_size(Path(tmp), 2000, test, opts)          # compiles the incremental shapes
        rows = [one_size(Path(tmp), n, test, opts) for n in SIZES]
    small, big = rows[0], rows[-1]
    result = {
        "sizes": SIZES,
        "incremental_s": [round(r["incremental_s"], 2) for r in rows],
        "full_s": [round(r["full_s"], 2) for r in rows],
        "incremental_ratio_1m_vs_10k": round(big["incremental_s"] / small["incremental_s"], 3),
        "full_ratio_1m_vs_10k": round(big["full_s"] / small["full_s"], 3),
        "accuracy_gap_points": round(max(100 * (r["acc_full"] - r["acc_incremental"])
                                         for r in rows), 2),
        "accuracy_incremental": [round(r["acc_incremental"], 4) for r in rows],
        "accuracy_full": [round(r["acc_full"], 4) for r in rows],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
