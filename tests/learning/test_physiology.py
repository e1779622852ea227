"""Physiology metrics of beat surrogates (issue 22): planted traces with known answers, and the trainer
reporting them for a beat problem (and refusing what a voltage-only output cannot train)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fhn_automl.learning.physiology import (PHYSIOLOGY_METRICS, VOLTAGE_METRICS, beat_traces, relative_rmse_pct,
                                            trace_physiology)


def _beats(t: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Square-ish action potentials: rest -80, upstroke at t = 10, plateau 20 mV, repolarised at 10 + d."""
    V = np.full((durations.size, t.size), -80.0)
    for row, d in enumerate(durations):
        V[row, (t >= 10) & (t < 10 + d)] = 20.0
    return V


def test_identical_traces_have_no_error_and_a_constant_shift_is_pure_voltage_error():
    t = np.arange(0.0, 500.0, 0.5)
    V = _beats(t, np.array([200.0, 300.0]))
    zero = trace_physiology(t, V, V)
    assert zero["v_rmse"] == 0 and zero["apd90_err_pct"] == 0 and zero["rest_err"] == 0
    shifted = trace_physiology(t, V + 2.0, V)
    assert shifted["v_rmse"] == pytest.approx(2.0)
    assert shifted["rest_err"] == pytest.approx(2.0)
    assert shifted["apd90_err_pct"] == pytest.approx(0.0, abs=1e-9)  # durations are relative to rest and peak
    assert set(shifted) == set(VOLTAGE_METRICS)


def test_a_longer_action_potential_reads_as_its_relative_apd_error():
    t = np.arange(0.0, 500.0, 0.5)
    target = _beats(t, np.array([200.0, 300.0]))
    predicted = _beats(t, np.array([210.0, 300.0]))  # +5 % on the first cell, exact on the second
    figures = trace_physiology(t, predicted, target)
    assert figures["apd90_err_pct"] == pytest.approx(2.5, abs=0.3)
    assert figures["apd90_max_err_pct"] == pytest.approx(5.0, abs=0.5)
    assert figures["ap_mismatch_cells"] == 0


def test_a_trace_without_action_potential_is_counted_not_averaged():
    t = np.arange(0.0, 500.0, 0.5)
    target = _beats(t, np.array([200.0, 300.0]))
    predicted = target.copy()
    predicted[1] = -80.0 + 0.01 * np.sin(t)  # no upstroke at all
    figures = trace_physiology(t, predicted, target)
    assert figures["ap_mismatch_cells"] == 1
    assert figures["apd90_err_pct"] == pytest.approx(0.0, abs=1e-9)  # the other cell alone


def test_beat_traces_group_cells_on_one_grid_whatever_the_row_order():
    columns = {"traj": np.array([1, 0, 1, 0]), "t": np.array([1.0, 0.0, 0.0, 1.0]),
               "s": np.array([2.0, 1.0, 2.0, 1.0]), "V": np.array([11.0, 0.0, 10.0, 1.0])}
    t, x, V = beat_traces(columns, ("t", "s"), "V")
    np.testing.assert_array_equal(t, [0.0, 1.0])
    np.testing.assert_array_equal(V, [[0.0, 1.0], [10.0, 11.0]])
    np.testing.assert_array_equal(x[1], [[0.0, 2.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="same times"):
        beat_traces({**columns, "traj": np.array([1, 0, 0, 0])}, ("t",), "V")


@pytest.fixture(scope="module")
def ms_dataset(tmp_path_factory):
    from fhn_automl.physics.cell_datasets import build_beat_dataset
    from fhn_automl.physics.problems import get_problem

    problem = get_problem("ms_beat")
    return build_beat_dataset(replace(problem, beat=replace(problem.beat, n_prepace=2)),
                              tmp_path_factory.mktemp("ms") / "data", n_cells=5, seed=0)


def test_training_a_beat_problem_reports_the_physiology_metrics(tmp_path, ms_dataset):
    from fhn_automl.learning.trainer import train

    # the dataset was built with 2 pacing beats, so its manifest names the problem, and data_dir takes it
    manifest = json.loads((ms_dataset / "manifest.json").read_text())
    assert manifest["problem"] == "ms_beat"
    result = train({"problem": "ms_beat", "layers": "tanh-16,tanh-16", "steps": 40, "val_every": 20,
                    "data_dir": str(ms_dataset), "out_dir": str(tmp_path / "run"), "threads": 1})
    assert result["status"] == "finished"
    for name in VOLTAGE_METRICS:
        assert f"final_full_val_{name}" in result, name
    assert "final_full_val_other_rmse_pct" not in result  # V is its only output
    assert result["final_full_val_v_rmse"] > 0
    # the point error and the RMSE describe the same model on the same points: mean |dV| <= RMSE
    assert result["final_full_val_mean_err"] <= result["final_full_val_v_rmse"] + 1e-9


@pytest.mark.parametrize("change, message", [({"kind": "pinn"}, "not possible on ms_beat"),
                                             ({"extra_region": "physics:t=0:10"}, "physics extra_region"),
                                             ({"kind": "iter"}, "needs an iterator problem")])
def test_what_a_voltage_only_output_cannot_train_is_refused_by_name(change, message):
    from fhn_automl.learning.config import TrainConfig

    with pytest.raises(ValueError, match=message):
        TrainConfig.from_mapping({"problem": "ms_beat", "layers": "tanh-8", **change})


def test_relative_rmse_is_a_share_of_the_target_range():
    target = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])  # range 4
    assert relative_rmse_pct(target, target) == 0.0
    assert relative_rmse_pct(target + 0.2, target) == pytest.approx(5.0)  # RMSE 0.2 of 4
    assert np.isnan(relative_rmse_pct(np.ones(3), np.ones(3)))  # a flat target has no scale


def test_a_second_output_is_trained_and_reported_as_a_share_of_its_range(tmp_path):
    """ms_beat with the gate h as a second output (as tp06_beat_ca adds Ca_i): both outputs trained, the
    voltage figures unchanged in kind, the gate's error as other_rmse_pct."""
    from fhn_automl.learning.trainer import train
    from fhn_automl.physics.cell_datasets import build_beat_dataset
    from fhn_automl.physics.problems import PROBLEMS, get_problem

    base = get_problem("ms_beat")
    two = replace(base, name="ms_beat_vh", outputs=("V", "h"),
                  beat=replace(base.beat, n_prepace=2, outputs={"V": "u", "h": "h"}, units={"V": "1", "h": "1"}))
    data = build_beat_dataset(two, tmp_path / "data", n_cells=5, seed=0)
    PROBLEMS["ms_beat_vh"] = two
    try:
        result = train({"problem": "ms_beat_vh", "layers": "tanh-16,tanh-16", "steps": 40, "val_every": 20,
                        "data_dir": str(data), "out_dir": str(tmp_path / "run"), "threads": 1})
    finally:
        del PROBLEMS["ms_beat_vh"]
    assert result["status"] == "finished"
    assert set(f"final_full_val_{name}" for name in PHYSIOLOGY_METRICS) <= set(result)
    # after 40 steps the gate is far from learned, but its error is a finite share of its range (0..1)
    assert 0 < result["final_full_val_other_rmse_pct"] < 200
    spec = json.loads((tmp_path / "run" / "model" / "spec.json").read_text())
    assert len(spec["output_mean"]) == 2  # each output scaled on its own
