"""The GPU Euler solver: the CUDA kernels in ``cuda/*.cu``, compiled by NVRTC and launched through CuPy.

CuPy is imported inside functions only, so this module imports anywhere; ``cuda_unavailable_reason``
says why the GPU path cannot run (no CuPy, no device). Kernels are registered per cell-model class
(:func:`register_cuda_kernel`): a source file in ``cuda/``, one ``extern "C"`` entry point per
dtype, and the model's constants in the kernel's argument order. A model without a registered kernel
still runs on the GPU through the generic array loop over ``model.rhs`` (with a warning).

Launch: one thread per trajectory, 256 threads per block; the kernel writes time-major
``(n_saved, n)`` output so a warp's stores coalesce (see ``cuda/fhn_euler.cu``).

Run on an H200 (CuPy 14.2, CUDA 13; benchmarks/RESULTS.md, issue 20): the ``gpu``-marked tests
compare it with the NumPy reference (bit for bit with ``--fmad=false``) wherever CUDA is present.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fhn_automl._package_data import package_data_dir
from fhn_automl.physics.cell_models import CellModel, FitzHughNagumo
from fhn_automl.physics._euler_numpy import euler_reference, n_saved_states, time_major_buffers

THREADS_PER_BLOCK = 256
#: where the .cu sources live: the repository's cuda/ folder (its copy in an installed wheel), or
#: $FHN_AUTOML_CUDA_DIR
CUDA_SOURCE_DIR = Path(os.environ.get("FHN_AUTOML_CUDA_DIR") or package_data_dir("cuda"))


@dataclass(frozen=True)
class CudaKernel:
    """One cell model's CUDA Euler kernel: source file, entry point per dtype, constants in order."""

    source: str
    entry_points: dict[str, str]
    constants: Callable[[CellModel], tuple[float, ...]]


_CUDA_KERNELS: dict[type, CudaKernel] = {}


def register_cuda_kernel(model_cls: type, kernel: CudaKernel) -> None:
    """Give ``model_cls`` a CUDA kernel; the entry points take ``(u0, w0, i_app, U, W, n, n_saved,
    save_every, dt, *constants)`` like ``fhn_euler_f32``."""
    _CUDA_KERNELS[model_cls] = kernel


register_cuda_kernel(FitzHughNagumo, CudaKernel(
    source="fhn_euler.cu",
    entry_points={"float32": "fhn_euler_f32", "float64": "fhn_euler_f64"},
    constants=lambda model: tuple(model.kernel_constants().values()),  # k, alpha, eps, beta, gamma
))


@functools.lru_cache(maxsize=1)
def cuda_unavailable_reason() -> str | None:
    """None when CuPy can run kernels here; otherwise why not (for the error message)."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises several types for a missing driver / runtime
        return f"CuPy cannot use CUDA ({type(error).__name__}: {error})"
    return None if count > 0 else "no CUDA device is visible"


def euler_cuda(model: CellModel, u0, w0, i_app, *, dt: float, n_steps: int, save_every: int,
               dtype: np.dtype, to_host: bool, out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """Solve on the current CUDA device; see :func:`fhn_automl.physics.euler.euler_trajectories`."""
    import cupy as cp

    u0 = cp.ascontiguousarray(cp.asarray(u0, dtype=dtype).reshape(-1))
    w0 = cp.ascontiguousarray(cp.asarray(w0, dtype=dtype).reshape(-1))
    if u0.shape != w0.shape:
        raise ValueError(f"u0 and w0 must have the same size, got {u0.size} and {w0.size}")
    i_app = cp.asarray(i_app, dtype=dtype)
    i_app = cp.ascontiguousarray(cp.broadcast_to(i_app.reshape(-1) if i_app.ndim else i_app, u0.shape))
    n_saved = n_saved_states(n_steps, save_every)
    entry = _CUDA_KERNELS.get(type(model))
    if entry is None:
        warnings.warn(f"no CUDA kernel is registered for {type(model).__name__}; using the generic CuPy "
                      "array loop", RuntimeWarning, stacklevel=3)
        U, W = euler_reference(model, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every, xp=cp,
                               out=out)
    else:
        U, W = time_major_buffers(out, n_saved, u0.size, dtype, cp)
        kernel = _compiled_function(entry.source, entry.entry_points[np.dtype(dtype).name])
        scalar = np.dtype(dtype).type  # CuPy passes NumPy scalars with their exact C type
        blocks = (u0.size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
        if u0.size:
            kernel((blocks,), (THREADS_PER_BLOCK,),
                   (u0, w0, i_app, U, W, np.int64(u0.size), np.int32(n_saved), np.int32(save_every),
                    scalar(dt), *(scalar(c) for c in entry.constants(model))))
        U, W = U.T, W.T
    if to_host:
        return cp.asnumpy(U), cp.asnumpy(W)
    return U, W


@functools.lru_cache(maxsize=None)
def _compiled_function(source: str, entry_point: str) -> Any:
    """The kernel function, compiled once per process (CuPy also caches the binary on disk)."""
    import cupy as cp

    path = CUDA_SOURCE_DIR / source
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel source {path} not found; set FHN_AUTOML_CUDA_DIR to the "
                                "repository's cuda/ folder")
    module = cp.RawModule(code=path.read_text())
    return module.get_function(entry_point)
