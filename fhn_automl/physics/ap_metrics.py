"""Physiology metrics of action potentials, vectorised over cells: what a cardiac modeller reads off a beat.

:func:`action_potential_metrics` takes voltage traces ``V`` of shape ``(n_cells, n_times)`` on a shared
time grid ``t`` (one beat each, starting at rest before the stimulus) and returns one array per metric:

- ``resting_potential``: ``V`` at the beat's first time (the diastolic potential of a paced beat);
- ``peak``: the maximum of ``V``; ``amplitude`` = peak - resting potential;
- ``max_dvdt``: the largest forward difference ``dV/dt`` (depends on the sampling: sample at the solver's
  step to compare with published upstroke velocities);
- ``apd90``, ``apd50``, ``apd40``: the time from the upward to the first downward crossing of the level
  ``peak - x % * amplitude``, both crossings linearly interpolated between samples: the definition of
  ``ap_features.apd`` (``use_spline=False``, ``v_r`` = our resting potential), against which the tests
  check this one;
- ``triangulation`` = APD90 - APD40.

A cell with no action potential (no down-crossing, e.g. a failed stimulus) gets NaN durations, not an
error: a dataset of many cells keeps its shape and the caller counts the NaNs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRIC_NAMES", "action_potential_metrics", "action_potential_duration"]

METRIC_NAMES = ("resting_potential", "peak", "amplitude", "max_dvdt", "apd90", "apd50", "apd40", "triangulation")


def action_potential_duration(V: np.ndarray, t: np.ndarray, percent: float, *, rest: np.ndarray | None = None,
                              ) -> np.ndarray:
    """APD at ``percent`` repolarisation for each row of ``V`` (``(n_cells, n_times)``); NaN where undefined."""
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    if V.shape[1] != t.size:
        raise ValueError(f"V has {V.shape[1]} times per cell, t has {t.size}")
    if not 0 < percent < 100:
        raise ValueError(f"percent must be in (0, 100), got {percent}")
    rest = V[:, 0] if rest is None else np.asarray(rest, dtype=np.float64)
    peak_index = np.argmax(V, axis=1)
    peak = V[np.arange(V.shape[0]), peak_index]
    level = (peak - percent / 100.0 * (peak - rest))[:, None]
    above = V >= level
    columns = np.arange(t.size)[None, :]
    # the upward crossing: the last sample below the level before the peak, and the one after it
    below_before_peak = ~above & (columns < peak_index[:, None])
    up = np.where(below_before_peak.any(axis=1), t.size - 1 - np.argmax(below_before_peak[:, ::-1], axis=1), -1)
    # the downward crossing: the first sample below the level after the peak
    below_after_peak = ~above & (columns > peak_index[:, None])
    down = np.where(below_after_peak.any(axis=1), np.argmax(below_after_peak, axis=1), -1)
    valid = (up >= 0) & (down > 0)
    rows = np.arange(V.shape[0])
    up_, down_ = np.clip(up, 0, t.size - 2), np.clip(down, 1, t.size - 1)
    t_up = _crossing(t[up_], t[up_ + 1], V[rows, up_], V[rows, up_ + 1], level[:, 0])
    t_down = _crossing(t[down_ - 1], t[down_], V[rows, down_ - 1], V[rows, down_], level[:, 0])
    return np.where(valid, t_down - t_up, np.nan)


def _crossing(t0: np.ndarray, t1: np.ndarray, v0: np.ndarray, v1: np.ndarray, level: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(v1 != v0, (level - v0) / (v1 - v0), 0.0)
    return t0 + fraction * (t1 - t0)


def action_potential_metrics(V: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of :data:`METRIC_NAMES` for each row of ``V``; see the module docstring."""
    V = np.atleast_2d(np.asarray(V, dtype=np.float64))
    t = np.asarray(t, dtype=np.float64)
    rest = V[:, 0]
    peak = V.max(axis=1)
    metrics = {
        "resting_potential": rest,
        "peak": peak,
        "amplitude": peak - rest,
        "max_dvdt": (np.diff(V, axis=1) / np.diff(t)[None, :]).max(axis=1) if t.size > 1 else np.full(len(V), np.nan),
    }
    for percent in (90, 50, 40):
        metrics[f"apd{percent}"] = action_potential_duration(V, t, percent, rest=rest)
    metrics["triangulation"] = metrics["apd90"] - metrics["apd40"]
    return metrics
