"""The NumPy trainer does the JAX trainer's fit: the same loss, gradient and Adam update on the
same weights and rows, and a model of the same quality from `fit`."""

import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from router.learn import numpyfit
from router.learn.arch import Arch
from router.learn.encoding import ABOVE, BELOW, EXACT
from router.learn.jaxfit import Trainer as JaxTrainer
from router.learn.model import to_arrays
from router.learn.train import TrainOptions, fit
from conftest import ROOT
from router.learn.dataset import Dataset

def toy(n: int, seed: int = 0) -> Dataset:
    """Two templates, one cut each, costs 5% noisy."""
    rng = np.random.default_rng(seed)
    data = Dataset()
    for _ in range(n):
        a, b, c = (float(v) for v in rng.uniform(1, 100, 3))
        for template, f, cost in (("/p {num}", (a,), a / 1000), ("/q {num} {num}", (b, c),
                                                                   b * c / 2e4)):
            cost *= float(np.exp(rng.normal(0, 0.05)))
            data.add(template, f, int(cost > 0.05), cost, 0.05)
    return data


ARCH = Arch(n_templates=3, n_features=2, embed_dim=4, hidden=16, members=3)


def rows(n: int = 300, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Rows of every kind (a measured cost, and both bounds), with uneven weights per member,
    each member holding out a third of them (weight 0)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 2)).astype(np.float32), rng.integers(0, 3, n).astype(np.int32),
            rng.normal(size=n).astype(np.float32),
            rng.choice([EXACT, ABOVE, BELOW], n).astype(np.int32),
            (rng.uniform(0.2, 3.0, (n, 3)) * (rng.integers(0, 3, (n, 1)) != np.arange(3)))
            .astype(np.float32))


@pytest.fixture(scope="module")
def both():
    """A JAX trainer holding the NumPy trainer's initial weights, and those weights."""
    weights = numpyfit.init(ARCH, seed=1)
    trainer = JaxTrainer(ARCH, TrainOptions(members=3, hidden=16, embed_dim=4, trainer="jax"))
    trainer.weights = {k: a.copy() for k, a in weights.items()}
    return trainer, weights


def test_loss_is_the_jax_trainers(both):
    trainer, weights = both
    r = rows()
    ours = numpyfit.loss(weights, *r)
    theirs = float(trainer.base.loss(trainer.states, *r))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_gradient_is_jax_grad_of_the_same_loss(both):
    trainer, weights = both
    r = rows()
    theirs = to_arrays(jax.grad(trainer.base.loss)(trainer.states, *r))
    ours = numpyfit.gradient(weights, *r)
    assert set(ours) == set(theirs)
    for k in ours:
        scale = float(np.abs(np.asarray(theirs[k])).max())
        np.testing.assert_allclose(ours[k], np.asarray(theirs[k]), rtol=1e-4,
                                   atol=1e-5 * max(scale, 1e-3), err_msg=k)


def test_adam_is_optax_adam():
    rng = np.random.default_rng(2)
    w = {"a": rng.normal(size=(3, 4)).astype(np.float32)}
    ref = {"a": w["a"].copy()}
    ours, tx = numpyfit.Adam(w, 0.01), optax.adam(0.01)
    state = tx.init(ref)
    for _ in range(5):
        g = {"a": rng.normal(size=(3, 4)).astype(np.float32)}
        ours.update(w, g)
        updates, state = tx.update(g, state, ref)
        ref = optax.apply_updates(ref, updates)
    np.testing.assert_allclose(w["a"], np.asarray(ref["a"]), rtol=1e-5, atol=1e-6)


def test_both_trainers_learn_the_same_cut():
    """Not the same weights (their initial ones come from different generators): the same
    routing of inputs far from the boundary, and a validation accuracy within a few runs."""
    data = toy(200)
    models = {name: fit(data, TrainOptions(seed=0, members=3, trainer=name))
              for name in ("numpy", "jax")}
    for name, model in models.items():
        assert model.meta["trainer"] == name
        assert model.meta["val_accuracy"] >= 0.9, name
        assert model.predict("/p {num}", (90.0,), 0.05).p_over > 0.8, name
        assert model.predict("/p {num}", (5.0,), 0.05).p_over < 0.2, name
        assert model.predict("/q {num} {num}", (95.0, 95.0), 0.05).p_over > 0.8, name


def test_small_histories_train_in_numpy_without_importing_jax():
    code = """
import sys
from router.learn.dataset import Dataset
from router.learn.train import TrainOptions, fit
data = Dataset()
for a in range(1, 101):
    data.add("/p {num}", (float(a),), int(a > 50), a / 1000, 0.05)
model = fit(data, TrainOptions(members=2))
print(model.meta["trainer"], "jax" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["numpy", "False"]
