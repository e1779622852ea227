"""The two error figures of a run (learning.validation): best on the validation subset during
training, and the thesis' figure, the model at the end of training on the whole validation set
(every rollout for iterators), which ranks, registers and is the saved model."""

import numpy as np
import pytest
import torch

from fhn_automl.learning import load_model, train
from fhn_automl.learning.training_data import load_points, read_columns, rollout_arrays
from fhn_automl.learning.validation import REPORTED_ERROR_METRIC, point_errors, rollout_errors
from fhn_automl.physics.problems import get_problem
from tests.learning.conftest import tiny_config


def test_final_full_error_covers_the_whole_set_and_describes_the_saved_model(b_s_data, tmp_path):
    reports = []
    result = train(tiny_config("problem_b_s", b_s_data, tmp_path, val_max_points=300),
                   lambda metrics, folder: reports.append(metrics))
    val = load_points(get_problem("problem_b_s"), b_s_data, "val")
    assert len(val) > 300  # the subset is a real subset
    assert REPORTED_ERROR_METRIC == "final_full_val_mean_err" and result["reported_error"] == REPORTED_ERROR_METRIC
    assert result["final_full_val_points"] == len(val)
    # only the last validation (after the last step) carries the whole-set figure
    assert REPORTED_ERROR_METRIC in reports[-1] and REPORTED_ERROR_METRIC not in reports[0]
    assert result["best_subset_val_mean_err"] == result["best_val_mean_err"] == min(m["val_mean_err"] for m in reports)
    # the saved model is the one at training end, and the figure is its error on every point
    errors = point_errors(load_model(result["model_dir"]), torch.as_tensor(val.x), torch.as_tensor(val.y))
    assert result["model_selection"] == "final"
    assert result[REPORTED_ERROR_METRIC] == pytest.approx(float(errors.double().mean()), rel=1e-5)
    assert result["final_full_val_max_err"] == pytest.approx(float(errors.max()), rel=1e-6)


def test_iterator_final_figure_rolls_out_every_trajectory(iter_data, tmp_path):
    problem = get_problem("problem_b_c_iter")
    rollout = rollout_arrays(read_columns(iter_data, "rollout"), problem)
    assert len(rollout.x0) > 5
    result = train(tiny_config("problem_b_c_iter", iter_data, tmp_path, kind="iter", rollout_max_trajectories=5))
    assert result["final_full_val_rollouts"] == len(rollout.x0)
    along = rollout_errors(load_model(result["model_dir"]), torch.as_tensor(rollout.x0), torch.as_tensor(rollout.y))
    assert result["final_full_val_mean_err"] == result["final_full_val_rollout_mean_err"]
    assert result["final_full_val_mean_err"] == pytest.approx(float(along.mean()), rel=1e-5)
    assert np.isfinite(result["final_full_val_step_mean_err"])


def test_a_stop_test_ends_the_run_as_finished_with_its_final_figures(b_s_data, tmp_path):
    asked = []
    result = train(tiny_config("problem_b_s", b_s_data, tmp_path, steps=400),
                   stop=lambda metrics: asked.append(metrics["step"]) or metrics["step"] >= 200)
    assert asked == [100, 200]  # asked after each validation, never after the last
    assert result["status"] == "finished" and result["step"] == result["stopped_at_step"] == 200
    assert result["model_selection"] == "final" and np.isfinite(result["final_full_val_mean_err"])
