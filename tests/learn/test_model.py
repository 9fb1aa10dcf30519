"""The model file, the NumPy fast path, training determinism and sharding."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROUTER
from router.learn import modelfile
from router.learn.dataset import Dataset, from_lines
from router.errors import DataError, ModelError
from router.learn import distribution as dist
from router.learn.model import Arch, dense, ensemble_heads, from_arrays, graph, init_members
from router.learn.encoding import encode, groups
from router.learn import folds
from router.learn.schedule import FINAL, WARMUP, Schedule
from router.learn.train import TrainOptions, fit

FAST = TrainOptions(epochs=300, members=3)


def toy(n: int = 120, seed: int = 0, noise: float = 0.0) -> Dataset:
    """Two templates; with noise, each cost is off by a log-normal factor of that spread."""
    rng = np.random.default_rng(seed)
    data = Dataset()
    for _ in range(n):
        a = float(rng.uniform(1, 100))
        cost = a / 1000 * float(np.exp(rng.normal(0, noise)))
        data.add("/p {num}", (a,), int(cost > 0.05), cost, 0.05)
        b, c = float(rng.uniform(1, 50)), float(rng.uniform(1, 50))
        cost = b * c / 1e4 * float(np.exp(rng.normal(0, noise)))
        data.add("/q {num} {num}", (b, c), int(cost > 0.05), cost, 0.05)
    return data


@pytest.fixture(scope="module")
def trained():
    return fit(toy(), FAST)


def test_learns_a_simple_cut(trained):
    assert trained.meta["val_accuracy"] >= 0.9
    assert trained.predict("/p {num}", (90.0,)).p_over > 0.8
    assert trained.predict("/p {num}", (5.0,)).p_over < 0.2
    assert not trained.predict("/other", ()).known


def test_a_training_runs_its_budget_with_a_rising_then_falling_rate():
    small, large = Schedule.of(TrainOptions(), 400), Schedule.of(TrainOptions(), 1_000_000)
    assert small.batch == 256 and small.total_steps == 600       # two batches, 300 epochs
    assert Schedule.of(TrainOptions(), 10_000).total_steps >= 1200  # more runs, more updates
    assert large.epochs == TrainOptions().min_epochs
    rates = [small.lr_scale(i) for i in range(small.total_steps + 1)]
    peak = rates.index(max(rates))
    assert rates[0] < 0.05 and peak == round(WARMUP * small.total_steps) - 1 and max(rates) > 0.85
    assert rates[-1] == pytest.approx(FINAL) and rates[peak:] == sorted(rates[peak:], reverse=True)
    assert Schedule.of(TrainOptions(epochs=7), 10_000).epochs == 7


def test_each_member_holds_out_one_fold_and_the_figures_cover_every_run():
    data = toy(100)
    group = groups(data)
    fold = folds.assign(group, 3, seed=0)
    w = folds.member_weights(np.ones(len(fold)), fold, 3)
    assert ((w == 0) == (fold[:, None] == np.arange(3))).all()
    model = fit(data, TrainOptions(members=3, epochs=50))
    assert model.meta["val_samples"] == len(data)
    few = Dataset()
    for a in range(10):
        few.add("/p {num}", (float(a),), int(a > 5), a / 100, 0.05)
    assert (folds.assign(groups(few), 3, seed=0) == folds.NONE).all()


def test_fast_path_agrees_with_the_jax_forward(trained):
    arch = Arch(**trained.meta["arch"])
    states = from_arrays(init_members(arch, __import__("jax").random.split(
        __import__("jax").random.key(0), arch.members)), trained.weights)
    data = toy(40, seed=1)
    x, t = encode(data, trained)
    heads = np.asarray(ensemble_heads(graph(arch), states, x, t), dtype=np.float64)
    center, spread = trained.meta["log_cost"]
    mus = center + spread * heads[..., 0]
    scales = spread * trained.meta["scale_factor"] * (np.logaddexp(0.0, heads[..., 1]) + dist.S_MIN)
    mu, s = dist.combine_arrays(mus, scales)
    member_p = dist.p_over_arrays(mus, scales, np.log(0.05))
    for i in range(len(data)):
        fast = trained.predict(data.templates[i], data.features[i], 0.05)
        assert fast.mu == pytest.approx(mu[i], abs=1e-4) and fast.s == pytest.approx(s[i], rel=1e-4)
        assert abs(fast.p_over - dist.p_over(mu[i], s[i], 0.05)) <= 1e-4
        assert abs(fast.sd - member_p[:, i].std()) <= 1e-4
    batch = trained.predict_batch(t, x)
    np.testing.assert_allclose(batch[..., 0], mus, atol=1e-4)
    np.testing.assert_allclose(batch[..., 1], scales, rtol=1e-4)


def test_model_file_roundtrip_and_refusals(trained, tmp_path):
    path = tmp_path / "m.rmod"
    modelfile.save(trained, path)
    back = modelfile.load(path)
    assert back.version == trained.version and back.templates == trained.templates
    assert back.predict("/p {num}", (90.0,)).p_over == pytest.approx(
        trained.predict("/p {num}", (90.0,)).p_over, abs=1e-6)
    assert back.meta["trainer_version"] and back.meta["devices"] and "calibration_error" in back.meta
    data = path.read_bytes()
    for name, content, message in [
        ("trunc", data[: len(data) // 2], "truncated"),
        ("corrupt", data[:-10] + b"x" * 10, "corrupt"),
        ("foreign", b"PK\x03\x04 not a model", "not a router model"),
        ("empty", b"", "not a router model"),
    ]:
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(ModelError, match=message):
            modelfile.load(bad)
    with pytest.raises(ModelError, match="no model"):
        modelfile.load(tmp_path / "missing")


def test_other_features_are_refused(trained):
    with pytest.raises(ModelError, match="other features"):
        trained.predict("/p {num}", (1.0, 2.0))


def dense_grads(x: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple:
    """The gradients of <dense(x, w), g> by our VJP and by autodiff of a plain product."""
    mine = jax.grad(lambda x, w: jnp.vdot(jax.vmap(dense)(x, w), g), (0, 1))(x, w)
    plain = jax.grad(lambda x, w: jnp.vdot(x @ w, g), (0, 1))(x, w)
    return mine, plain


@pytest.mark.parametrize("rows", [64, 4096])   # the plain form, and the split one
def test_dense_gradients_are_the_plain_products(rows):
    rng = np.random.default_rng(rows)
    x, w, g = (rng.normal(size=s).astype(np.float32)
               for s in ((3, rows, 24), (3, 24, 64), (3, rows, 64)))
    for ours, plain in zip(*dense_grads(x, w, g)):
        np.testing.assert_allclose(ours, plain, rtol=1e-4, atol=1e-3)


def test_same_seed_same_model():
    a, b = fit(toy(60), FAST), fit(toy(60), FAST)
    for k in a.weights:
        np.testing.assert_array_equal(a.weights[k], b.weights[k])


def test_sharded_over_four_devices_matches_one(tmp_path):
    """Data-parallel over forced host devices gives the same model up to float tolerance: the
    same predicted log cost to 0.05 (5% of a cost) and scale to 5%. The costs are noisy: on
    noiseless ones the scales shrink to their floor, where the likelihood's gradient is so steep
    that reduction-order differences of 1e-7 grew to 0.1 in log cost over 300 epochs (here: 60). Weights
    get a looser bound: Adam turns such differences in a near-zero gradient into ~1e-2."""
    script = tmp_path / "shard.py"
    script.write_text(f"""
import sys, numpy as np
sys.path[:0] = [{os.path.dirname(__file__)!r}, {os.path.dirname(os.path.dirname(__file__))!r}]
from test_model import toy, FAST
from router.learn.encoding import encode, groups
from router.learn.train import fit
import jax
assert len(jax.devices()) == 4, jax.devices()
from router.learn.train import TrainOptions
slow = {{"batch": 64, "epochs": 60, "learning_rate": 3e-3}}
opts = TrainOptions(**{{**FAST.__dict__, **slow, "devices": 4}})
four = fit(toy(64, noise=0.1), opts)
ones = TrainOptions(**{{**FAST.__dict__, **slow, "devices": 1}})
one = fit(toy(64, noise=0.1), ones)
assert len(four.meta["devices"]) == 4
x, t = encode(toy(200, seed=5), one)
a, b = one.predict_batch(t, x), four.predict_batch(t, x)
np.testing.assert_allclose(a[..., 0], b[..., 0], atol=5e-2)
np.testing.assert_allclose(a[..., 1], b[..., 1], rtol=5e-2)
for k in one.weights:
    np.testing.assert_allclose(one.weights[k], four.weights[k], atol=5e-2)
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from test_model import dense_grads
rows = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P(None, "data"))
rng = np.random.default_rng(1)
x, g = (jax.device_put(rng.normal(size=s).astype(np.float32), rows)
        for s in ((3, 4096, 24), (3, 4096, 64)))
w = rng.normal(size=(3, 24, 64)).astype(np.float32)
for ours, plain in zip(*dense_grads(x, w, g)):   # the split weight gradient, sharded
    np.testing.assert_allclose(ours, plain, rtol=1e-4, atol=1e-3)
print("ok")
""")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_text_format_and_bad_lines():
    data = from_lines(["4 | 0", "90 | 1", "", "# comment", "7|0"], None, ["./prog"])
    assert data.labels == [0, 1, 0] and data.templates[0].endswith("/prog {num}")
    with pytest.raises(DataError, match="line 2: label must be 0 or 1"):
        from_lines(["4 | 0", "5 | maybe"], None, ["./prog"])
    with pytest.raises(DataError, match="line 1: expected"):
        from_lines(["no separator"], None)
    with pytest.raises(DataError, match="line 1: not JSON"):
        from_lines(["{broken"], None)


def test_train_and_predict_through_pipes(env, tmp_path):
    lines = "".join(f"{i} | {int(i > 50)}\n" for i in range(1, 101))
    r = subprocess.run(["sh", "-c", f"yes \"$(cat)\" | head -n 2000 | {' '.join(ROUTER)} train "
                        "--data - --threshold 1 --json -- ./prog"],
                       input=lines, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["samples"] == 2000 * 100 // 100 and summary["val_accuracy"] > 0.9
    p = subprocess.run([*ROUTER, "predict", "--json", "--threshold", "1", "--", "./prog"],
                       input="3\n97\n50.5\n",
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = [json.loads(l) for l in p.stdout.splitlines()]
    assert [o["argv"][-1] for o in out] == ["3", "97", "50.5"]
    assert out[0]["p_over"] < 0.5 < out[1]["p_over"]
    for o in out:
        assert {"template", "p_over", "sd", "cost_p50", "cost_p90", "machine", "reason"} <= set(o)


def test_bad_data_keeps_the_old_model(env, tmp_path):
    model = tmp_path / "model.rmod"
    model.write_bytes(b"old")
    r = subprocess.run([*ROUTER, "train", "--data", "-", "--threshold", "1", "--", "./p"],
                       input="1 | 0\n2 | x\n",
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "data line 2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert model.read_bytes() == b"old"


def test_unknown_template_gets_the_policy_default(env):
    p = subprocess.run([*ROUTER, "predict", "--", "/bin/echo", "1"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\t")[1:] == ["-", "-", "-", "-", "cheap", "no model\n"]
