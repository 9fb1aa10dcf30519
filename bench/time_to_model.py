"""Time to a model, as a user waits for it: the wall time of the `router train` command, end to
end (interpreter start, imports, reading the history, the whole ensemble's training, the
validation figures, writing the file), on histories of 500, 10,000 and 1,000,000 runs of nine
templates, against scikit-learn's MLPClassifier((64, 64)) (one member, its own interpreter and
import included) fitted on the same rows in the same run. Both are scored on the same unseen
inputs, labelled by their noiseless cost. Sizes: BENCH_SIZES (default 500,10000,1000000).
Last line: JSON with ratio_vs_sklearn_<size> (router seconds / scikit-learn seconds; goal <= 1)
and each side's accuracy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THRESHOLD = 0.04
ROOT = Path(__file__).resolve().parents[1]
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "500,10000,1000000").split(",")]
UNSEEN = 2000


def _shapes() -> dict[str, tuple[int, object]]:
    """template -> (feature count, noiseless cost of a feature row [N, F])."""
    return {
        "./step {num}": (1, lambda f: 0.01 + 0.1 * (f[:, 0] > 50)),
        "./band {num}": (1, lambda f: 0.01 + 0.1 * ((f[:, 0] > 20) & (f[:, 0] < 40))),
        "./grid {num} {num}": (2, lambda f: f[:, 0] * f[:, 1] / 4e4),
        "./filecost {path}": (1, lambda f: (f[:, 0] / 4e5) ** 1.5),
        "./solve --mode=fast {num}": (1, lambda f: f[:, 0] / 1000),
        "./solve --mode=exact {num}": (1, lambda f: f[:, 0] ** 2 / 1.6e5),
        "./decades {num}": (1, lambda f: f[:, 0] / 1e5),
        "./noisy {num}": (1, lambda f: f[:, 0] / 1000),
        "./sum {num} {num}": (2, lambda f: (f[:, 0] + f[:, 1]) / 2000),
    }


def _features(template: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if template.startswith("./grid") or template.startswith("./sum"):
        return rng.uniform(1, 60, (n, 2))
    if template.startswith("./filecost"):
        return 10 ** rng.uniform(4, 6, (n, 1))
    if template.startswith("./decades"):
        return 10 ** rng.uniform(0, 6, (n, 1))
    return rng.uniform(1, 80, (n, 1))


def runs(n: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per template: features and measured costs (3% noise; the noisy program 15%)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (template, (_, cost)) in enumerate(_shapes().items()):
        k = n // 9 + (i < n % 9)
        f = _features(template, k, rng)
        noise = 0.15 if "noisy" in template else 0.03
        out.append((template, f, cost(f) * np.exp(rng.normal(0, noise, k))))
    return out


def unseen() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Held-out inputs and their labels: over the threshold by the noiseless cost."""
    rng = np.random.default_rng(99)
    return [(t, f, (c(f) > THRESHOLD).astype(int)) for t, (_, c) in _shapes().items()
            for f in [_features(t, UNSEEN // 9, rng)]]


def write_store(path: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from router.store import Store
    with Store(path, reservoir_size=64) as store:
        batch: list[dict] = []
        for template, feats, costs in runs(n, seed=n):
            for f, c in zip(feats.tolist(), costs.tolist()):
                batch.append({"source": "collect", "argv": template.split(), "template": template,
                              "features": f, "cost": c, "machine": "cheap", "time": 1.0,
                              "user": "bench"})
                if len(batch) == 20000:
                    with store.transaction() as db:
                        store.add_runs_in(db, batch)
                    batch = []
        with store.transaction() as db:
            store.add_runs_in(db, batch)


SKLEARN = r"""
import sys, time, warnings
import numpy as np
from sklearn.neural_network import MLPClassifier
d = np.load(sys.argv[1])
def encode(t, f):
    x = np.sign(f) * np.log1p(np.abs(f))
    return np.concatenate([np.eye(9)[t], (x - d["mu"]) / d["sd"]], 1)
warnings.simplefilter("ignore")
clf = MLPClassifier((64, 64), random_state=0, early_stopping=True)
clf.fit(encode(d["t"], d["f"]), d["y"])
print(float((clf.predict(encode(d["ut"], d["uf"])) == d["uy"]).mean()))
"""


def sklearn_rows(n: int, path: Path) -> None:
    """The same rows as the store, as the arrays MLPClassifier takes (not timed: the store's
    rows are not timed either)."""
    templates, feats, labels, ut, uf, uy = [], [], [], [], [], []
    for i, (_, f, c) in enumerate(runs(n, seed=n)):
        templates.append(np.full(len(f), i))
        feats.append(np.pad(f, ((0, 0), (0, 2 - f.shape[1]))))
        labels.append((c > THRESHOLD).astype(int))
    for i, (_, f, y) in enumerate(unseen()):
        ut.append(np.full(len(f), i))
        uf.append(np.pad(f, ((0, 0), (0, 2 - f.shape[1]))))
        uy.append(y)
    f = np.concatenate(feats)
    x = np.sign(f) * np.log1p(np.abs(f))
    np.savez(path, t=np.concatenate(templates), f=f, y=np.concatenate(labels),
             mu=x.mean(0), sd=np.where(x.std(0) > 0, x.std(0), 1), ut=np.concatenate(ut),
             uf=np.concatenate(uf), uy=np.concatenate(uy))


def router_accuracy(model_path: Path) -> float:
    from router.learn import modelfile
    model = modelfile.load(model_path)
    right = total = 0
    for template, feats, labels in unseen():
        for f, y in zip(feats.tolist(), labels.tolist()):
            f = f[:model.n_features[model.index[template]]]
            right += int((model.predict(template, f, THRESHOLD).p_over >= 0.5) == bool(y))
            total += 1
    return right / total


def measure(n: int, tmp: Path) -> dict[str, float]:
    store, model, rows = tmp / f"h{n}.db", tmp / f"m{n}.rmod", tmp / f"rows{n}.npz"
    write_store(store, n)
    sklearn_rows(n, rows)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "router", "train", "--store", str(store), "--model",
                        str(model), "--threshold", str(THRESHOLD), "--json"], env=env,
                       capture_output=True, text=True)
    router_s = time.perf_counter() - start
    if r.returncode:
        raise SystemExit(r.stderr)
    start = time.perf_counter()
    s = subprocess.run([sys.executable, "-c", SKLEARN, str(rows)], capture_output=True, text=True)
    sklearn_s = time.perf_counter() - start
    if s.returncode:
        raise SystemExit(s.stderr)
    out = {"router_s": round(router_s, 2), "sklearn_s": round(sklearn_s, 2),
           "router_accuracy": round(router_accuracy(model), 4),
           "sklearn_accuracy": round(float(s.stdout.strip()), 4),
           "router_epochs": json.loads(r.stdout)["epochs"]}
    print(f"{n:>9,} runs: router train {router_s:7.2f} s (accuracy {out['router_accuracy']:.3f}"
          f", {out['router_epochs']} epochs), scikit-learn {sklearn_s:7.2f} s (accuracy "
          f"{out['sklearn_accuracy']:.3f}), ratio {router_s / sklearn_s:.2f}", file=sys.stderr)
    return out


def _name(n: int) -> str:
    return {500: "500", 10000: "10k", 1000000: "1m"}.get(n, str(n))


def main() -> None:
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        for n in SIZES:
            m = measure(n, Path(d))
            name = _name(n)
            result[f"ratio_vs_sklearn_{name}"] = round(m["router_s"] / m["sklearn_s"], 3)
            result.update({f"{k}_{name}": v for k, v in m.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
