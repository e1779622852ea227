"""The activation registry: each row's module and value-and-slope agree with torch's own functions,
and every module goes into TorchScript (the saved ``model.ts``) and through pickle."""

import io
import pickle

import pytest
import torch

from fhn_automl.learning.activations import ACTIVATION_REGISTRY, ACTIVATIONS, get_activation


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_module_value_and_slope_agree_with_autograd(name):
    row = ACTIVATION_REGISTRY[name]
    z = torch.linspace(-3, 3, 61, dtype=torch.float64).requires_grad_(True)
    value, slope = row.value_and_slope(z)
    assert torch.allclose(value, row.module()(z))
    (grad,) = torch.autograd.grad(row.module()(z).sum(), z)
    assert torch.allclose(slope, grad, atol=1e-12)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_module_is_torchscript_able_and_picklable(name):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), get_activation(name).module())
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    x = torch.randn(5, 2)
    assert torch.allclose(torch.jit.load(buffer)(x), net(x))
    assert torch.allclose(pickle.loads(pickle.dumps(net))(x), net(x))


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="'gelu'.*known: silu"):
        get_activation("gelu")
