"""Was the model right about a run: one answer for retraining, drift, accounting and reports.

A prediction is read as "over" when its p_over reaches the policy's `route.p_over`, the same
cut the threshold rule routes by, so a model is judged by the calls it would make; a run was
over when its measured reference cost exceeded its threshold. A run recorded without a
threshold takes the one its command line gets from the policy. Stdlib only: the daemon's drift
check uses it.
"""

from __future__ import annotations

from typing import Any

DEFAULT_CUT = 0.5   # without a policy (a bare `router train --threshold`): the policy's default


def cut(policy: Any | None) -> float:
    """The p_over at and above which a prediction counts as a call of "over"."""
    return float(policy.route["p_over"]) if policy is not None else DEFAULT_CUT


def called_over(p_over: float, p_cut: float) -> bool:
    return p_over >= p_cut


def was_over(cost: float, threshold: float) -> bool:
    return cost > threshold


def right(p_over: float, cost: float, threshold: float, p_cut: float) -> bool:
    """Whether the call the model made matches what the run measured."""
    return called_over(p_over, p_cut) == was_over(cost, threshold)


def run_threshold(run: dict[str, Any], policy: Any) -> float:
    """The threshold a recorded run was judged against, else its command line's in the policy."""
    return run.get("threshold") or policy.threshold_for(run["argv"])
