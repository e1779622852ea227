"""The Pareto front over validation error and inference cost.

Cost is the measured time per evaluated point (at the tuned batch size, on the target device); the
multiply-adds of one evaluation break ties between times that agree within the timing noise, and are
the whole cost where nothing could be timed. Both objectives are minimised.

Ties and duplicates, because a grid search produces many:

- a model is *dominated* when another is no worse in error and in cost and strictly better in one;
  only dominated models leave the front;
- two times within ``time_rtol`` of each other count as equal, so a 1 % timing jitter cannot make a
  model with twice the multiply-adds look "cheaper"; the multiply-adds then decide;
- so do two times whose measured spreads overlap (``time_range``: the fastest and slowest of the
  repeated, interleaved timings of each model, ``fhn_automl.post.timing.interleaved_timings``): a
  difference smaller than the noise of the measurement itself is not a difference. On a quiet GPU the
  spreads are narrow and time decides; on a loaded CPU they are wide and multiply-adds decide, so the
  same models give the same front however the load swings;
- models with identical (error, cost) are all non-dominated and all stay on the front; the second and
  later ones are marked ``duplicate_of`` the first (in input order), so the registry can skip them
  without losing the information that they exist.

The functions work on plain sequences, so the hand-made cases of the tests need no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """One model's objectives. ``time_per_point_s`` None means 'not timed'."""

    key: str
    mean_err: float
    macs: int
    time_per_point_s: float | None = None
    #: (fastest, slowest) of the repeated timings; None = no spread measured (only ``time_rtol`` ties)
    time_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ParetoResult:
    """Indices (into the input) of the front, sorted by error; the cost basis that was used."""

    front: tuple[int, ...]
    duplicate_of: dict[int, int]
    cost_basis: str  # "time" (ties -> macs) or "macs"

    def unique_front(self) -> tuple[int, ...]:
        """The front without the second and later copies of identical points."""
        return tuple(i for i in self.front if i not in self.duplicate_of)


def _times_usable(candidates: Sequence[Candidate]) -> bool:
    return bool(candidates) and all(
        c.time_per_point_s is not None and math.isfinite(c.time_per_point_s) and c.time_per_point_s > 0
        for c in candidates)


def _cost_compare(a: Candidate, b: Candidate, by_time: bool, time_rtol: float) -> int:
    """-1 if a is cheaper, 1 if b is cheaper, 0 if equally costly."""
    if by_time:
        ta, tb = a.time_per_point_s, b.time_per_point_s
        assert ta is not None and tb is not None
        if abs(ta - tb) > time_rtol * max(ta, tb) and not _spreads_overlap(a, b):
            return -1 if ta < tb else 1
    if a.macs != b.macs:
        return -1 if a.macs < b.macs else 1
    return 0


def _spreads_overlap(a: Candidate, b: Candidate) -> bool:
    """Whether the two models' timing spreads overlap (a difference inside the measurement noise)."""
    if a.time_range is None or b.time_range is None:
        return False
    return a.time_range[0] <= b.time_range[1] and b.time_range[0] <= a.time_range[1]


def _dominates(a: Candidate, b: Candidate, by_time: bool, time_rtol: float) -> bool:
    cost = _cost_compare(a, b, by_time, time_rtol)
    if a.mean_err > b.mean_err or cost > 0:
        return False
    return a.mean_err < b.mean_err or cost < 0


def pareto_front(candidates: Sequence[Candidate], *, time_rtol: float = 0.0) -> ParetoResult:
    """The non-dominated candidates (see the module docstring for ties and duplicates).

    Candidates with a non-finite error (diverged models that slipped through) never enter the front.
    Cost is time (ties within ``time_rtol`` -> multiply-adds) when every candidate was timed, else
    multiply-adds alone: mixing timed and untimed models would compare seconds with counts.
    O(n^2), fine for the hundreds of trials of a search.
    """
    if time_rtol < 0:
        raise ValueError(f"time_rtol must be >= 0, got {time_rtol}")
    finite = [i for i, c in enumerate(candidates) if math.isfinite(c.mean_err)]
    by_time = _times_usable([candidates[i] for i in finite])
    front = [i for i in finite
             if not any(_dominates(candidates[j], candidates[i], by_time, time_rtol) for j in finite if j != i)]
    duplicate_of: dict[int, int] = {}
    for position, i in enumerate(front):
        for j in front[:position]:
            if j in duplicate_of:
                continue
            same_cost = _cost_compare(candidates[i], candidates[j], by_time, time_rtol) == 0
            if same_cost and candidates[i].mean_err == candidates[j].mean_err:
                duplicate_of[i] = j
                break
    front.sort(key=lambda i: (candidates[i].mean_err, candidates[i].macs, i))
    return ParetoResult(front=tuple(front), duplicate_of=duplicate_of,
                        cost_basis="time" if by_time else "macs")
