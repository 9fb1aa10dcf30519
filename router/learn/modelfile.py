"""The model file and the fast path: everything a predictor needs, with NumPy and no JAX.

One file holds weights, feature scaling, templates (with the thresholds their label-only lines
were trained with), the log-cost normalisation, a version, a content hash and training
metadata. The model predicts a cost distribution (format 2), so one file serves every
threshold; a format 1 file (a classifier for one threshold) is refused with a line that says to
retrain it: its single logit cannot be turned into a distribution. It is written atomically
(temp file, fsync, rename), and a file that is truncated, corrupt or foreign is refused with
one line, so a bad file never replaces the model in use. The daemon predicts from it without
importing JAX: for one job the forward pass of the whole ensemble is a handful of small NumPy
operations, with each template's embedding folded into the first layer's bias once at load
time.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from router import atomic
from router.errors import ModelError, RouterError
from router.learn import distribution as dist

log = logging.getLogger(__name__)

MAGIC = b"ROUTER-MODEL\n"
FORMAT = 2
_HEADER = struct.Struct("<I32sQ")  # format, sha256 of payload, payload length
WEIGHTS = ("embed", "w1", "b1", "w2", "b2", "w3", "b3")


def slog(x: np.ndarray) -> np.ndarray:
    """Signed log: features span decades and may be negative."""
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class Prediction:
    """One run's predicted cost: the ensemble's logistic (mu, s) of the natural log of its
    reference CPU seconds, its p_over at the threshold asked for, and the members' spread of
    that p_over (the epistemic part; the noise is in s)."""

    p_over: float
    sd: float
    known: bool = True
    mu: float = float("nan")
    s: float = float("nan")

    def quantile(self, q: float) -> float:
        """The cost in seconds that the run stays under with probability q."""
        return float("nan") if math.isnan(self.mu) else dist.quantile(self.mu, self.s, q)

    def p_over_at(self, threshold: float) -> float:
        """P(cost > threshold), for any threshold: no retrain when a policy changes it."""
        return dist.p_over(self.mu, self.s, threshold)


@dataclass
class ModelFile:
    """Weights (stacked over ensemble members), per-template scaling, and metadata."""

    weights: dict[str, np.ndarray]
    templates: list[str]
    thresholds: list[float]
    n_features: list[int]
    mean: np.ndarray               # [T, F] of slog(features)
    scale: np.ndarray              # [T, F]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.templates)}
        w = self.weights
        if np.ndim(w["b3"]) != 2 or "log_cost" not in self.meta:
            raise ModelError("model without a cost distribution (an older router's): retrain "
                             "it with `router train` or `router retrain --full`")
        self._center, self._spread = (float(v) for v in self.meta["log_cost"])
        self._tau = float(self.meta.get("scale_factor", 1.0))   # see evaluate.scale_factor
        f = self.mean.shape[1]
        # per template and member, the first layer's bias with the embedding folded in
        bias1 = np.einsum("kte,keh->tkh", w["embed"], w["w1"][:, f:, :]) + w["b1"][None]
        # the single-job path runs in float32 (the weights were trained in it): faster matmuls
        self._bias1 = bias1.astype(np.float32)
        self._w1x = np.ascontiguousarray(w["w1"][:, :f, :].transpose(1, 0, 2), np.float32)
        self._w2 = np.ascontiguousarray(w["w2"], np.float32)
        self._b2 = w["b2"]
        self._w3 = w["w3"]
        self._b3 = w["b3"]
        self._b2_3 = w["b2"][:, None, :].astype(np.float32)
        # the location head in log seconds (normalisation folded in), the scale head raw
        w3 = w["w3"] * np.array([self._spread, 1.0])
        self._w3_3 = np.ascontiguousarray(w3, np.float32)
        self._b_mu = (self._center + self._spread * w["b3"][:, 0]).tolist()
        self._b_s = w["b3"][:, 1].tolist()
        self._mean_l = self.mean.tolist()
        self._scale_l = self.scale.tolist()

    @property
    def version(self) -> str:
        return f"v{self.meta.get('generation', 1)}-{self.meta.get('hash', '')[:8]}"

    @property
    def width(self) -> int:
        return int(self.mean.shape[1])

    def threshold(self, template: str) -> float | None:
        i = self.index.get(template)
        return None if i is None else self.thresholds[i]

    def scaled(self, template_index: int, features: list[float] | tuple[float, ...]) -> np.ndarray:
        n = self.n_features[template_index]
        x = np.zeros(self.width)
        x[:n] = (slog(np.asarray(features[:n], dtype=float)) - self.mean[template_index, :n]) \
            / self.scale[template_index, :n]
        return x

    def check_features(self, template: str, features: list[float] | tuple[float, ...]) -> None:
        i = self.index[template]
        if len(features) != self.n_features[i]:
            raise ModelError(f"model for other features: template {template!r} has "
                             f"{self.n_features[i]} features in the model, {len(features)} given")

    def predict(self, template: str, features: list[float] | tuple[float, ...],
                threshold: float | None = None) -> Prediction:
        """The fast path: one job, the whole ensemble, p_over at `threshold` (default: the one
        the template's label-only lines were trained with). Scaling is plain math on a few
        floats, the layers are batched matmuls over members: tiny NumPy calls cost ~1 us each."""
        i = self.index.get(template)
        if i is None:
            return Prediction(float("nan"), float("nan"), known=False)
        n = self.n_features[i]
        if len(features) != n:
            self.check_features(template, features)
        mean, scale = self._mean_l[i], self._scale_l[i]
        h = self._bias1[i].copy()
        for j in range(n):
            v = features[j]
            z = (math.copysign(math.log1p(abs(v)), v) - mean[j]) / scale[j]
            h += z * self._w1x[j]
        np.maximum(h, 0.0, out=h)
        h2 = np.matmul(h[:, None, :], self._w2)
        h2 += self._b2_3
        np.maximum(h2, 0.0, out=h2)
        heads = np.matmul(h2, self._w3_3).ravel().tolist()
        return self._distribution(heads, self.thresholds[i] if threshold is None else threshold)

    def _distribution(self, heads: list[float], threshold: float) -> Prediction:
        """Members' heads to the ensemble's logistic and p_over: scalar math, since NumPy
        calls on five numbers cost more than the numbers (tanh: a sigmoid that cannot
        overflow)."""
        a, log1p, exp, tanh = self._spread * self._tau, math.log1p, math.exp, math.tanh
        mus = [h + b for h, b in zip(heads[0::2], self._b_mu)]
        scales = [a * ((r if r > 30.0 else log1p(exp(r))) + dist.S_MIN)
                  for r in (h + b for h, b in zip(heads[1::2], self._b_s))]
        mu, s = dist.combine(mus, scales)
        if not threshold > 0:
            return Prediction(float("nan"), float("nan"), mu=mu, s=s)
        lt = math.log(threshold)
        ps = [0.5 + 0.5 * tanh(0.5 * (m - lt) / v) for m, v in zip(mus, scales)]
        pm = sum(ps) / len(ps)
        var = sum((p - pm) * (p - pm) for p in ps) / len(ps)
        return Prediction(0.5 + 0.5 * tanh(0.5 * (mu - lt) / s), math.sqrt(var), mu=mu, s=s)

    def predict_batch(self, template_idx: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Every member's (mu, s) of log cost, [K, N, 2], for scaled features x [N, F]: batch
        throughput, and the validation figures of a training."""
        h = np.einsum("nf,fkh->knh", x, self._w1x.astype(np.float64)) \
            + self._bias1[template_idx].transpose(1, 0, 2)
        np.maximum(h, 0.0, out=h)
        h = np.matmul(h, self._w2) + self._b2[:, None, :]
        np.maximum(h, 0.0, out=h)
        heads = np.einsum("knh,khj->knj", h, self._w3) + self._b3[:, None, :]
        mu = self._center + self._spread * heads[..., 0]
        s = self._spread * self._tau * (np.logaddexp(0.0, heads[..., 1]) + dist.S_MIN)
        return np.stack([mu, s], axis=-1)


class ModelCache:
    """The model file's latest good version; a bad new file is logged and the old one kept."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = path
        self.model: ModelFile | None = None
        self.stamp: tuple[int, int] | None = None

    def get(self) -> ModelFile | None:
        """The model, re-read first if its file changed (a stat when it did not)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.model
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self.stamp:
            self.stamp = stamp
            try:
                self.model = load(self.path)
                log.warning("model %s loaded from %s", self.model.version, self.path)
            except RouterError as exc:
                log.error("%s; keeping the model in use", exc)
        return self.model

    def forget(self) -> None:
        """Re-read on the next get(), changed or not (SIGHUP)."""
        self.stamp = None


def _payload(model: ModelFile) -> bytes:
    meta = dict(model.meta, templates=model.templates, thresholds=model.thresholds,
                n_features=model.n_features)
    meta.pop("hash", None)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in model.weights.items()}
    arrays["mean"] = np.asarray(model.mean, dtype=np.float64)
    arrays["scale"] = np.asarray(model.scale, dtype=np.float64)
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(model: ModelFile, path: str | os.PathLike[str]) -> str:
    """Write atomically; returns the content hash, which also becomes part of the version."""
    payload = _payload(model)
    digest = hashlib.sha256(payload).digest()
    model.meta["hash"] = digest.hex()
    atomic.write(path, MAGIC + _HEADER.pack(FORMAT, digest, len(payload)) + payload)
    return digest.hex()


def load(path: str | os.PathLike[str]) -> ModelFile:
    """Read and verify a model file; any defect is one ModelError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"no model at {path}: run `router train` first") from None
    except OSError as exc:
        raise ModelError(f"cannot read model {path}: {exc.strerror}") from None
    if not data.startswith(MAGIC):
        raise ModelError(f"{path} is not a router model file")
    head = data[len(MAGIC):len(MAGIC) + _HEADER.size]
    if len(head) < _HEADER.size:
        raise ModelError(f"model {path} is truncated")
    fmt, digest, length = _HEADER.unpack(head)
    if fmt > FORMAT:
        raise ModelError(f"model {path} has format {fmt}, newer than this router ({FORMAT})")
    if fmt < FORMAT:
        raise ModelError(f"model {path} predicts no cost distribution (format {fmt}): retrain "
                         f"it with `router train` or `router retrain --full`")
    payload = data[len(MAGIC) + _HEADER.size:]
    if len(payload) != length:
        raise ModelError(f"model {path} is truncated ({len(payload)} of {length} bytes)")
    if hashlib.sha256(payload).digest() != digest:
        raise ModelError(f"model {path} is corrupt (content hash mismatch)")
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    meta["hash"] = digest.hex()
    weights = {k: arrays[k].astype(np.float64) for k in WEIGHTS}
    return ModelFile(weights, meta.pop("templates"), meta.pop("thresholds"),
                     meta.pop("n_features"), arrays["mean"], arrays["scale"], meta)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """|accuracy - confidence| averaged over probability bins, weighted by their size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(y[sel].mean() - p[sel].mean())
    return float(total / max(len(p), 1))


