"""Beat problems of N-state cell models (issue 22): the registered problems, their datasets and the named errors.

Mitchell-Schaeffer stands in for the mechanics (two states: pacing and a beat cost milliseconds); the TP06
problem is checked against its model without solving it (its numba compile costs ~10 s: the search test does
that once)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from fhn_automl.physics.cell_datasets import (beat_model, beat_parameters, beat_split_sizes, build_beat_dataset,
                                              sample_scales, solve_beats)
from fhn_automl.physics.dataset_files import DatasetError
from fhn_automl.physics.datasets import ensure_dataset
from fhn_automl.physics.ionic_model import ParameterRangeError
from fhn_automl.physics.problems import beat_problem, get_problem


@pytest.fixture(scope="module")
def small_ms():
    """ms_beat with 3 pre-pacing beats: the same definition at a tenth of the pacing."""
    return replace(get_problem("ms_beat"), name="ms_beat_test",
                   beat=replace(get_problem("ms_beat").beat, n_prepace=3))


def test_registered_beat_problems_name_their_inputs_outputs_and_model():
    tp06 = get_problem("tp06_beat")
    assert tp06.kind == "beat"
    assert tp06.inputs == ("t", "gKr_scale", "gKs_scale", "gCaL_scale", "gNa_scale")
    assert tp06.outputs == ("V",)
    assert tp06.ranges["t"] == (0.0, 1000.0) and tp06.ranges["gNa_scale"] == (0.5, 2.0)
    assert tp06.beat.units == {"V": "mV"}
    model = beat_model(tp06)  # the problem's expectations hold for the model: parameters, state, period
    assert model.voltage == tp06.beat.outputs["V"]
    with pytest.raises(TypeError, match="IonicModel"):
        tp06.model  # the FitzHugh-Nagumo CellModel does not exist for it


def test_a_problem_whose_model_lacks_its_parameter_or_period_is_refused(small_ms):
    with pytest.raises(DatasetError, match="no parameters"):
        beat_model(replace(small_ms, beat=replace(small_ms.beat, scaled=("tau_in", "g_nothing"))))
    with pytest.raises(DatasetError, match="cycle"):
        beat_model(replace(small_ms, beat=replace(small_ms.beat, period=500.0)))
    with pytest.raises(DatasetError, match="name no state"):
        beat_model(replace(small_ms, beat=replace(small_ms.beat, outputs={"V": "x"})))


def test_scale_factors_multiply_defaults_and_out_of_range_products_are_named(small_ms):
    model = beat_model(small_ms)
    params = beat_parameters(small_ms, model, np.array([[0.5, 1.0, 2.0, 1.0]]))
    defaults = model.parameter_values({})
    names = model.parameter_names
    assert params[names.index("tau_in"), 0] == pytest.approx(0.5 * defaults[names.index("tau_in")])
    assert params[names.index("tau_open"), 0] == pytest.approx(2.0 * defaults[names.index("tau_open")])
    with pytest.raises(ParameterRangeError, match="tau_in"):
        beat_parameters(small_ms, model, np.array([[100.0, 1.0, 1.0, 1.0]]))


def test_split_sizes_follow_the_problem_ratio():
    problem = get_problem("tp06_beat")
    assert beat_split_sizes(problem, None) == {"train": 512, "val": 128}
    assert beat_split_sizes(problem, 10) == {"train": 8, "val": 2}
    assert beat_split_sizes(problem, 2) == {"train": 1, "val": 1}
    with pytest.raises(DatasetError, match="at least 2"):
        beat_split_sizes(problem, 1)


def test_validation_cells_are_fresh_draws_not_a_share_of_the_training_draw(small_ms):
    train, val = sample_scales(small_ms, 8, 0, "train"), sample_scales(small_ms, 8, 0, "val")
    assert not np.isin(val, train).any()
    assert ((train >= 0.5) & (train <= 2.0)).all()
    np.testing.assert_array_equal(train, sample_scales(small_ms, 8, 0, "train"))  # same seed, same cells


def test_beat_dataset_rows_manifest_reuse_and_same_bytes(tmp_path, small_ms):
    out = build_beat_dataset(small_ms, tmp_path / "a", n_cells=5, seed=3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["problem"] == "ms_beat_test"
    assert manifest["request"]["sizes"] == {"train": 4, "val": 1}
    assert manifest["cells"]["train"]["cells_without_ap"] == 0
    train = pq.read_table(out / "train.parquet").to_pydict()
    assert list(train) == ["traj", "t", "tau_in_scale", "tau_out_scale", "tau_open_scale", "tau_close_scale", "V"]
    assert len(train["t"]) == 4 * 1001 and max(train["t"]) == 1000.0
    val = pq.read_table(out / "val.parquet").to_pydict()
    assert set(val["traj"]).isdisjoint(train["traj"])
    # the stored beat is the solver's: restart the same cells and compare
    t, Y, _ = solve_beats(small_ms, beat_model(small_ms), sample_scales(small_ms, 4, 3, "train"))
    np.testing.assert_allclose(np.asarray(train["V"]).reshape(4, -1), Y[:, 0, :].T, rtol=0, atol=1e-6)
    stamp = (out / "train.parquet").stat().st_mtime_ns
    assert build_beat_dataset(small_ms, tmp_path / "a", n_cells=5, seed=3) == out
    assert (out / "train.parquet").stat().st_mtime_ns == stamp  # reused, not rewritten
    again = build_beat_dataset(small_ms, tmp_path / "b", n_cells=5, seed=3)
    assert (again / "train.parquet").read_bytes() == (out / "train.parquet").read_bytes()


def test_ensure_dataset_dispatches_beat_problems(tmp_path, monkeypatch):
    problem = beat_problem("ms_beat_tiny", "mitchell_schaeffer", scaled=("tau_close",), outputs={"V": "u"},
                           units={"V": "dimensionless"}, description="test", n_prepace=1, dt=0.05, pace_dt=0.05)
    out = ensure_dataset(problem, root=tmp_path, n_trajectories=3, device="cpu")
    assert out.name == "ms_beat_tiny-n3-seed0"
    assert json.loads((out / "manifest.json").read_text())["request"]["scaled"] == ["tau_close"]


def test_tp06_with_calcium_names_states_of_its_model():
    ca = get_problem("tp06_beat_ca")
    assert ca.outputs == ("V", "Ca_i") and ca.inputs == get_problem("tp06_beat").inputs
    assert ca.beat.voltage_output == "V" and ca.beat.units["Ca_i"] == "mM"
    model = beat_model(ca)
    assert set(ca.beat.outputs.values()) <= set(model.state_names)
    assert ca.beat.outputs["V"] == model.voltage
