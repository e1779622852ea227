"""Window chaining / dispatch and iterator rollout: values at window ends, tangents, rollouts."""

import pytest
import torch

from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.windows import parse_window
from tests.learning.test_mlp import make_spec, raw_points


def test_parse_window_forms():
    assert parse_window(None, (0, 50)).mode == "none"
    assert parse_window("split:4", (0, 50)).edges == (0, 12.5, 25, 37.5, 50)
    assert parse_window("split:0,5,20,50", (0, 50)).interfaces == (5, 20)
    assert parse_window({"mode": "chained", "length": 5}, (0, 50)).edges == (0, 5)
    for bad in ("split:1", "split:0,5,40", "chained:0", "chained:80", "windows:3", "split:0,20,5,50"):
        with pytest.raises(ValueError):
            parse_window(bad, (0, 50))


def test_chained_model_marches_window_by_window():
    torch.manual_seed(0)
    model = build_model(make_spec(window_mode="chained", window_edges=(0, 5), horizon=50.0))
    x = raw_points("problem_b_s", 50)
    with torch.no_grad():
        out = model(x)
        for i in range(5):
            t, state = float(x[i, 0]), x[i, 1:].clone()
            hops = int(t // 5)
            for _ in range(hops):
                state = model.net(torch.cat((torch.tensor([5.0]), state)).unsqueeze(0))[0]
            manual = model.net(torch.cat((torch.tensor([t - 5 * hops]), state)).unsqueeze(0))[0]
            assert torch.allclose(out[i], manual, atol=1e-6)
        # within the first window the chained model is just its network
        early = x.clone()
        early[:, 0] = early[:, 0] % 5
        assert torch.allclose(model(early), model.net(early))
        # at a window end the model restarts the network from the state the first window reached
        at_end = x[:3].clone()
        at_end[:, 0] = 5.0
        reached = model.net(at_end)
        restart = torch.cat((torch.zeros(3, 1), reached), dim=1)  # local t = 0, (u0, w0) = reached
        assert torch.allclose(model(at_end), model.net(restart), atol=1e-6)
        # so its only jump there is the network's own initial-condition error net(0, y) - y
        before = at_end.clone()
        before[:, 0] = 5.0 - 1e-3
        assert torch.allclose(model(before), reached, atol=1e-2)
        jump = model(at_end) - model(before)
        assert torch.allclose(jump, model.net(restart) - reached, atol=1e-2)
        assert jump.abs().max() > 0.05  # an untrained network does jump: the check above has teeth


def test_split_model_dispatches_by_time():
    torch.manual_seed(0)
    model = build_model(make_spec(window_mode="split", window_edges=(0, 10, 30, 50)))
    x = raw_points("problem_b_s", 200)
    x[0, 0], x[1, 0], x[2, 0] = 10.0, 30.0, 50.0  # interfaces belong to the later window
    with torch.no_grad():
        out = model(x)
        which = model.window_index(x)
        assert which[:3].tolist() == [1, 2, 2]
        for k in range(3):
            rows = which == k
            assert torch.allclose(out[rows], model.windows[k](x[rows]))
    # the tangent is each window network's own d/dt: a central difference away from the interfaces
    model = model.double()
    x = x.double()
    h = 1e-5
    inside = torch.stack([(x[:, 0] - edge).abs() > 2 * h for edge in (0.0, 10.0, 30.0, 50.0)]).all(dim=0)
    x = x[inside]
    step = torch.zeros_like(x)
    step[:, 0] = h
    with torch.no_grad():
        y, dy = model.time_tangent(x)
        assert torch.allclose(y, model.forward_normalised(x))
        slope = (model.forward_normalised(x + step) - model.forward_normalised(x - step)) / (2 * h)
    assert x.shape[0] > 150 and set(model.window_index(x).tolist()) == {0, 1, 2}
    assert torch.allclose(dy, slope, rtol=1e-5, atol=1e-7)
    assert dy.abs().max() > 1e-3  # not trivially zero


def test_iterator_rollout_shape_and_consistency():
    torch.manual_seed(0)
    model = build_model(make_spec("problem_b_c_iter"))
    x0 = raw_points("problem_b_c_iter", 9)
    with torch.no_grad():
        path = model.rollout(x0, 25)
        assert path.shape == (9, 26, 2)
        assert torch.equal(path[:, 0], x0)
        assert torch.allclose(path[:, 1], model(x0))
        assert torch.allclose(path[:, 3], model(model(model(x0))), atol=1e-6)
