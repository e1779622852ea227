"""The compile fallbacks on a CPU box, and the clear errors for backends that cannot run."""

import pytest
import torch

from fhn_automl.post.compile import compile_surrogate, cuda_available, tensorrt_installed, tune_batch_size
from fhn_automl.post.errors import BackendNotInstalledError
from fhn_automl.learning.untrained import untrained_model
from fhn_automl.physics.problems import get_problem


@pytest.fixture()
def model():
    return untrained_model(get_problem("problem_b_s"), "silu-8,tanh-8", seed=0)


def test_eager_backend_matches_the_module(model):
    x = torch.rand(64, 3)
    compiled = compile_surrogate(model, 3, backend="eager", device="cpu")
    assert compiled.label == "eager-fp32@cpu"
    assert torch.equal(compiled(x), model(x).detach())


def test_auto_falls_back_to_eager_when_torch_compile_fails(model, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("inductor unavailable")

    monkeypatch.setattr(torch, "compile", broken)
    compiled = compile_surrogate(model, 3, backend="auto", device="cpu")
    assert compiled.backend == "eager"
    assert "compile failed" in compiled.note and "inductor unavailable" in compiled.note
    x = torch.rand(16, 3)
    assert torch.equal(compiled(x), model(x).detach())


def test_a_named_backend_that_fails_raises_instead_of_falling_back(model, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no compiler")))
    with pytest.raises(RuntimeError, match="no compiler"):
        compile_surrogate(model, 3, backend="compile", device="cpu")


@pytest.mark.skipif(tensorrt_installed() and cuda_available(), reason="TensorRT is installed and usable here")
def test_tensorrt_asked_for_but_not_available_says_what_to_install(model):
    with pytest.raises(BackendNotInstalledError, match="(torch_tensorrt|CUDA)"):
        compile_surrogate(model, 3, backend="tensorrt", device="cuda" if cuda_available() else "cpu")


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(model):
    with pytest.raises(BackendNotInstalledError, match="no CUDA"):
        compile_surrogate(model, 3, backend="eager", device="cuda")


def test_fp16_on_cpu_is_rejected(model):
    with pytest.raises(ValueError, match="fp16"):
        compile_surrogate(model, 3, backend="eager", device="cpu", precision="fp16")


def test_batch_size_is_tuned_by_trial(model):
    compiled = compile_surrogate(model, 3, backend="eager", device="cpu")
    tuning = tune_batch_size(compiled, n_points=4_096, candidates=[256, 1_024, 4_096], repeats=1)
    assert set(tuning.per_point_s) == {256, 1_024, 4_096}
    assert tuning.best == min(tuning.per_point_s, key=tuning.per_point_s.get)
    assert tuning.timing is not None and tuning.timing.transfers.startswith("none")


@pytest.mark.gpu
@pytest.mark.skipif(not (cuda_available() and tensorrt_installed()), reason="needs CUDA and torch_tensorrt")
def test_tensorrt_matches_eager_on_the_gpu(model):
    x = torch.rand(4_096, 3, device="cuda")
    reference = model.to("cuda")(x).detach()
    compiled = compile_surrogate(model, 3, backend="tensorrt", device="cuda", batch_range=(1, 4_096, 65_536),
                                 build_engine=True)
    assert compiled.backend == "tensorrt"
    assert torch.allclose(compiled(x), reference, atol=1e-4)
    fp16 = compile_surrogate(model, 3, backend="tensorrt", device="cuda", precision="fp16")
    assert torch.allclose(fp16(x).float(), reference, atol=5e-2)


@pytest.mark.parametrize("backend", ["cudagraph", "compile-cudagraph"])
def test_cuda_graph_backends_on_a_cpu_are_refused_by_name(model, backend):
    with pytest.raises(ValueError, match=f"{backend} backend replays CUDA graphs"):
        compile_surrogate(model, 3, backend=backend, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["cudagraph", "compile-cudagraph"])
def test_cuda_graph_backends_match_eager_on_the_gpu(model, backend):
    reference = model.to("cuda")
    compiled = compile_surrogate(model, 3, backend=backend, device="cuda", batch_range=(1, 1_024, 65_536))
    assert compiled.backend == backend
    for rows in (1_024, 1_000, 1_024):  # a second shape gets its own graph; the first is replayed again
        x = torch.rand(rows, 3, device="cuda")
        out = compiled(x)
        assert out.shape == (rows, 2)
        torch.testing.assert_close(out, reference(x).detach(), atol=1e-5, rtol=1e-4)
    kept = compiled(x)
    compiled(torch.rand(rows, 3, device="cuda"))  # a later replay must not change what was returned
    torch.testing.assert_close(kept, reference(x).detach(), atol=1e-5, rtol=1e-4)
    tuning = tune_batch_size(compiled, n_points=65_536, candidates=[4_096, 65_536], repeats=1)
    assert tuning.best in (4_096, 65_536) and tuning.timing.transfers.startswith("excluded")
