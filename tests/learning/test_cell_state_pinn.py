"""PINN on an N-state model's initial-state problem (issue 22, ms_state): the residual of the
Mitchell-Schaeffer equations from the network's own time derivative, in any output order, and a short
physics-informed training run."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from fhn_automl.learning.architecture import parse_layers
from fhn_automl.learning.losses import physics_residual, physics_residual_autograd
from fhn_automl.learning.mlp import SurrogateMLP
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.ionic_sources import resolve_cell_model
from fhn_automl.physics.problems import get_problem


def _reordered(problem, order):
    """The same problem with its outputs (and initial-state inputs) in ``order``."""
    return replace(problem, outputs=tuple(order), inputs=("t", *(f"{name}0" for name in order)),
                   state=replace(problem.state, outputs={name: problem.state.outputs[name] for name in order}))


@pytest.mark.parametrize("order", [("u", "h"), ("h", "u")])
def test_residual_is_the_network_slope_minus_the_model_equations(order):
    problem = _reordered(get_problem("ms_state"), order)
    spec = ModelSpec(problem="ms_state", kind="pinn", layers=parse_layers("tanh-16,tanh-16"), inputs=problem.inputs,
                     outputs=problem.outputs, ranges=problem.ranges, output_mean=(0.3, 0.6), output_std=(0.4, 0.3))
    torch.manual_seed(0)
    model = SurrogateMLP(spec).double()
    generator = np.random.default_rng(0)
    x = torch.tensor(np.column_stack([generator.uniform(1, 499, 32), generator.uniform(0, 1, (32, 2))]))
    h = 1e-4
    step = torch.zeros_like(x)
    step[:, 0] = h
    cell = resolve_cell_model("mitchell_schaeffer")
    with torch.no_grad():
        slope = (model(x + step) - model(x - step)) / (2 * h)
        y = model(x).numpy()
        by_state = {problem.state.outputs[name]: y[:, j] for j, name in enumerate(order)}
        f = cell.rhs([by_state[name] for name in cell.state_names], 0.0, cell.parameter_values(), xp=np)
        f_out = np.column_stack([f[cell.state_names.index(problem.state.outputs[name])] for name in order])
        expected = (slope.numpy() - f_out) / np.array([0.4, 0.3])
    np.testing.assert_allclose(physics_residual(model, x, problem).detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(physics_residual_autograd(model, x, problem).detach().numpy(), expected, atol=1e-5)


def test_a_short_pinn_run_trains_data_physics_and_initial_condition(tmp_path):
    from fhn_automl.learning.trainer import train
    from fhn_automl.physics.cell_datasets import build_state_dataset

    problem = get_problem("ms_state")
    data = build_state_dataset(problem, tmp_path / "data", n_trajectories=8, seed=0)
    result = train({"problem": "ms_state", "kind": "pinn", "layers": "tanh-16,tanh-16", "steps": 30,
                    "val_every": 15, "data_dir": str(data), "out_dir": str(tmp_path / "run"), "threads": 1})
    assert result["status"] == "finished"
    losses = {key for key in result if key.startswith("loss_")}
    assert {"loss_data", "loss_physics", "loss_ic"} <= losses, losses
    assert all(np.isfinite(result[key]) for key in losses)
    spec = json.loads((tmp_path / "run" / "model" / "spec.json").read_text())
    assert spec["kind"] == "pinn" and spec["outputs"] == ["u", "h"]


def test_what_an_initial_state_problem_cannot_train_is_refused_by_name():
    from fhn_automl.learning.config import TrainConfig

    with pytest.raises(ValueError, match="needs an iterator problem"):
        TrainConfig.from_mapping({"problem": "ms_state", "layers": "tanh-8", "kind": "iter"})
    with pytest.raises(ValueError, match="physics extra_region needs the FitzHugh-Nagumo"):
        TrainConfig.from_mapping({"problem": "ms_state", "layers": "tanh-8", "extra_region": "physics:t=0:10"})
    assert TrainConfig.from_mapping({"problem": "ms_state", "layers": "tanh-8", "kind": "pinn"}).kind == "pinn"
