"""Datasets as arrays for training: the physics layer's Parquet columns -> (inputs, targets) matrices.

The physics layer owns the files (``physics.datasets``); this module only picks the columns a
problem's network maps from and to, in ``problem.inputs`` / ``problem.outputs`` order, and shapes
the iterator rollout set into whole trajectories.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fhn_automl.physics.datasets import read_split
from fhn_automl.physics.problems import Problem


@dataclass(frozen=True)
class PointArrays:
    """Rows of raw inputs ``x`` (N, n_in) and raw targets ``y`` (N, n_out), float32."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, rows: np.ndarray) -> "PointArrays":
        return PointArrays(self.x[rows], self.y[rows])


@dataclass(frozen=True)
class RolloutArrays:
    """Whole trajectories for validating an iterator by rollout.

    ``x0`` (n_traj, n_in): the initial network input (state + parameters); ``y`` (n_traj, n_steps, n_out):
    the solver's state after 1..n_steps network steps of ``dt_net``.
    """

    x0: np.ndarray
    y: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.y.shape[1]


def read_columns(dataset_dir: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """The columns of one split (``train``, ``val``, ``rollout``, a high-error set name) or of a
    Parquet file given by path."""
    candidate = Path(split)
    if candidate.suffix == ".parquet":
        if not candidate.is_absolute() and dataset_dir is not None:
            candidate = Path(dataset_dir) / candidate if not candidate.exists() else candidate
        import pyarrow.parquet as pq

        table = pq.read_table(candidate)
        return {name: table.column(name).to_numpy() for name in table.column_names}

    return read_split(dataset_dir, split)


def point_arrays(columns: dict[str, np.ndarray], inputs: tuple[str, ...], outputs: tuple[str, ...],
                 *, source: str = "dataset") -> PointArrays:
    missing = [name for name in (*inputs, *outputs) if name not in columns]
    if missing:
        raise ValueError(f"{source} lacks columns {missing}; it has {sorted(columns)}")
    x = np.stack([np.asarray(columns[name], dtype=np.float32) for name in inputs], axis=1)
    y = np.stack([np.asarray(columns[name], dtype=np.float32) for name in outputs], axis=1)
    return PointArrays(x, y)


def load_points(problem: Problem, dataset_dir: str | os.PathLike | None, split: str) -> PointArrays:
    return point_arrays(read_columns(dataset_dir, split), problem.inputs, problem.outputs,
                        source=f"split {split!r} of {dataset_dir}")


def chained_window_points(columns: dict[str, np.ndarray], problem: Problem, window_length: float,
                          *, source: str = "dataset") -> PointArrays:
    """Training rows of a chained-window model (``window: chained:T``) from whole stored trajectories.

    Each trajectory is cut into windows [s, s + T] at s = 0, T, 2T, ... (complete windows only) and
    every window becomes a row set (t - s, U(s), W(s)[, k]) -> (U(t), W(t)): exact, because the
    cell model is autonomous (the state tau after x(s) is the state s + tau after x0). So the model
    learns its window from the very states it restarts from when it marches (``ChainedWindowSurrogate``),
    which leave the sampled box (``problems`` docstring), not only from the box's initial states.
    About as many rows as the trajectories have stored states.
    """
    missing = [name for name in ("traj", "t", "u", "w") if name not in columns]
    if missing:
        raise ValueError(f"{source} lacks columns {missing} for chained windows; it has {sorted(columns)}")
    traj = np.asarray(columns["traj"])
    t = np.asarray(columns["t"], dtype=np.float64)
    order = np.lexsort((t, traj))
    ids, counts = np.unique(traj, return_counts=True)
    if len(ids) == 0 or not np.all(counts == counts[0]):
        raise ValueError(f"{source}: chained windows need every trajectory stored at the same times")
    n_traj, n_saved = len(ids), int(counts[0])
    times = t[order][:n_saved]
    spacing = float(times[1] - times[0]) if n_saved > 1 else 0.0
    stride = int(round(window_length / spacing)) if spacing > 0 else 0
    if stride < 1 or not np.isclose(stride * spacing, window_length, atol=1e-4):
        raise ValueError(f"{source}: window length {window_length:g} is not a multiple of the stored "
                         f"spacing {spacing:g}")
    starts = np.arange(0, n_saved - stride, stride)
    if len(starts) == 0:
        raise ValueError(f"{source}: trajectories ({times[-1]:g} time units) are shorter than one window "
                         f"({window_length:g})")
    grid = {name: np.asarray(columns[name], dtype=np.float32)[order].reshape(n_traj, n_saved)
            for name in ("u", "w", *(("k",) if "k" in columns else ()))}
    offsets = np.arange(stride + 1)
    rows = starts[:, None] + offsets[None, :]            # (n_windows, stride + 1) stored-state indices
    tau = (times[rows] - times[starts][:, None]).astype(np.float32)
    shape = (n_traj, len(starts), stride + 1)
    values = {"t": np.broadcast_to(tau, shape),
              "u0": np.broadcast_to(grid["u"][:, starts][:, :, None], shape),
              "w0": np.broadcast_to(grid["w"][:, starts][:, :, None], shape),
              "u": grid["u"][:, rows], "w": grid["w"][:, rows]}
    if "k" in grid:
        values["k"] = np.broadcast_to(grid["k"][:, :1, None], shape)
    return point_arrays({name: values[name].reshape(-1) for name in (*problem.inputs, *problem.outputs)},
                        problem.inputs, problem.outputs, source=source)


def subsample(points: PointArrays, max_points: int | None, seed: int) -> PointArrays:
    """At most ``max_points`` rows, a fixed random subset (the seed is not the trial's: every trial
    of a search must validate on the same points)."""
    if max_points is None or len(points) <= max_points:
        return points
    rows = np.sort(np.random.default_rng(seed).choice(len(points), size=max_points, replace=False))
    return points.take(rows)


def rollout_arrays(columns: dict[str, np.ndarray], problem: Problem, max_trajectories: int | None = None,
                   seed: int = 0) -> RolloutArrays:
    """Group the rollout set (``traj, t, u0, w0[, k], u, w``) into trajectories sampled every dt_net."""
    if problem.dt_net is None or problem.rollout_t_end is None:
        raise ValueError(f"{problem.name} is not an iterator problem")
    traj = np.asarray(columns["traj"])
    t = np.asarray(columns["t"], dtype=np.float64)
    hops = np.round(t / problem.dt_net)
    n_steps = int(round(problem.rollout_t_end / problem.dt_net))
    keep = (np.abs(t - hops * problem.dt_net) < 1e-4) & (hops >= 1) & (hops <= n_steps)
    order = np.lexsort((hops[keep], traj[keep]))
    ids = traj[keep][order]
    unique_ids, counts = np.unique(ids, return_counts=True)
    if not np.all(counts == n_steps):
        raise ValueError(f"rollout set: every trajectory needs states at all {n_steps} multiples of "
                         f"dt_net = {problem.dt_net:g} up to {problem.rollout_t_end:g}")
    state_names = ("u", "w")
    y = np.stack([np.asarray(columns[name], dtype=np.float32)[keep][order] for name in state_names], axis=1)
    y = y.reshape(len(unique_ids), n_steps, len(state_names))
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    start_names = {"u": "u0", "w": "w0", "k": "k"}
    x0 = np.stack([np.asarray(columns[start_names[name]], dtype=np.float32)[keep][order][first]
                   for name in problem.inputs], axis=1)
    if max_trajectories is not None and len(unique_ids) > max_trajectories:
        rows = np.sort(np.random.default_rng(seed).choice(len(unique_ids), size=max_trajectories, replace=False))
        x0, y = x0[rows], y[rows]
    return RolloutArrays(x0=x0, y=y)
