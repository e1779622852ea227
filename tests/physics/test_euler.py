"""The Euler solver as numerics: order of convergence, backends agreeing, the contract's layout."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from fhn_automl.physics import _euler_cpu, _euler_cuda
from fhn_automl.physics.cell_models import CellModel, FitzHughNagumo
from fhn_automl.physics.euler import (
    CudaUnavailableError, euler_reference, euler_trajectories, iter_euler_chunks, resolve_backend)

FHN = FitzHughNagumo()
RNG = np.random.default_rng(1234)
U0 = RNG.uniform(0.0, 1.0, 131)  # not a multiple of the 64-trajectory block
W0 = RNG.uniform(0.0, 0.18, 131)


def _reference(u0: float, w0: float, i_app: float, t_eval: np.ndarray) -> np.ndarray:
    def rhs(_t, y):
        return FHN.rhs(y[0], y[1], i_app)

    solution = solve_ivp(rhs, (0.0, t_eval[-1]), [u0, w0], method="DOP853", t_eval=t_eval, rtol=1e-12, atol=1e-12)
    return solution.y


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_euler_converges_with_order_one(backend: str) -> None:
    t_end, save_dt, i_app = 5.0, 0.5, 0.1
    u0, w0 = np.array([0.5, 0.3, 0.8]), np.array([0.0, 0.05, 0.1])
    t_eval = np.arange(0.0, t_end + 1e-9, save_dt)
    reference = np.stack([_reference(u, w, i_app, t_eval) for u, w in zip(u0, w0)])  # (n, 2, t)
    steps = np.array([0.02, 0.01, 0.005, 0.0025])
    errors = []
    for dt in steps:
        U, W = euler_trajectories(FHN, u0, w0, i_app, dt=dt, n_steps=round(t_end / dt),
                                  save_every=round(save_dt / dt), backend=backend, dtype=np.float64)
        errors.append(max(np.abs(U - reference[:, 0]).max(), np.abs(W - reference[:, 1]).max()))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert 0.9 < slope < 1.1, (slope, errors)
    assert errors[-1] < 5e-3


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-10), (np.float32, 5e-4)])
def test_numba_matches_numpy(dtype, atol: float) -> None:
    i_app = RNG.uniform(0.0, 0.12, U0.size)
    expected = euler_trajectories(FHN, U0, W0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="numpy",
                                  dtype=dtype)
    actual = euler_trajectories(FHN, U0, W0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="cpu",
                                dtype=dtype)
    for a, e in zip(actual, expected):
        assert a.dtype == dtype and a.shape == (U0.size, 101)
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_layout_initial_column_and_save_every(backend: str) -> None:
    full_u, full_w = euler_trajectories(FHN, U0, W0, 0.1, dt=0.1, n_steps=23, backend=backend, dtype=np.float64)
    U, W = euler_trajectories(FHN, U0, W0, 0.1, dt=0.1, n_steps=23, save_every=5, backend=backend,
                              dtype=np.float64)
    assert U.shape == W.shape == (U0.size, 23 // 5 + 1)
    np.testing.assert_array_equal(U[:, 0], U0)
    np.testing.assert_array_equal(W[:, 0], W0)
    np.testing.assert_array_equal(U, full_u[:, ::5][:, :U.shape[1]])
    np.testing.assert_array_equal(W, full_w[:, ::5][:, :W.shape[1]])


def test_scalar_current_equals_per_trajectory_current_and_edge_sizes() -> None:
    scalar = euler_trajectories(FHN, U0, W0, 0.1, dt=0.1, n_steps=20, backend="cpu", dtype=np.float64)
    array = euler_trajectories(FHN, U0, W0, np.full(U0.size, 0.1), dt=0.1, n_steps=20, backend="cpu",
                               dtype=np.float64)
    np.testing.assert_array_equal(scalar[0], array[0])
    U, W = euler_trajectories(FHN, [], [], 0.0, dt=0.1, n_steps=20, backend="cpu", dtype=np.float64)
    assert U.shape == (0, 21)
    U, W = euler_trajectories(FHN, [0.5], [0.0], 0.0, dt=0.1, n_steps=0, backend="cpu", dtype=np.float64)
    assert U.shape == (1, 1) and U[0, 0] == 0.5


def test_chunks_with_reused_buffers_equal_one_run() -> None:
    whole_u, whole_w = euler_trajectories(FHN, U0, W0, 0.0, dt=0.1, n_steps=30, save_every=10, backend="cpu",
                                          dtype=np.float64)
    pieces_u, pieces_w = [], []
    for rows, U, W in iter_euler_chunks(FHN, U0, W0, 0.0, chunk_size=50, dt=0.1, n_steps=30, save_every=10,
                                        backend="cpu", dtype=np.float64, reuse_buffers=True):
        pieces_u.append(U.copy())
        pieces_w.append(W.copy())
    np.testing.assert_array_equal(np.concatenate(pieces_u), whole_u)
    np.testing.assert_array_equal(np.concatenate(pieces_w), whole_w)


def test_bad_backend_and_dtype_are_rejected() -> None:
    with pytest.raises(ValueError, match="cpu"):
        resolve_backend("tpu")
    with pytest.raises(ValueError, match="float32 or float64"):
        euler_trajectories(FHN, U0, W0, 0.0, dt=0.1, n_steps=2, backend="cpu", dtype=np.int32)


def test_cuda_without_cupy_says_what_to_install() -> None:
    if _euler_cuda.cuda_unavailable_reason() is None:
        pytest.skip("CUDA is available here: the error path cannot be shown")
    with pytest.raises(CudaUnavailableError, match=r"pip install -e '\.\[cuda\]'"):
        euler_trajectories(FHN, U0, W0, 0.0, dt=0.1, n_steps=2, backend="cuda")
    assert resolve_backend("auto") == "cpu"


@dataclasses.dataclass(frozen=True)
class _SlowRecovery(CellModel):
    """A second cell model, defined outside the solver: FHN with a different recovery law."""

    k: float = 10.0
    alpha: float = 0.3
    eps: float = 0.1

    def rhs(self, u, w, i_app):
        return self.k * (u * (u - self.alpha) * (1.0 - u) - w + i_app), self.eps * (u - w)

    def kernel_constants(self) -> dict[str, float]:
        return {"k": self.k, "alpha": self.alpha, "eps": self.eps}

    @property
    def excitation_threshold(self) -> float:
        return self.alpha


def _slow_recovery_rhs(u, w, i_app, c):
    k, alpha, eps = c
    return k * ((u - alpha) * (u - u * u) - w + i_app), eps * (u - w)


def test_a_second_cell_model_needs_no_solver_change(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _SlowRecovery()
    reference = euler_reference(model, U0, W0, 0.05, dt=0.05, n_steps=40, save_every=4)
    with pytest.warns(RuntimeWarning, match="no numba kernel"):
        generic = euler_trajectories(model, U0, W0, 0.05, dt=0.05, n_steps=40, save_every=4, backend="cpu",
                                     dtype=np.float64)
    np.testing.assert_array_equal(generic[0], reference[0])
    monkeypatch.setattr(_euler_cpu, "_NUMBA_RHS", dict(_euler_cpu._NUMBA_RHS))
    monkeypatch.setattr(_euler_cpu, "_COMPILED", dict(_euler_cpu._COMPILED))
    _euler_cpu.register_numba_rhs(_SlowRecovery, _slow_recovery_rhs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = euler_trajectories(model, U0, W0, 0.05, dt=0.05, n_steps=40, save_every=4, backend="cpu",
                                      dtype=np.float64)
    np.testing.assert_allclose(compiled[0], reference[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(compiled[1], reference[1], rtol=0, atol=1e-12)


def test_missing_numba_falls_back_to_numpy_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_euler_cpu, "numba_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        U, _ = euler_trajectories(FHN, U0, W0, 0.0, dt=0.1, n_steps=5, backend="cpu", dtype=np.float64)
    np.testing.assert_array_equal(U, euler_reference(FHN, U0, W0, 0.0, dt=0.1, n_steps=5)[0])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-9), (np.float32, 5e-4)])
def test_cuda_kernel_matches_numpy(dtype, atol: float) -> None:
    reason = _euler_cuda.cuda_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no CUDA here: {reason}")
    import cupy

    i_app = RNG.uniform(0.0, 0.12, U0.size)
    expected = euler_trajectories(FHN, U0, W0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="numpy",
                                  dtype=dtype)
    actual = euler_trajectories(FHN, U0, W0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="cuda",
                                dtype=dtype)
    for a, e in zip(actual, expected):
        assert isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)
    on_device = euler_trajectories(FHN, U0, W0, i_app, dt=0.01, n_steps=1000, save_every=10, backend="cuda",
                                   dtype=dtype, to_host=False)
    assert isinstance(on_device[0], cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(on_device[0]), actual[0])


def _euler_benchmark(*args: str) -> subprocess.CompletedProcess:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "euler.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)


def test_benchmark_asked_for_cuda_without_it_exits_2_before_any_work() -> None:
    # benchmarks/gpu_check.sh relies on this: a CUDA run that cannot happen must not exit 0
    if _euler_cuda.cuda_unavailable_reason() is None:
        pytest.skip("CUDA is available here: the refusal cannot be shown")
    run = _euler_benchmark("--backends", "numpy,cuda", "--n", "64", "--n-datagen", "8", "--repeats", "1")
    assert run.returncode == 2
    assert "--backends cuda cannot run here" in run.stderr and "CuPy" in run.stderr
    assert "Traceback" not in run.stderr and "numpy:" not in run.stdout  # refused before the numpy run


@pytest.mark.parametrize("argv", [["--backends", "gpu"], ["--backends", ","], ["--n", "0"], ["--repeats", "-1"]])
def test_benchmark_bad_option_is_an_argparse_error(argv: list[str]) -> None:
    run = _euler_benchmark(*argv)
    assert run.returncode == 2 and f"argument {argv[0]}" in run.stderr and "Traceback" not in run.stderr
