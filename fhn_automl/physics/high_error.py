"""High-error-region sets (thesis 3.4.2, 'increased cloud point density'): extra solved points
around the places where surrogates err most, for an extra data term in the loss.

The thesis finds those places by training on the homogeneous set and taking the worst points (top
5 % for the iterator, mean error > 0.1 for problem C); that search belongs to the learning and post
layers, which hand the centres to :func:`build_high_error_set`. For problem B_S the region is known
in advance -- initial states near the unstable equilibrium U0 = alpha -- and
:func:`build_unstable_equilibrium_set` builds it without a trained model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fhn_automl._atomic import write_atomically
from fhn_automl.physics.datasets import DatasetError, prepare_output_dir, write_pairs, write_trajectories
from fhn_automl.physics.euler import resolve_backend
from fhn_automl.physics.problems import Problem
from fhn_automl.physics.sampling import latin_hypercube

#: high-error sets number their trajectories from here, so they never collide with a dataset's
#: ``traj`` values when a trainer concatenates the two
HIGH_ERROR_TRAJ_OFFSET = 1_000_000_000


def build_high_error_set(problem: Problem, centres, out_path: str | os.PathLike, *,
                         radius: float | Mapping[str, float], n_per_centre: int, seed: int,
                         device: str = "auto") -> Path:
    """Sample ``n_per_centre`` points in a box around each centre, solve them, write one Parquet file.

    ``centres``: shape ``(m, d)`` with columns in the order of ``problem.initial_state_ranges()``
    (``u0, w0[, k]`` for trajectory problems, ``u, w[, k]`` for iterators), or a mapping from those
    names to ``m`` values. ``radius``: the box's half-width as a fraction of each quantity's range
    (one number, or one per name), so 0.05 means +-0.05 in U0 and +-0.009 in W0. Boxes are clipped to
    the domain (iterators: to the input ranges; points are drawn inside the clipped box, not piled
    on its edge). The file has the
    columns of the problem's ``train.parquet``; ``traj`` starts at ``HIGH_ERROR_TRAJ_OFFSET``.
    """
    if problem.sampling == "fixed":
        raise DatasetError(f"{problem.name} has a single fixed initial state: no region to sample around")
    ranges = problem.initial_state_ranges()
    centres = _centre_matrix(centres, tuple(ranges))
    half_widths = _half_widths(radius, ranges)
    # an iterator's centres are pair states, which include states the dynamics visit outside the
    # domain: clip its boxes to the input ranges that contain them; initial states stay in the domain
    clip = {name: problem.ranges[name] for name in ranges} if problem.kind == "iterator" else ranges
    if int(n_per_centre) != n_per_centre or n_per_centre < 1:
        raise DatasetError(f"n_per_centre must be a positive integer, got {n_per_centre!r}")
    backend = resolve_backend(device)
    out_path = Path(out_path)
    prepare_output_dir(out_path.parent)

    streams = np.random.SeedSequence(seed).spawn(len(centres))
    samples: dict[str, list[np.ndarray]] = {name: [] for name in ranges}
    for centre, stream in zip(centres, streams):
        box = {}
        for column, (name, (low, high)) in enumerate(clip.items()):
            box[name] = (max(low, centre[column] - half_widths[name]), min(high, centre[column] + half_widths[name]))
        for name, values in latin_hypercube(box, int(n_per_centre), stream).items():
            samples[name].append(values)
    states = {name: np.concatenate(parts) for name, parts in samples.items()}

    if problem.kind == "iterator":
        write = lambda path: write_pairs(problem, path, states, HIGH_ERROR_TRAJ_OFFSET, backend)  # noqa: E731
    else:
        write = lambda path: write_trajectories(problem, path, states, HIGH_ERROR_TRAJ_OFFSET, backend)  # noqa: E731
    write_atomically(out_path, write)
    return out_path.resolve()


def unstable_equilibrium_centres(problem: Problem, n_centres: int = 10) -> np.ndarray:
    """Centres along U0 = the model's excitation threshold (alpha = 0.4 for the FHN variant), spread
    evenly over the other sampled quantities (W0, and K where the problem has it): shape (m, d)."""
    ranges = problem.initial_state_ranges()
    if int(n_centres) != n_centres or n_centres < 1:
        raise DatasetError(f"n_centres must be a positive integer, got {n_centres!r}")
    first = next(iter(ranges))  # u0 (trajectory problems) or u (iterators)
    others = [name for name in ranges if name != first]
    per_axis = max(1, round(n_centres ** (1.0 / max(1, len(others)))))
    axes = [low + (np.arange(per_axis) + 0.5) / per_axis * (high - low)
            for low, high in (ranges[name] for name in others)]
    grid = np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=1) if axes else np.empty((1, 0))
    threshold = np.full((len(grid), 1), problem.model.excitation_threshold)
    return np.concatenate([threshold, grid], axis=1)


def build_unstable_equilibrium_set(problem: Problem, out_path: str | os.PathLike, *, n_centres: int = 10,
                                   n_per_centre: int = 100, u_radius: float = 0.05, seed: int = 0,
                                   device: str = "auto") -> Path:
    """The thesis' B_S high-error region: initial states with U0 within ``u_radius`` (fraction of the
    U0 range; 0.05 -> U0 in [0.35, 0.45]) of the threshold, covering the whole W0 (and K) range with
    boxes that tile it."""
    centres = unstable_equilibrium_centres(problem, n_centres)
    names = tuple(problem.initial_state_ranges())
    per_axis = max(1, round(len(centres) ** (1.0 / max(1, len(names) - 1))))
    radius = {name: (u_radius if index == 0 else 0.5 / per_axis) for index, name in enumerate(names)}
    return build_high_error_set(problem, centres, out_path, radius=radius, n_per_centre=n_per_centre,
                                seed=seed, device=device)


def _centre_matrix(centres, names: tuple[str, ...]) -> np.ndarray:
    if isinstance(centres, Mapping):
        missing = [name for name in names if name not in centres]
        if missing:
            raise DatasetError(f"centres lack {missing}; give columns {list(names)}")
        centres = np.stack([np.asarray(centres[name], dtype=np.float64).reshape(-1) for name in names], axis=1)
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim == 1:
        centres = centres.reshape(1, -1)
    if centres.ndim != 2 or centres.shape[1] != len(names) or len(centres) == 0:
        raise DatasetError(f"centres must have shape (m, {len(names)}) with columns {list(names)}, "
                           f"got {centres.shape}")
    return centres


def _half_widths(radius: float | Mapping[str, float], ranges: dict[str, tuple[float, float]]) -> dict[str, float]:
    fractions = dict(radius) if isinstance(radius, Mapping) else {name: radius for name in ranges}
    unknown = sorted(set(fractions) - set(ranges))
    if unknown or any(name not in fractions for name in ranges):
        raise DatasetError(f"radius must cover exactly {list(ranges)}, got {sorted(fractions)}")
    if any(not (value > 0) for value in fractions.values()):
        raise DatasetError(f"radius must be positive, got {fractions}")
    return {name: fractions[name] * (high - low) for name, (low, high) in ranges.items()}
