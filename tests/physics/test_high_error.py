"""High-error-region sets: points in the clipped boxes, the columns of train.parquet, bad centres rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fhn_automl.physics.datasets import DatasetError, read_split
from fhn_automl.physics.high_error import (
    HIGH_ERROR_TRAJ_OFFSET, build_high_error_set, build_unstable_equilibrium_set, unstable_equilibrium_centres)
from fhn_automl.physics.problems import get_problem

B_S = get_problem("problem_b_s")


def test_points_lie_in_clipped_boxes_with_train_columns(tmp_path: Path) -> None:
    centres = np.array([[0.4, 0.09], [0.99, 0.0]])  # the second box sticks out of the U0 and W0 ranges
    path = build_high_error_set(B_S, centres, tmp_path / "he.parquet", radius=0.05, n_per_centre=4,
                                seed=0, device="cpu")
    columns = read_split(tmp_path, "he")
    assert list(columns) == ["traj", "t", "u0", "w0", "u", "w"] and path == (tmp_path / "he.parquet").resolve()
    starts = np.unique(np.stack([columns["traj"], columns["u0"], columns["w0"]], axis=1), axis=0)
    assert len(starts) == 8 and starts[:, 0].min() == HIGH_ERROR_TRAJ_OFFSET
    first, second = starts[:4], starts[4:]
    assert np.all(np.abs(first[:, 1] - 0.4) <= 0.05 + 1e-6) and np.all(np.abs(first[:, 2] - 0.09) <= 0.009 + 1e-6)
    assert np.all((second[:, 1] >= 0.94 - 1e-6) & (second[:, 1] <= 1.0)) and np.all(second[:, 2] <= 0.009 + 1e-6)


def test_iterator_set_has_pair_columns(tmp_path: Path) -> None:
    build_high_error_set(get_problem("problem_b_c_iter"), {"u": [0.4], "w": [0.1]}, tmp_path / "it.parquet",
                         radius={"u": 0.1, "w": 0.1}, n_per_centre=5, seed=1, device="cpu")
    columns = read_split(tmp_path, "it")
    assert list(columns) == ["traj", "u", "w", "u_next", "w_next"] and len(columns["u"]) == 5


def test_unstable_equilibrium_default_region(tmp_path: Path) -> None:
    centres = unstable_equilibrium_centres(B_S, 4)
    np.testing.assert_allclose(centres[:, 0], 0.4)
    assert centres.shape == (4, 2) and np.all((0 < centres[:, 1]) & (centres[:, 1] < 0.18))
    build_unstable_equilibrium_set(B_S, tmp_path / "ue.parquet", n_centres=4, n_per_centre=3,
                                   device="cpu")
    columns = read_split(tmp_path, "ue")
    assert 0.35 - 1e-6 <= columns["u0"].min() and columns["u0"].max() <= 0.45 + 1e-6
    assert len(np.unique(columns["traj"])) == 12
    assert unstable_equilibrium_centres(get_problem("problem_c"), 9).shape == (9, 3)


def test_bad_centres_and_radius_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="shape"):
        build_high_error_set(B_S, np.zeros((2, 3)), tmp_path / "x.parquet", radius=0.1, n_per_centre=2,
                             seed=0)
    with pytest.raises(DatasetError, match="radius"):
        build_high_error_set(B_S, [[0.4, 0.1]], tmp_path / "x.parquet", radius=-1, n_per_centre=2, seed=0)
    with pytest.raises(DatasetError, match="fixed"):
        build_high_error_set(get_problem("problem_a"), [[0.5]], tmp_path / "x.parquet", radius=0.1, n_per_centre=2, seed=0)
    assert not (tmp_path / "x.parquet").exists()
