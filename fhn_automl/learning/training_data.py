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
    from fhn_automl.physics.datasets import read_split

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


def restrict_time(points: PointArrays, t_index: int, t_low: float, t_high: float) -> PointArrays:
    """Rows whose t lies in [t_low, t_high] (a chained model trains on its short window only)."""
    t = points.x[:, t_index]
    return points.take(np.flatnonzero((t >= t_low - 1e-6) & (t <= t_high + 1e-6)))


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
