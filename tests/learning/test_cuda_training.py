"""Training on a CUDA device: the trainer contract and packed training, where torch sees a GPU.

Skipped with the reason on machines without CUDA (every CI machine here); ``benchmarks/gpu_check.sh``
runs them on a GPU host, where a skip counts as a failure.
"""

import math

import pytest
import torch

from fhn_automl.learning import load_model, load_torchscript, train
from fhn_automl.learning.packed import train_pack
from tests.learning.conftest import tiny_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device visible to torch")]


@pytest.mark.parametrize("kind", ["ddnn", "pinn"])
def test_train_on_cuda_keeps_the_contract(kind, b_s_data, tmp_path):
    reports = []
    extra = {"kind": "pinn", "physics_batch_size": 64} if kind == "pinn" else {}
    config = tiny_config("problem_b_s", b_s_data, tmp_path, device="cuda", **extra)
    result = train(config, lambda metrics, folder: reports.append(metrics))
    assert result["status"] == "finished" and [m["step"] for m in reports] == [100, 200]
    assert reports[-1]["loss"] < reports[0]["loss"]
    assert math.isfinite(result["best_val_mean_err"])
    # the saved model is device-free: it loads and runs on the CPU as it does on the GPU
    model = load_model(result["model_dir"])
    assert all(p.device.type == "cpu" for p in model.parameters())
    x = torch.rand(64, len(model.spec.inputs))
    with torch.no_grad():
        on_cpu = model(x)
        on_gpu = model.to("cuda")(x.to("cuda")).cpu()
        scripted = load_torchscript(result["model_dir"])(x)
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(scripted, on_cpu, atol=1e-6, rtol=1e-5)


def test_cuda_and_cpu_training_agree_in_quality(b_s_data, tmp_path):
    """Same seed and data: the GPU run is not bit-equal to the CPU one (other kernels), but it must
    learn as well (within 2x of the CPU's validation error after the same steps)."""
    errors = {}
    for device in ("cpu", "cuda"):
        config = tiny_config("problem_b_s", b_s_data, tmp_path / device, device=device, steps=400, val_every=200)
        errors[device] = train(config)["best_val_mean_err"]
    assert errors["cuda"] < 2 * errors["cpu"] and errors["cpu"] < 2 * errors["cuda"], errors


def test_packed_training_on_cuda(b_s_data, tmp_path):
    layers = ["silu-16,tanh-16", "tanh-8,silu-16", "silu-16,silu-16"]
    configs = [tiny_config("problem_b_s", b_s_data, tmp_path / f"m{i}", layers=spec, device="cuda")
               for i, spec in enumerate(layers)]
    summary = train_pack(configs, out_dir=tmp_path / "pack")
    assert summary["model_steps"] == 3 * 200
    for name, result in summary["members"].items():
        assert result["status"] == "finished", (name, result)
        assert math.isfinite(result["best_val_mean_err"])
        assert load_model(result["model_dir"]).spec.layers  # each member's model is saved and loads
