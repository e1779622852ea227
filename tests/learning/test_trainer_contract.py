"""Contract tests every trainer kind passes (STYLE habit 8): loss falls, reported keys, determinism,
divergence, resume, config validation."""

import json
import math

import pytest
import torch

from fhn_automl.learning import load_model, load_torchscript, train
from fhn_automl.learning.trainer import BEST_MODEL_FOLDER, STATE_FILE
from tests.learning.conftest import tiny_config

REQUIRED_KEYS = {"step", "val_mean_err", "val_max_err", "best_val_mean_err", "loss", "lr", "step_time_ms", "status"}

VARIANTS = {
    "ddnn": ("problem_b_s", {}),
    "pinn": ("problem_b_s", {"kind": "pinn", "physics_batch_size": 64}),
    "iter": ("problem_b_c_iter", {"kind": "iter"}),
    "split_windows": ("problem_b_s", {"window": "split:0,10,50"}),
    "chained_windows": ("problem_b_s", {"window": "chained:10"}),
    "extra_physics_region": ("problem_b_s", {"extra_region": "unstable_equilibrium"}),
    "problem_c_pinn_paper": ("problem_c", {"kind": "pinn", "recipe": "paper", "lr": 3e-3}),
}
EXPECTED_TERMS = {
    "ddnn": {"data"}, "pinn": {"data", "physics", "ic"}, "iter": {"data"},
    "split_windows": {"data", "continuity"}, "chained_windows": {"data"},
    "extra_physics_region": {"data", "extra_physics"}, "problem_c_pinn_paper": {"data", "physics", "ic"},
}


def _data(request, problem):
    fixture = {"problem_b_s": "b_s_data", "problem_b_c_iter": "iter_data", "problem_c": "c_data"}[problem]
    return request.getfixturevalue(fixture)


def _run(request, tmp_path, variant, **overrides):
    problem, extra = VARIANTS[variant]
    reports = []
    config = tiny_config(problem, _data(request, problem), tmp_path, **{**extra, **overrides})
    result = train(config, lambda metrics, folder: reports.append((metrics, folder)))
    return result, reports


@pytest.mark.parametrize("variant", VARIANTS)
def test_contract(variant, request, tmp_path):
    result, reports = _run(request, tmp_path / "a", variant)
    assert result["status"] == "finished"
    assert [m["step"] for m, _ in reports] == [100, 200]
    for metrics, folder in reports:
        assert REQUIRED_KEYS <= set(metrics)
        assert {f"loss_{term}" for term in EXPECTED_TERMS[variant]} <= set(metrics)
        assert (tmp_path / "a" / "checkpoint" / STATE_FILE).exists() and folder is not None
    assert reports[-1][0]["status"] == "finished"
    assert reports[-1][0]["loss"] < reports[0][0]["loss"]  # the loss falls
    assert math.isfinite(result["best_val_mean_err"])
    # the saved best model reproduces the best validation error's model, with plain torch too
    x = torch.rand(50, len(load_model(result["model_dir"]).spec.inputs))
    with torch.no_grad():
        assert torch.allclose(load_torchscript(result["model_dir"])(x), load_model(result["model_dir"])(x), atol=1e-6)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["final"]["status"] == "finished" and len(saved["history"]) == 2
    # same seed -> same result
    again, _ = _run(request, tmp_path / "b", variant)
    assert again["best_val_mean_err"] == result["best_val_mean_err"]
    assert again["loss"] == result["loss"]


def test_different_seed_differs(request, tmp_path):
    one, _ = _run(request, tmp_path / "a", "ddnn", steps=100)
    two, _ = _run(request, tmp_path / "b", "ddnn", steps=100, seed=1)
    assert one["loss"] != two["loss"]


def test_huge_learning_rate_is_reported_as_diverged(request, tmp_path):
    result, reports = _run(request, tmp_path, "ddnn", lr=1e12, steps=2_000, val_every=1_000, recipe="paper",
                           layers="silu-16,silu-16")
    assert result["status"] == "diverged"
    assert result["step"] < 2_000
    assert reports[-1][0]["status"] == "diverged"


def test_resume_continues_exactly(request, tmp_path):
    full, _ = _run(request, tmp_path / "full", "pinn", steps=300)
    # a 300-step run interrupted after its 200-step checkpoint, then resumed from that checkpoint
    partial_reports = []

    class Stop(Exception):
        pass

    def stop_at_200(metrics, folder):
        partial_reports.append(metrics)
        if metrics["step"] == 200:
            raise Stop

    problem, extra = VARIANTS["pinn"]
    config = tiny_config(problem, _data(request, problem), tmp_path / "interrupted", steps=300, **extra)
    with pytest.raises(Stop):
        train(config, stop_at_200)
    resumed_reports = []
    resumed = train({**config, "out_dir": str(tmp_path / "resumed")},
                    lambda m, f: resumed_reports.append(m), checkpoint=tmp_path / "interrupted" / "checkpoint")
    assert [m["step"] for m in resumed_reports] == [300]
    assert resumed["loss"] == full["loss"]
    assert resumed["best_val_mean_err"] == full["best_val_mean_err"]
    assert (tmp_path / "resumed" / "checkpoint" / BEST_MODEL_FOLDER / "spec.json").exists()


def test_unknown_config_keys_are_named(b_s_data, tmp_path):
    with pytest.raises(ValueError, match="batchsize.*learning_rate|learning_rate.*batchsize"):
        train({**tiny_config("problem_b_s", b_s_data, tmp_path), "batchsize": 3, "learning_rate": 1.0})


@pytest.mark.parametrize("overrides, message", [
    ({"kind": "iter"}, "iterator problem"),
    ({"layers": "silu-8,bogus-3"}, "bogus-3"),
    ({"window": "split:1"}, "at least 2"),
    ({"extra_region": "physics:v0=0:1"}, "v0"),
    ({"recipe": "slow"}, "recipe"),
])
def test_bad_configs(b_s_data, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train({**tiny_config("problem_b_s", b_s_data, tmp_path), **overrides})
