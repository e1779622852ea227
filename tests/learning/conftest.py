"""Tiny datasets for the learning tests, built once per session through the physics layer's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fhn_automl.physics.datasets import ensure_dataset


@pytest.fixture(autouse=True)
def _one_thread():
    """Deterministic, and polite on the shared 2-core CI machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("learning_data")


@pytest.fixture(scope="session")
def b_s_data(data_root) -> Path:
    """Problem B_S, 40 trajectories (20 train / 20 val), every stored state: ~20k rows."""
    return ensure_dataset("problem_b_s", root=data_root, n_trajectories=40, seed=0, device="cpu")


@pytest.fixture(scope="session")
def iter_data(data_root) -> Path:
    """Problem B_C iterator: 4,000 pairs and the smallest rollout set."""
    return ensure_dataset("problem_b_c_iter", root=data_root, n_trajectories=4_000, seed=0, device="cpu")


@pytest.fixture(scope="session")
def c_data(data_root) -> Path:
    """Problem C (has the k input), 20 trajectories."""
    return ensure_dataset("problem_c", root=data_root, n_trajectories=20, seed=0, device="cpu")


def tiny_config(problem: str, data_dir: Path, out_dir: Path, **overrides) -> dict:
    """A few-hundred-step run: small batches, frequent validation."""
    config = {"problem": problem, "layers": "silu-16,tanh-16", "steps": 200, "val_every": 100,
              "batch_size": 128, "data_dir": str(data_dir), "out_dir": str(out_dir), "device": "cpu",
              "val_max_points": 5_000, "seed": 0}
    config.update(overrides)
    return config
