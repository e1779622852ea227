"""The MLP: input scaling inside, forward-mode tangent vs autograd, the physics residual vs finite differences."""

import pytest
import torch

from fhn_automl.learning.architecture import ACTIVATIONS, parse_layers
from fhn_automl.learning.losses import physics_residual, physics_residual_autograd
from fhn_automl.learning.mlp import SurrogateMLP, build_model
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import get_problem


def make_spec(problem_name="problem_b_s", layers="silu-16,tanh-16", **kw) -> ModelSpec:
    problem = get_problem(problem_name)
    kind = "iter" if problem.kind == "iterator" else "ddnn"
    return ModelSpec(problem=problem.name, kind=kw.pop("kind", kind), layers=parse_layers(layers),
                     inputs=problem.inputs, outputs=problem.outputs, ranges=problem.ranges, **kw)


def raw_points(problem_name: str, n: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    problem = get_problem(problem_name)
    g = torch.Generator().manual_seed(seed)
    cols = [lo + (hi - lo) * torch.rand(n, generator=g, dtype=dtype) for lo, hi in
            (problem.ranges[name] for name in problem.inputs)]
    return torch.stack(cols, dim=1)


def test_inputs_scaled_to_unit_box_inside_the_module():
    model = SurrogateMLP(make_spec())
    ranges = get_problem("problem_b_s").ranges  # the input-scaling box (wider than the sampled one)
    corners = torch.tensor([[0.0, ranges["u0"][0], ranges["w0"][0]], [50.0, ranges["u0"][1], ranges["w0"][1]]])
    assert torch.allclose(model.scale_inputs(corners), torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), atol=1e-6)
    raw = SurrogateMLP(make_spec(input_scaling=False))
    assert torch.equal(raw.scale_inputs(corners), corners)


def test_outputs_destandardised_inside_the_module():
    model = SurrogateMLP(make_spec(output_mean=(0.2, 0.05), output_std=(0.3, 0.04)))
    x = raw_points("problem_b_s", 7)
    assert torch.allclose(model(x), model.forward_normalised(x) * torch.tensor([0.3, 0.04]) + torch.tensor([0.2, 0.05]))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_tangent_matches_autograd(activation):
    torch.manual_seed(0)
    model = SurrogateMLP(make_spec(layers=f"{activation}-8,tanh-8,{activation}-4")).double()
    x = raw_points("problem_b_s", 64, dtype=torch.float64).requires_grad_(True)
    y, dy = model.time_tangent(x)
    assert torch.allclose(y, model.forward_normalised(x))
    for j in range(2):
        (grad,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
        assert torch.allclose(dy[:, j], grad[:, 0], atol=1e-10)


@pytest.mark.parametrize("problem_name", ["problem_b_s", "problem_c", "problem_a"])
def test_physics_residual_matches_finite_difference(problem_name):
    """Residual = (dy/dt - f(y)) / std with dy/dt from a central difference of the network itself."""
    problem = get_problem(problem_name)
    torch.manual_seed(1)
    model = SurrogateMLP(make_spec(problem_name, output_mean=(0.3, 0.05), output_std=(0.35, 0.05))).double()
    x = raw_points(problem_name, 32, dtype=torch.float64)
    x[:, 0] = x[:, 0].clamp(0.01, problem.t_end - 0.01)
    h = 1e-5
    step = torch.zeros_like(x)
    step[:, 0] = h
    with torch.no_grad():
        slope = (model(x + step) - model(x - step)) / (2 * h)
        y = model(x)
        k = x[:, problem.inputs.index("k")] if problem.has_k else 0.0
        du, dw = problem.model.rhs(y[:, 0], y[:, 1], problem.i_app(k))
        expected = (slope - torch.stack((du, dw), dim=1)) / torch.tensor([0.35, 0.05], dtype=torch.float64)
    assert torch.allclose(physics_residual(model, x, problem), expected, atol=1e-6)
    assert torch.allclose(physics_residual_autograd(model, x, problem), expected, atol=1e-6)


def test_physics_residual_vanishes_on_the_equilibrium():
    """A network that outputs the B_S rest state (0, 0) for every input has a zero residual."""
    model = SurrogateMLP(make_spec())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    x = raw_points("problem_b_s", 16)
    assert torch.allclose(physics_residual(model, x, get_problem("problem_b_s")), torch.zeros(16, 2))


def test_build_model_picks_the_class():
    assert type(build_model(make_spec())).__name__ == "SurrogateMLP"
    assert type(build_model(make_spec(window_mode="split", window_edges=(0, 10, 50)))).__name__ == "SplitWindowSurrogate"
    assert type(build_model(make_spec(window_mode="chained", window_edges=(0, 5), horizon=50.0))).__name__ == \
        "ChainedWindowSurrogate"
    assert type(build_model(make_spec("problem_b_c_iter"))).__name__ == "IteratorSurrogate"
