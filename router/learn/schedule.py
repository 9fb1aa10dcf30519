"""How long a training runs and how fast it learns: the same for both trainers (NumPy, JAX).

A budget of updates with a learning rate that rises over the first tenth of them and then
falls linearly to a fiftieth of its peak, not early stopping on a validation split. Why: on
the bench's histories the decayed run ended at a sharper model than the best checkpoint of a
constant rate, seed after seed; a fixed run needs no split to decide when to stop, so every
run can teach the model (`train`'s folds give the held-out figures instead); and its cost is
known before it starts. Small histories get more epochs, large ones at least `min_epochs`: an
update's worth depends on the batch, not on how many runs the history holds, but a larger one
has more detail to learn, so the budget grows with the log of its size.

Why the rise: Adam's first steps, before its moments mean anything, are the largest; on
noiseless histories, whose scales sit at their floor where the likelihood is steepest, they
knocked some fits into a poor model at a peak rate of 1e-2 (one of ten of
`bench/retrain_scaling.py`'s band programs scored 0.74). With the rise that rate trains
stably and ends sharper than 5e-3 without it did, at every size the benches run.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

CHUNK = 10     # epochs per jitted call at most (JAX), and between progress lines
FINAL = 0.02   # the learning rate at the last update, as a share of the peak
WARMUP = 0.1   # share of the updates over which the rate rises to its peak


def budget(steps: int, n: int) -> float:
    """Updates for `n` rows: `steps` up to a thousand rows, and `steps` more per tenfold."""
    return steps * (1.0 + math.log10(max(n, 1000) / 1000))


@dataclass(frozen=True)
class Schedule:
    batch: int
    steps_per_epoch: int
    epochs: int
    chunk: int

    @classmethod
    def of(cls, opts: Any, n: int, ndev: int = 1) -> Schedule:
        """For `n` rows over `ndev` devices (the batch is a multiple of it)."""
        batch = max(ndev, min(opts.batch, n) // ndev * ndev)
        steps = -(-n // batch)
        epochs = opts.epochs or max(opts.min_epochs, math.ceil(budget(opts.steps, n) / steps))
        return cls(batch, steps, epochs, max(1, min(CHUNK, epochs)))

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def info(self) -> dict[str, int]:
        """What the model file's metadata says of the run."""
        return {"epochs": self.epochs, "batch": self.batch, "steps_per_epoch": self.steps_per_epoch}

    def report(self, epoch: int, loss: float) -> None:
        """`router train`'s progress line on a terminal; the last epoch ends it."""
        print(f"\repoch {epoch}/{self.epochs} loss {loss:.4f}", file=sys.stderr, flush=True,
              end="\n" if epoch >= self.epochs else "")

    def lr_scale(self, step: int) -> float:
        return rate_share(step, self.total_steps)


def rate_share(step: Any, total: Any, minimum: Any = min) -> Any:
    """The learning rate's share of its peak at update `step` (from 0) of `total`; with
    `jnp.minimum`, the same inside a jitted JAX step."""
    rise = minimum((step + 1.0) / (WARMUP * total), 1.0)
    return rise * (1.0 - (1.0 - FINAL) * minimum(step / total, 1.0))
