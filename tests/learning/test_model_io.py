"""Spec JSON, state_dict and TorchScript round trips give the module's outputs."""

import json
import subprocess
import sys

import pytest
import torch

from fhn_automl.learning.model_io import load_model, load_spec, load_torchscript, save_model
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.spec import ModelSpec
from tests.learning.test_mlp import make_spec, raw_points

SPECS = {
    "plain": lambda: make_spec(layers="silu-8,sin-8,elu-4", output_mean=(0.3, 0.05), output_std=(0.3, 0.04)),
    "paper_raw_inputs": lambda: make_spec(layers="relu-8,leakyrelu-8,sigmoid-8", input_scaling=False),
    "split": lambda: make_spec(window_mode="split", window_edges=(0, 10, 50)),
    "chained": lambda: make_spec(window_mode="chained", window_edges=(0, 5), horizon=50.0),
    "problem_c": lambda: make_spec("problem_c", kind="pinn"),
    "iterator": lambda: make_spec("problem_b_c_iter"),
}


@pytest.mark.parametrize("name", SPECS)
def test_round_trips(name, tmp_path):
    torch.manual_seed(0)
    spec = SPECS[name]()
    model = build_model(spec)
    x = raw_points(spec.problem, 300) * 1.0
    folder = save_model(model, tmp_path / name)
    assert load_spec(folder) == spec
    assert ModelSpec.from_json(spec.to_json()) == spec
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(load_model(folder)(x), expected)
        scripted = load_torchscript(folder)
        assert torch.allclose(scripted(x), expected, atol=1e-6)
        if spec.kind == "iter":
            assert torch.allclose(scripted.rollout(x, 4), model.rollout(x, 4), atol=1e-6)
    assert json.loads((folder / "spec.json").read_text())["layers"] == spec.to_dict()["layers"]


def test_torchscript_needs_only_plain_torch(tmp_path):
    """Load model.ts in a process where importing fhn_automl is impossible."""
    torch.manual_seed(0)
    model = build_model(make_spec(window_mode="chained", window_edges=(0, 5), horizon=50.0))
    folder = save_model(model, tmp_path / "m")
    x = torch.tensor([[12.5, 0.6, 0.02]])
    expected = model(x).detach().tolist()[0]
    code = (
        "import sys; sys.modules['fhn_automl'] = None\n"
        "import torch\n"
        f"m = torch.jit.load({str(folder / 'model.ts')!r})\n"
        "print(m(torch.tensor([[12.5, 0.6, 0.02]])).tolist()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [pytest.approx(v, abs=1e-6) for v in expected] == json.loads(out.stdout)


def test_newer_spec_version_is_refused():
    data = make_spec().to_dict()
    data["version"] = 999
    with pytest.raises(ValueError, match="newer"):
        ModelSpec.from_dict(data)
