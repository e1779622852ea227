"""Physiology metrics of a beat surrogate: what a cardiac modeller checks besides the point error.

For a ``beat`` problem (an N-state cell model's paced beat, ``physics.problems.BeatSetup``) the
validation split holds whole beats, one per cell (parameter set) on the stored time grid. The surrogate
is evaluated at exactly those times (the trace at the dataset's ``save_dt``, 1 ms for the built-in
problems) and both traces go through ``physics.ap_metrics.action_potential_metrics``; the figures are:

=========================================  ============================================================
``final_full_val_v_rmse``                  RMSE of the voltage output over every cell and time (units of V)
``final_full_val_v_rmse_max_cell``         the worst cell's RMSE
``final_full_val_apd90_err_pct``           mean over cells of ``|APD90_pred - APD90| / APD90`` in %
``final_full_val_apd90_max_err_pct``       the largest of those
``final_full_val_apd50_err_pct``           the same for APD50 (mean)
``final_full_val_max_dvdt_err_pct``        the same for the largest dV/dt (at the stored spacing: a 1 ms grid
                                           sees a fraction of the true upstroke velocity, on both sides)
``final_full_val_rest_err``                mean ``|V_rest_pred - V_rest|`` (units of V)
``final_full_val_ap_mismatch_cells``       cells where one trace has an action potential (a finite APD90 and
                                           at least half the targets' largest amplitude) and the other not;
                                           they are left out of the APD means and counted here
``final_full_val_other_rmse_pct``          problems with outputs besides V (``tp06_beat_ca``: Ca_i): each
                                           such output's RMSE as % of its range over the validation cells,
                                           the largest; absent when V is the only output
=========================================  ============================================================

The targets are the dataset's beats (the problem's solver, Rush-Larsen at its ``dt``), on the validation
cells, which are parameter sets drawn apart from the training cells. ``fhn_automl.bench verdict``
measures the same figures against the stiff reference (BDF) on fresh cells.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fhn_automl.physics.ap_metrics import action_potential_metrics

__all__ = ["PHYSIOLOGY_METRICS", "VOLTAGE_METRICS", "beat_traces", "physiology_metrics", "relative_rmse_pct", "trace_physiology"]

PREFIX = "final_full_val_"
#: the metric names (without the ``final_full_val_`` prefix), in report order
#: (the voltage's, every beat problem has them: ``trace_physiology``; then the other outputs')
VOLTAGE_METRICS = ("v_rmse", "v_rmse_max_cell", "apd90_err_pct", "apd90_max_err_pct", "apd50_err_pct",
                   "max_dvdt_err_pct", "rest_err", "ap_mismatch_cells")
PHYSIOLOGY_METRICS = (*VOLTAGE_METRICS, "other_rmse_pct")


def beat_traces(columns: dict[str, np.ndarray], inputs: tuple[str, ...], output: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t, x, V)`` of a split's whole beats: the shared time grid ``(n_t,)``, the raw network inputs
    ``(n_cells, n_t, n_in)`` and the target ``output`` ``(n_cells, n_t)``; every cell must be stored at the
    same times."""
    traj = np.asarray(columns["traj"])
    t = np.asarray(columns["t"], dtype=np.float64)
    order = np.lexsort((t, traj))
    ids, counts = np.unique(traj, return_counts=True)
    if len(ids) == 0 or not np.all(counts == counts[0]):
        raise ValueError("beat traces need every cell stored at the same times")
    n_cells, n_t = len(ids), int(counts[0])
    x = np.stack([np.asarray(columns[name], dtype=np.float32)[order] for name in inputs], axis=1)
    V = np.asarray(columns[output], dtype=np.float64)[order].reshape(n_cells, n_t)
    return t[order][:n_t], x.reshape(n_cells, n_t, len(inputs)), V


def trace_physiology(t: np.ndarray, predicted: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring (without prefix) of ``predicted`` vs ``target`` traces
    ``(n_cells, n_t)`` on the grid ``t``."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    squared = (predicted - target) ** 2
    cell_rmse = np.sqrt(squared.mean(axis=1))
    mine, theirs = action_potential_metrics(predicted, t), action_potential_metrics(target, t)
    # an action potential: a finite APD90 and an amplitude of at least half the targets' largest (a flat trace
    # with a ripple has a "duration" by the letter of the APD definition, but no action potential)
    scale = np.nanmax(theirs["amplitude"]) if np.isfinite(theirs["amplitude"]).any() else 0.0
    mine_ap, their_ap = (np.isfinite(m["apd90"]) & (np.nan_to_num(m["amplitude"]) >= 0.5 * scale)
                         for m in (mine, theirs))
    both, mismatch = mine_ap & their_ap, mine_ap != their_ap

    def relative(key: str) -> np.ndarray:
        ok = both & np.isfinite(mine[key]) & np.isfinite(theirs[key]) & (np.abs(theirs[key]) > 0)
        return 100.0 * np.abs(mine[key][ok] - theirs[key][ok]) / np.abs(theirs[key][ok])

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else math.nan

    apd90 = relative("apd90")
    return {"v_rmse": float(math.sqrt(squared.mean())), "v_rmse_max_cell": float(cell_rmse.max()),
            "apd90_err_pct": mean(apd90), "apd90_max_err_pct": float(apd90.max()) if apd90.size else math.nan,
            "apd50_err_pct": mean(relative("apd50")), "max_dvdt_err_pct": mean(relative("max_dvdt")),
            "rest_err": float(np.abs(mine["resting_potential"] - theirs["resting_potential"]).mean()),
            "ap_mismatch_cells": float(mismatch.sum())}


def physiology_metrics(model: Any, problem: Any, columns: dict[str, np.ndarray], device: Any = "cpu",
                       chunk: int = 65_536) -> dict[str, float]:
    """``final_full_val_<metric>`` of ``model`` (raw inputs -> raw outputs) on a beat problem's validation
    ``columns`` (``training_data.read_columns``); empty for problems that are not beats."""
    if getattr(problem, "beat", None) is None:
        return {}
    import torch

    output = problem.beat.voltage_output
    t, x, V = beat_traces(columns, problem.inputs, output)
    flat = torch.as_tensor(x.reshape(-1, x.shape[-1]), device=device)
    with torch.no_grad():
        predicted = torch.cat([model(flat[i:i + chunk]) for i in range(0, flat.shape[0], chunk)])
    predicted = predicted.double().cpu().numpy().reshape(*V.shape, len(problem.outputs))
    metrics = trace_physiology(t, predicted[..., problem.outputs.index(output)], V)
    others = [name for name in problem.outputs if name != output]
    if others:
        metrics["other_rmse_pct"] = max(
            relative_rmse_pct(predicted[..., problem.outputs.index(name)],
                              beat_traces(columns, problem.inputs, name)[2]) for name in others)
    return {PREFIX + key: value for key, value in metrics.items()}


def relative_rmse_pct(predicted: np.ndarray, target: np.ndarray) -> float:
    """RMSE of ``predicted`` vs ``target`` as % of the target's range (max - min); NaN for a flat target."""
    target = np.asarray(target, dtype=np.float64)
    span = float(target.max() - target.min()) if target.size else 0.0
    rmse = math.sqrt(float(((np.asarray(predicted, dtype=np.float64) - target) ** 2).mean()))
    return 100.0 * rmse / span if span > 0 else math.nan
