"""`router retrain`: keep the model up with finished jobs at the cost of the new batch.

Incremental (the default) starts from the current model's weights and scaling and trains on
the runs finished since the model's watermark (an indexed range, not a scan) plus the store's
fixed-size reservoir of older history, so its time depends on the batch and the reservoir, not
on the history. New templates join here. `--full` trains from scratch on everything.

The most recent jobs are held out; the candidate replaces the current model only if it is not
worse on them by more than the policy's margin. Otherwise it is kept beside the model as
`<model>.rejected` and the reason is logged. The swap is an atomic rename, which the daemon
notices; a lock keeps two retrains (a timer and a drift trigger) from overlapping.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

import numpy as np

from router.learn import dataset, modelfile, retrainlog, verdict
from router.learn.dataset import Dataset
from router.errors import RouterError
from router.learn.modelfile import ModelFile
from router.policy import Policy
from router.store import Store
from router.learn.train import TrainOptions, fit

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    promoted: bool
    reason: str
    candidate_accuracy: float | None
    current_accuracy: float | None
    new_runs: int
    reservoir: int
    holdout: int
    seconds: float
    version: str | None

    def line(self) -> str:
        acc = "" if self.candidate_accuracy is None else (
            f" (candidate {self.candidate_accuracy:.3f} vs current "
            f"{'-' if self.current_accuracy is None else f'{self.current_accuracy:.3f}'})")
        head = ("promoted" if self.promoted else "not promoted") + (
            f" {self.version}" if self.version else "")
        return (f"{head}: "
                f"{self.reason}{acc}; {self.new_runs} new runs, {self.reservoir} from the "
                f"reservoir, {self.holdout} held out, {self.seconds:.1f}s")


@contextmanager
def exclusive(path: str) -> Iterator[None]:
    """At most one retrain at a time; a second one gives up at once."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise RouterError(f"cannot open the retrain lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RouterError(f"another retrain holds {path}; skipped") from None
        yield
    finally:
        os.close(fd)


def accuracy(model: ModelFile | None, data: Dataset, p_cut: float = verdict.DEFAULT_CUT) -> float:
    """Share of runs whose over/under the model called right; unknown templates count wrong."""
    if model is None or not len(data):
        return 0.0
    right = 0
    for t, f, y, th in zip(data.templates, data.features, data.labels, data.thresholds):
        if t in model.index and len(f) == model.n_features[model.index[t]]:
            right += int(verdict.called_over(model.predict(t, f, th).p_over, p_cut) == bool(y))
    return right / len(data)


def gate(candidate: ModelFile, current: ModelFile | None, holdout: Dataset,
         margin: float, p_cut: float = verdict.DEFAULT_CUT
         ) -> tuple[bool, str, float | None, float | None]:
    """Promote unless the candidate is worse than the current model by more than margin."""
    if current is None:
        return True, "no current model", None, None
    if not len(holdout):
        return True, "no recent jobs to hold out", None, None
    cand, cur = accuracy(candidate, holdout, p_cut), accuracy(current, holdout, p_cut)
    if cand + margin < cur:
        return False, f"worse than current by {cur - cand:.3f} > margin {margin}", cand, cur
    return True, "not worse than current", cand, cur


def _split_holdout(new: Dataset, size: int) -> tuple[Dataset, Dataset]:
    """The most recent runs are the holdout, but never more than a quarter of the batch."""
    n = min(size, len(new) // 4)
    order = np.argsort(np.asarray(new.seqs), kind="stable")
    return new.subset(order[:len(order) - n]), new.subset(order[len(order) - n:])


def promote_or_reject(candidate: ModelFile, current: ModelFile | None, holdout: Dataset,
                      margin: float, model_path: str, p_cut: float = verdict.DEFAULT_CUT
                      ) -> tuple[bool, str, float | None, float | None]:
    ok, why, cand, cur = gate(candidate, current, holdout, margin, p_cut)
    if ok:
        modelfile.save(candidate, model_path)
        log.warning("model %s promoted: %s", candidate.version, why)
    else:
        modelfile.save(candidate, model_path + ".rejected")
        log.warning("candidate %s rejected: %s; kept as %s.rejected", candidate.version, why,
                    model_path)
    return ok, why, cand, cur


def retrain(store: Store, policy: Policy, model_path: str, *, full: bool = False,
            opts: TrainOptions | None = None) -> Outcome:
    """One retrain, incremental unless full or there is no model yet."""
    start = time.perf_counter()
    opts = opts or TrainOptions(p_cut=verdict.cut(policy))
    current = modelfile.load(model_path) if os.path.exists(model_path) else None
    incremental = current is not None and not full
    watermark = current.meta.get("watermark", 0) if incremental else 0
    new = dataset.from_runs(store.runs(since_seq=watermark), policy.threshold_for)
    if not len(new):
        return Outcome(False, f"nothing finished since watermark {watermark}", None, None, 0, 0,
                       0, time.perf_counter() - start, None)
    train, holdout = _split_holdout(new, policy.retrain["holdout"])
    old = dataset.from_runs(store.reservoir(until_seq=watermark), policy.threshold_for) \
        if incremental else Dataset()
    train.extend(old)
    candidate = fit(train, opts, base=current if incremental else None,
                    extra_meta={"retrain": "incremental" if incremental else "full"})
    candidate.meta["watermark"] = max(new.seqs)
    ok, why, cand, cur = promote_or_reject(candidate, current, holdout,
                                           policy.retrain["margin"], model_path,
                                           verdict.cut(policy))
    return Outcome(ok, why, cand, cur, len(new), len(old), len(holdout),
                   time.perf_counter() - start, candidate.version)


def run(store_path: str, policy: Policy, model_path: str, *, full: bool = False,
        opts: TrainOptions | None = None) -> Outcome:
    """The command: under the lock, against the store at store_path. A machine with no history
    yet (the timer's first runs) is told so in the outcome's one line, not by a failure."""
    if not os.path.exists(store_path):
        return Outcome(False, f"no history at {store_path} yet: nothing to learn from", None,
                       None, 0, 0, 0, 0.0, None)
    lock = policy.retrain["lock"] or model_path + ".lock"
    with exclusive(lock), Store(store_path) as store:
        outcome = retrain(store, policy, model_path, full=full, opts=opts)
    retrainlog.append(model_path, {"time": time.time(), **as_dict(outcome)})
    return outcome


def as_dict(outcome: Outcome) -> dict[str, Any]:
    return dict(outcome.__dict__)
