"""The detection rule picks what it says, on synthetic error fields: a 'model' that predicts zero has
the point error |u| + |w| of the targets, so the targets are the error field."""

import numpy as np
import pytest
import torch
from torch import nn

from fhn_automl.learning.high_error_region import (
    DetectionRule, HighErrorDetectionError, PlateauStop, THESIS_RULES, high_error_centres, parse_rule, rule_for)
from fhn_automl.physics.problems import get_problem


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 2)


def trajectory_columns(mean_errors: list[float], n_points: int = 11) -> dict[str, np.ndarray]:
    """Problem C rows: trajectory i has initial state (u0, w0, k) = (i / 1000, 0.1, 0.5) and point
    errors alternating mean_errors[i] +- 0.01 (so its mean is mean_errors[i])."""
    n = len(mean_errors)
    traj = np.repeat(np.arange(n), n_points)
    wiggle = np.tile(np.where(np.arange(n_points) % 2 == 0, 0.01, -0.01), n)
    wiggle[np.repeat(np.arange(n), n_points) * n_points + n_points - 1] = 0.0  # odd count: last one neutral
    error = np.repeat(np.asarray(mean_errors), n_points) + wiggle
    return {"traj": traj, "t": np.tile(np.linspace(0, 50, n_points), n).astype(np.float32),
            "u0": np.repeat(np.arange(n) / 1000, n_points).astype(np.float32),
            "w0": np.full(n * n_points, 0.1, np.float32), "k": np.full(n * n_points, 0.5, np.float32),
            "u": error.astype(np.float32), "w": np.zeros(n * n_points, np.float32)}


def test_thesis_rules_per_problem():
    assert THESIS_RULES["problem_c"] == DetectionRule("trajectory_mean_above", 0.1)  # thesis 4.3
    assert THESIS_RULES["problem_b_c_iter"] == DetectionRule("top_fraction", 0.05)  # thesis 4.2.3
    assert rule_for(get_problem("problem_c")).max_centres is None
    assert rule_for(get_problem("problem_b_c_iter")).max_centres is None
    assert parse_rule("trajectory_mean_above:0.1,max_centres:7") == DetectionRule("trajectory_mean_above", 0.1, 7)
    with pytest.raises(ValueError, match="bad detection rule"):
        parse_rule("top_fraction:2")


def test_trajectory_mean_rule_takes_every_trajectory_above_the_threshold_worst_first_uncapped():
    errors = [0.05, 0.3, 0.09, 0.12] + [0.2] * 296  # 298 above 0.1: more than the old 200 cap
    centres, report = high_error_centres(Zero(), get_problem("problem_c"), trajectory_columns(errors),
                                         DetectionRule("trajectory_mean_above", 0.1))
    assert report["centres"] == report["selected"] == 298
    assert centres.shape == (298, 3)
    np.testing.assert_allclose(centres[0], [0.001, 0.1, 0.5], rtol=1e-6)  # the worst trajectory (0.3) first
    chosen = set(np.round(centres[:, 0] * 1000).astype(int))
    assert chosen == {1, 3, *range(4, 300)}  # 0.05 and 0.09 are not above 0.1
    assert report["least_selected_error"] == pytest.approx(0.12, abs=1e-6)
    # a stated cap keeps the worst
    capped, _ = high_error_centres(Zero(), get_problem("problem_c"), trajectory_columns(errors),
                                   DetectionRule("trajectory_mean_above", 0.1, max_centres=2))
    np.testing.assert_allclose(capped[:, 0], [0.001, 0.004], rtol=1e-5)


def test_trajectory_mean_rule_with_nothing_above_says_so():
    with pytest.raises(HighErrorDetectionError, match="no trajectory has a mean error above 0.1"):
        high_error_centres(Zero(), get_problem("problem_c"), trajectory_columns([0.01, 0.05]),
                           DetectionRule("trajectory_mean_above", 0.1))


def test_top_fraction_rule_takes_the_worst_points_share():
    problem = get_problem("problem_b_c_iter")
    rng = np.random.default_rng(0)
    n = 2_000
    error = rng.permutation(np.arange(n) / n)  # distinct errors 0 .. 0.9995
    columns = {"traj": np.arange(n), "u": rng.uniform(0, 1, n).astype(np.float32),
               "w": rng.uniform(0, 0.18, n).astype(np.float32),
               "u_next": error.astype(np.float32), "w_next": np.zeros(n, np.float32)}
    centres, report = high_error_centres(Zero(), problem, columns, DetectionRule("top_fraction", 0.05))
    assert report["centres"] == 100
    worst = np.argsort(error)[::-1][:100]
    np.testing.assert_array_equal(centres[:, 0], columns["u"][worst].astype(np.float64))  # worst first
    # on a trajectory problem the worst points reduce to their trajectories' initial states
    traj_cols = trajectory_columns([0.01] * 50 + [0.5] * 2)
    share = 22 / (52 * 11)  # exactly the 22 points of the two bad trajectories
    centres, report = high_error_centres(Zero(), get_problem("problem_c"), traj_cols,
                                         DetectionRule("top_fraction", share))
    assert report["selected"] == 22 and sorted(np.round(centres[:, 0] * 1000)) == [50, 51]
    _, report = high_error_centres(Zero(), get_problem("problem_c"), traj_cols, DetectionRule("top_fraction", 0.04))
    assert report["selected"] == 23 and report["centres"] == 3  # one point more reaches a third trajectory


def test_plateau_stop_waits_for_patience_without_improvement():
    stop = PlateauStop(patience=2, min_rel_improvement=0.1)
    assert [stop({"val_mean_err": e}) for e in (1.0, 0.5, 0.48, 0.47, 0.2)] == [False, False, False, True, False]


def test_physics_limited_to_a_detected_set_trains_on_its_points(c_data, tmp_path):
    """Problem C's variant of 4.3: the residual at the high-error set's points (``physics:SET``)."""
    from fhn_automl.learning import train
    from fhn_automl.learning.config import parse_extra_region
    from fhn_automl.physics.high_error import build_high_error_set
    from tests.learning.conftest import tiny_config

    region = parse_extra_region("physics:high_error")
    assert region.kind == "physics" and region.source == "high_error" and region.describe() == "physics:high_error"
    path = build_high_error_set(get_problem("problem_c"), [[0.4, 0.05, 0.5], [0.6, 0.1, 0.2]], tmp_path / "he.parquet",
                                radius=0.02, n_per_centre=2, seed=0, device="cpu")
    result = train(tiny_config("problem_c", c_data, tmp_path / "run", kind="pinn", extra_region=f"physics:{path}"))
    assert result["status"] == "finished"
    assert {"loss_physics", "loss_ic", "loss_extra_physics"} <= set(result)
    assert np.isfinite(result["loss_extra_physics"]) and result["loss_extra_physics"] > 0
