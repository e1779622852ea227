"""The CUDA kernels generated from N-state cell models, checked without a GPU.

- NVRTC (as in ``test_cuda_source``) compiles the generated source for the lent H200 (sm_90) and the
  oldest architecture it supports: both entry points exist, with the parameter list the launcher packs.
- A host shim compiles the same generated source with g++ (CUDA qualifiers defined away, every thread of
  the grid run in turn) and runs it through the launcher's own argument list (``cuda_arguments``);
  the result matches the NumPy reference to a few ulps (different ``exp`` / ``log`` implementations).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fhn_automl.physics import ionic_solvers
from fhn_automl.physics.ionic_model import StimulusProtocol
from fhn_automl.physics.ionic_solvers import cuda_arguments, integrate_cells, n_saved_states
from fhn_automl.physics.ionic_sources import resolve_cell_model

from .test_cuda_source import CUPY_OPTIONS, LENT_GPU_ARCH, Nvrtc, NvrtcOutput, nvrtc_library_candidates, ptx_entries

MODELS = ["mitchell_schaeffer", "tp06_epi", "fhn"]


@pytest.fixture(scope="module")
def nvrtc() -> Nvrtc:
    for path in nvrtc_library_candidates():
        try:
            return Nvrtc(path)
        except OSError:
            continue
    pytest.skip("NVRTC is not loadable (pip install -e '.[dev]' brings nvidia-cuda-nvrtc)")


@pytest.mark.parametrize("name", MODELS)
def test_nvrtc_compiles_the_generated_kernel(name: str, nvrtc: Nvrtc) -> None:
    model = resolve_cell_model(name)
    source = model.cuda_source()
    outputs: dict[str, NvrtcOutput] = {
        "ptx": nvrtc.compile(source, f"{name}.cu", (f"-arch=compute_{LENT_GPU_ARCH}", *CUPY_OPTIONS)),
        "oldest": nvrtc.compile(source, f"{name}.cu", (f"-arch=compute_{min(nvrtc.supported_archs())}", *CUPY_OPTIONS)),
    }
    for label, output in outputs.items():
        assert output.log.strip() == "", (label, output.log)
        entries = ptx_entries(output.ptx)
        prefix = model.cuda_entry_prefix
        assert set(entries) == {f"{prefix}_f32", f"{prefix}_f64"}, label
        # the launcher's arguments, type for type (PTX spells integers b/s/u alike)
        for suffix, dtype in (("f32", np.float32), ("f64", np.float64)):
            params = [re.sub(r"^[bs]", "u", p) for p in entries[f"{prefix}_{suffix}"][0]]
            arrays = [np.zeros(1, dtype)] * 3
            packed = cuda_arguments(*arrays, 1, 2, 1, dtype(0.1), 0.0, model.stimulus, True)
            expected = ["u64" if isinstance(a, np.ndarray) else
                        f"{'f' if isinstance(a, np.floating) else 'u'}{8 * a.nbytes}" for a in packed]
            assert params == expected, (label, suffix)


SHIM = """
#include <cmath>
#include <cstddef>
using std::exp; using std::log; using std::sqrt; using std::expm1; using std::pow; using std::floor;
using std::fabs; using std::tanh; using std::fmax; using std::fmin;
struct ShimDim3 {{ unsigned int x, y, z; }};
static ShimDim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#include "{source}"
extern "C" int shim_launch(unsigned int grid, unsigned int block, const double* y0, const double* params,
                           double* Y, long long n, int n_saved, int save_every, double dt, double t0,
                           double amplitude, double start, double duration, double period, int rush_larsen) {{
    gridDim = {{grid, 1, 1}};
    blockDim = {{block, 1, 1}};
    for (unsigned int b = 0; b < grid; ++b) {{
        for (unsigned int t = 0; t < block; ++t) {{
            blockIdx = {{b, 0, 0}};
            threadIdx = {{t, 0, 0}};
            {entry}(y0, params, Y, n, n_saved, save_every, dt, t0, amplitude, start, duration, period, rush_larsen);
        }}
    }}
    return 0;
}}
"""


def _host_kernel(model, tmp_path: Path):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the host shim cannot be built")
    source = tmp_path / "kernel.cu"
    source.write_text(model.cuda_source())
    shim = tmp_path / "shim.cpp"
    shim.write_text(SHIM.format(source=source, entry=f"{model.cuda_entry_prefix}_f64"))
    library = tmp_path / "libshim.so"
    build = subprocess.run([compiler, "-O1", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC", "-w", str(shim),
                            "-o", str(library)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    launch = ctypes.CDLL(str(library)).shim_launch
    double_p = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
    launch.argtypes = [ctypes.c_uint, ctypes.c_uint, double_p, double_p, double_p, ctypes.c_longlong, ctypes.c_int,
                       ctypes.c_int, ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double,
                       ctypes.c_double, ctypes.c_double, ctypes.c_int]
    return launch


@pytest.mark.parametrize("name, method, dt, n_steps", [("mitchell_schaeffer", "rush_larsen", 0.05, 1000),
                                                       ("mitchell_schaeffer", "euler", 0.05, 1000),
                                                       ("tp06_epi", "rush_larsen", 0.01, 300)])
def test_kernel_body_on_the_cpu_matches_numpy(name: str, method: str, dt: float, n_steps: int, tmp_path: Path) -> None:
    model = resolve_cell_model(name)
    launch = _host_kernel(model, tmp_path)
    n, save_every, block = 70, 50, 32  # three blocks, the last partial
    rng = np.random.default_rng(5)
    params = np.repeat(model.parameter_values()[:, None], n, axis=1)
    params[model.parameter_names.index(model.varied[0])] *= rng.uniform(0.8, 1.2, n)
    y0 = np.repeat(model.default_state()[:, None], n, axis=1)
    protocol = StimulusProtocol(model.stimulus.amplitude, 1.0, 1000.0, start=0.5)
    n_saved = n_saved_states(n_steps, save_every)
    guard = 16
    memory = np.full(2 * guard + n_saved * model.n_states * n, np.nan)
    Y = memory[guard:-guard].reshape(n_saved, model.n_states, n)
    assert launch((n + block - 1) // block + 1, block, np.ascontiguousarray(y0), np.ascontiguousarray(params), Y,
                  n, n_saved, save_every, dt, 0.0, protocol.amplitude, protocol.start, protocol.duration,
                  protocol.period, int(method == "rush_larsen")) == 0
    assert np.isnan(memory[:guard]).all() and np.isnan(memory[-guard:]).all()  # idle threads wrote nothing
    _, expected = integrate_cells(model, y0, params, dt=dt, n_steps=n_steps, save_every=save_every, method=method,
                                  backend="numpy", protocol=protocol)
    scale = np.abs(expected).max(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(Y / scale, expected / scale, rtol=0, atol=1e-10)
    assert np.abs(Y[-1, model.voltage_index] - Y[0, model.voltage_index]).max() > 1e-3  # the cells moved


@pytest.mark.gpu
@pytest.mark.parametrize("name, method, dt", [("mitchell_schaeffer", "rush_larsen", 0.05), ("tp06_epi", "rush_larsen", 0.01),
                                              ("tp06_epi", "euler", 0.001)])
def test_generated_kernel_on_the_gpu_matches_numpy(name: str, method: str, dt: float) -> None:
    """CuPy's own compile and launch of the generated kernel (FMA-contracted: a tolerance, not bitwise).
    Uses the committed bundles, so it runs on a GPU host without the finitewave packages."""
    from fhn_automl.physics import _euler_cuda

    reason = _euler_cuda.cuda_unavailable_reason()
    if reason is not None:
        pytest.skip(f"no CUDA here: {reason}")
    model = resolve_cell_model(str(Path(__file__).resolve().parents[2] / "benchmarks" / "models" / f"{name}.json"))
    n, n_steps = 300, int(round(3.0 / dt))
    rng = np.random.default_rng(9)
    params = np.repeat(model.parameter_values()[:, None], n, axis=1)
    params[model.parameter_names.index(model.varied[0])] *= rng.uniform(0.8, 1.2, n)
    y0 = np.repeat(model.default_state()[:, None], n, axis=1)
    protocol = StimulusProtocol(model.stimulus.amplitude, 1.0, 1000.0, start=0.5)
    # float64: the kernel itself (passed at 1e-8 on an H200, 2026-12-04). float32: it runs and stays close
    # to the float64 reference; measured there for TP06 Rush-Larsen at dt 0.01: up to 0.042 of a state's
    # scale on 3.7 % of the saved values, all in the upstroke after the stimulus (a float32 timing shift
    # of the steep rise), so the bound is 0.05, not the 0.01 first guessed
    for dtype, atol in ((np.float64, 1e-8), (np.float32, 5e-2)):
        _, actual = integrate_cells(model, y0, params, dt=dt, n_steps=n_steps, save_every=50, method=method,
                                    backend="cuda", protocol=protocol, dtype=dtype)
        _, expected = integrate_cells(model, y0, params, dt=dt, n_steps=n_steps, save_every=50, method=method,
                                      backend="numpy", protocol=protocol)
        scale = np.abs(expected).max(axis=(0, 2), keepdims=True)
        np.testing.assert_allclose(actual / scale, expected / scale, rtol=0, atol=atol, err_msg=str(dtype))


def test_launcher_runs_the_kernel_body_through_integrate_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``integrate_cells(backend="cuda")``'s own launch code (buffers, grid, argument list, layout) with
    NumPy standing in for CuPy and the host shim for the compiled kernel."""
    import sys
    import types

    model = resolve_cell_model("mitchell_schaeffer")
    launch = _host_kernel(model, tmp_path)
    fake = types.ModuleType("cupy")
    fake.empty, fake.asarray, fake.asnumpy, fake.isfinite = np.empty, np.asarray, np.asarray, np.isfinite
    monkeypatch.setitem(sys.modules, "cupy", fake)
    calls = []

    def kernel(grid, block, args):
        calls.append((grid, block))
        assert all(a.flags.c_contiguous for a in args if isinstance(a, np.ndarray))
        launch(grid[0], block[0], *args)

    monkeypatch.setattr(ionic_solvers, "cuda_function", lambda m, dtype: kernel)
    y0 = np.repeat(model.default_state()[:, None], 200, axis=1)
    _, actual = integrate_cells(model, y0, dt=0.05, n_steps=600, save_every=20, backend="cuda")
    _, expected = integrate_cells(model, y0, dt=0.05, n_steps=600, save_every=20, backend="numpy")
    assert calls == [((2,), (ionic_solvers.THREADS_PER_BLOCK,))]
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
    assert actual[:, 0].max() > 0.8  # the pulse at 10 ms fired
