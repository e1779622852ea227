"""The detection step of increased cloud-point density (thesis 4.2.3, 4.3): where does a trained
model err most, and a solved set around those places.

Train on the homogeneous set, rank the points of a split by the point error |dU| + |dW|, take the
top ``fraction`` (5 % in the thesis), reduce them to the distinct sampled quantities they come from
(initial state ``u0, w0[, k]`` of a trajectory; state ``u, w[, k]`` of an iterator pair), and let the
physics layer sample and solve around those centres (``physics.high_error.build_high_error_set``).
The resulting Parquet file feeds a data ``extra_region`` term (``data:/path/to/set.parquet``).

The training split is the default source so the validation set stays unseen by training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fhn_automl.learning import training_data
from fhn_automl.learning.validation import point_errors
from fhn_automl.physics.problems import Problem, get_problem


def high_error_centres(model: nn.Module, problem: Problem, points: training_data.PointArrays, *,
                       fraction: float = 0.05, max_centres: int = 200) -> np.ndarray:
    """Distinct sampled quantities (columns ``problem.initial_state_ranges()``) of the worst points,
    worst first, at most ``max_centres`` rows."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    with torch.no_grad():
        errors = point_errors(model, torch.as_tensor(points.x), torch.as_tensor(points.y)).numpy()
    n_worst = max(1, int(round(fraction * len(errors))))
    worst = np.argsort(errors)[::-1][:n_worst]
    names = list(problem.initial_state_ranges())
    columns = [problem.inputs.index(name) for name in names]
    candidates = points.x[worst][:, columns]
    _, first_seen = np.unique(candidates, axis=0, return_index=True)
    return candidates[np.sort(first_seen)][:max_centres]  # argsort order kept: worst first


def detect_high_error_set(model: nn.Module, problem: str | Problem, dataset_dir: str | os.PathLike,
                          out_path: str | os.PathLike, *, split: str = "train", fraction: float = 0.05,
                          radius: float = 0.02, n_per_centre: int = 10, max_centres: int = 200, seed: int = 0,
                          device: str = "auto") -> Path:
    """Find the centres with ``model`` on ``split`` and write the solved set around them to ``out_path``.

    ``radius``: half-width of each sampling box as a fraction of each quantity's range.
    """
    from fhn_automl.physics.high_error import build_high_error_set

    problem = get_problem(problem) if isinstance(problem, str) else problem
    points = training_data.load_points(problem, dataset_dir, split)
    centres = high_error_centres(model.cpu().eval(), problem, points, fraction=fraction, max_centres=max_centres)
    return build_high_error_set(problem, centres, out_path, radius=radius, n_per_centre=n_per_centre, seed=seed,
                                device=device)
