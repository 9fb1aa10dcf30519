"""Is the model still right? Recent accuracy per template, from each finished job's measured
cost against what was predicted. A template under the policy's bound asks for a retrain."""

from __future__ import annotations

from collections import deque

from router.learn import verdict


class Drift:
    def __init__(self, window: int = 50, bound: float = 0.8):
        self.window = window
        self.bound = bound
        self.recent: dict[str, deque[bool]] = {}

    def record(self, template: str, p_over: float | None, cost: float | None,
               threshold: float | None, p_cut: float = verdict.DEFAULT_CUT) -> bool | None:
        """Whether the model was right about this job; None when it made no prediction."""
        if p_over is None or cost is None or threshold is None:
            return None
        right = verdict.right(p_over, cost, threshold, p_cut)
        self.recent.setdefault(template, deque(maxlen=self.window)).append(right)
        return right

    def accuracy(self) -> dict[str, float]:
        return {t: sum(d) / len(d) for t, d in self.recent.items() if d}

    def drifting(self) -> list[str]:
        """Templates with at least half a window of jobs and accuracy under the bound."""
        return [t for t, d in self.recent.items()
                if len(d) >= max(1, self.window // 2) and sum(d) / len(d) < self.bound]
