"""The thesis' initial-state problem for an N-state cell model (issue 22): ms_state, Mitchell-Schaeffer's
(t, u0, h0) -> (u, h) free response; its dataset, and the named errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from fhn_automl.physics.cell_datasets import build_state_dataset, sample_initial_states, solve_states, state_model
from fhn_automl.physics.dataset_files import DatasetError
from fhn_automl.physics.datasets import ensure_dataset
from fhn_automl.physics.problems import get_problem


@pytest.fixture(scope="module")
def short():
    """ms_state over [0, 100] ms: the same definition at a fifth of the time."""
    base = get_problem("ms_state")
    return replace(base, name="ms_state_test", t_span=(0.0, 100.0), ranges={**base.ranges, "t": (0.0, 100.0)})


def test_ms_state_takes_and_predicts_the_whole_state():
    problem = get_problem("ms_state")
    assert problem.kind == "cell_state"
    assert problem.inputs == ("t", "u0", "h0") and problem.outputs == ("u", "h")
    assert problem.initial_state_ranges() == {"u0": (0.0, 1.0), "h0": (0.0, 1.0)}
    model = state_model(problem)
    assert sorted(problem.state.outputs.values()) == sorted(model.state_names)
    with pytest.raises(TypeError, match="cell_state problem of the N-state model"):
        problem.model  # not a FitzHugh-Nagumo CellModel


def test_a_problem_that_leaves_a_state_out_is_refused(short):
    partial = replace(short, outputs=("u",), state=replace(short.state, outputs={"u": "u"}))
    with pytest.raises(DatasetError, match="must be every state"):
        state_model(partial)


def test_free_trajectories_start_at_their_initial_state_and_fire_above_threshold(short):
    model = state_model(short)
    initial = np.array([[0.5, 1.0], [0.05, 1.0]])  # above / below the 0.13 threshold, gate open
    t, Y = solve_states(short, model, initial)
    assert t[0] == 0 and t[-1] == pytest.approx(100.0) and Y.shape == (51, 2, 2)
    np.testing.assert_allclose(Y[0].T, initial)
    u = Y[:, model.state_names.index("u"), :]
    assert u[10:, 0].min() > 0.7   # excited: the plateau, no stimulus needed
    assert u[-1, 1] < 0.01         # sub-threshold: decays to rest


def test_dataset_rows_fresh_validation_states_and_reuse(tmp_path, short):
    out = build_state_dataset(short, tmp_path / "d", n_trajectories=10, seed=3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["sizes"] == {"train": 8, "val": 2}
    assert manifest["solver"]["stimulus"] == "none"
    train = pq.read_table(out / "train.parquet").to_pandas()
    val = pq.read_table(out / "val.parquet").to_pandas()
    assert list(train.columns) == ["traj", "t", "u0", "h0", "u", "h"]
    assert len(train) == 8 * 51 and len(val) == 2 * 51
    first = train[train.t == 0]
    np.testing.assert_allclose(first[["u", "h"]].to_numpy(), first[["u0", "h0"]].to_numpy(), rtol=1e-6)
    # validation initial states are their own draw, not a share of the training draw
    assert not set(map(tuple, val[val.t == 0][["u0", "h0"]].round(6).to_numpy())) & set(
        map(tuple, first[["u0", "h0"]].round(6).to_numpy()))
    np.testing.assert_array_equal(sample_initial_states(short, 2, 3, "val"),
                                  sample_initial_states(short, 2, 3, "val"))
    before = (out / "train.parquet").stat().st_mtime_ns
    assert build_state_dataset(short, tmp_path / "d", n_trajectories=10, seed=3) == out
    assert (out / "train.parquet").stat().st_mtime_ns == before  # reused, not rewritten


def test_ensure_dataset_dispatches_cell_state_problems(tmp_path):
    out = ensure_dataset("ms_state", root=tmp_path, n_trajectories=4, seed=0, device="cpu")
    assert out.name == "ms_state-n4-seed0"
    assert json.loads((out / "manifest.json").read_text())["problem"] == "ms_state"
