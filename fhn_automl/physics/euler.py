"""Forward Euler for two-variable cell models, on the CPU (numba / NumPy) or the GPU (CuPy kernel).

One front door, :func:`euler_trajectories`, with the backend as an argument:

- ``cpu``: the numba kernel of ``_euler_cpu`` (blocks of 64 trajectories, parallel over blocks), the
  baseline every reported speed-up is measured against; NumPy with a warning when numba is missing.
- ``cuda``: the CUDA kernel in ``cuda/fhn_euler.cu``, launched through CuPy (``_euler_cuda``).
- ``numpy``: the vectorised NumPy loop of ``_euler_numpy``, generic over ``model.rhs``: the reference
  the compiled kernels are tested against, and the path for a cell model with no compiled kernel yet.
- ``auto``: ``cuda`` when CuPy sees a GPU, else ``cpu``.

Every backend stores the saved states time-major, ``(n_saved, n)``, because that is the layout in
which the GPU's threads (one per trajectory) write coalesced and the CPU's inner loop writes
contiguous vectors; callers get the ``(n, n_saved)`` view of it (``U.T``), so ``U[i]`` is trajectory
``i`` as the contract says, with no copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from fhn_automl.physics import _euler_cpu, _euler_cuda  # both import numba / CuPy only inside functions
from fhn_automl.physics._euler_numpy import euler_reference, n_saved_states, time_major_buffers
from fhn_automl.physics.cell_models import CellModel

__all__ = ["BACKENDS", "CudaUnavailableError", "euler_reference", "euler_trajectories",
           "iter_euler_chunks", "n_saved_states", "resolve_backend", "time_major_buffers"]

BACKENDS = ("auto", "cpu", "cuda", "numpy")


class CudaUnavailableError(RuntimeError):
    """The CUDA backend was asked for on a machine without CuPy or without a usable GPU."""


def resolve_backend(backend: str) -> str:
    """Turn ``auto`` into ``cuda`` or ``cpu``; check that ``cuda`` can run; reject unknown names.

    Raises :class:`CudaUnavailableError` (saying what to install) for ``cuda`` without CuPy / a GPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown Euler backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "numpy" or backend == "cpu":
        return backend
    problem = _euler_cuda.cuda_unavailable_reason()
    if backend == "auto":
        return "cpu" if problem else "cuda"
    if problem:
        raise CudaUnavailableError(
            f"the CUDA Euler backend needs CuPy and a CUDA GPU: {problem}. Install CuPy with "
            "`pip install -e '.[cuda]'` (cupy-cuda12x; cupy-cuda13x for CUDA 13), or use the 'cpu' backend.")
    return "cuda"


def euler_trajectories(model: CellModel, u0, w0, i_app, *, dt: float, n_steps: int, save_every: int = 1,
                       backend: str = "auto", dtype=np.float32, to_host: bool = True,
                       out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """Integrate ``n`` trajectories of ``model`` with forward Euler.

    ``u0``, ``w0`` are the ``n`` initial states; ``i_app`` is a scalar or ``n`` applied currents.
    Returns ``(U, W)`` of shape ``(n, n_steps // save_every + 1)``; column 0 is the initial state,
    column ``j`` the state after ``j * save_every`` steps. The arrays are transposed views of
    time-major storage (see the module docstring); ``np.ascontiguousarray`` them if a C-order copy
    is needed. ``dtype`` (float32 or float64) is the precision the steps are computed in.

    ``to_host=False`` with the CUDA backend returns CuPy arrays and skips the device-to-host copy
    (for benchmarks and for GPU consumers); the CPU backends always return NumPy arrays.

    ``out=(U_t, W_t)``: time-major buffers of shape ``(n_saved, n)`` and ``dtype`` (NumPy, or CuPy for
    the CUDA backend) to write into instead of allocating; the result is their transposed views.
    Reusing buffers across chunks saves the page faults of fresh allocations, which on these
    machines cost more than the arithmetic of a short run.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if n_steps < 0 or save_every < 1:
        raise ValueError(f"need n_steps >= 0 and save_every >= 1, got {n_steps} and {save_every}")
    backend = resolve_backend(backend)
    if backend == "cuda":
        return _euler_cuda.euler_cuda(model, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every,
                                      dtype=dtype, to_host=to_host, out=out)
    u0, w0, i_app = _host_inputs(u0, w0, i_app, dtype)
    if backend == "cpu":
        kernel = _euler_cpu.cpu_kernel_for(model)
        if kernel is not None:
            return kernel(u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every, out=out)
    return euler_reference(model, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every, xp=np, out=out)


def iter_euler_chunks(model: CellModel, u0, w0, i_app, *, chunk_size: int, dt: float, n_steps: int,
                      save_every: int = 1, backend: str = "auto", dtype=np.float32,
                      reuse_buffers: bool = False) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Solve in chunks of ``chunk_size`` trajectories so the saved states never have to fit at once.

    Yields ``(rows, U, W)`` with ``rows`` the slice of the inputs the chunk covers. The thesis
    workload (16M trajectories x 11 states x 2 variables) is 1.4 GB in float32; chunks keep it to
    what the consumer holds. With ``reuse_buffers=True`` every chunk is written into the same two
    buffers, so a yielded ``(U, W)`` is valid only until the next chunk is requested: for consumers
    that write each chunk out at once (datasets, benchmarks) it avoids re-faulting fresh memory.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    backend = resolve_backend(backend)  # once, not per chunk
    u0 = np.asarray(u0)
    w0 = np.asarray(w0)
    i_app = np.broadcast_to(np.asarray(i_app), u0.shape)
    buffers = None
    if reuse_buffers and backend != "cuda":
        shape = (n_saved_states(n_steps, save_every), min(chunk_size, u0.size))
        buffers = (np.empty(shape, dtype=dtype), np.empty(shape, dtype=dtype))
    for start in range(0, u0.size, chunk_size):
        rows = slice(start, min(start + chunk_size, u0.size))
        # a short last chunk gets fresh buffers: a column slice is non-contiguous, a new numba type
        full = buffers is not None and rows.stop - start == buffers[0].shape[1]
        out = buffers if full else None
        U, W = euler_trajectories(model, u0[rows], w0[rows], i_app[rows], dt=dt, n_steps=n_steps,
                                  save_every=save_every, backend=backend, dtype=dtype, out=out)
        yield rows, U, W


def _host_inputs(u0, w0, i_app, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat, contiguous, writeable, same-dtype arrays (copies only where needed).

    Always the same array flavour, because numba compiles one specialisation per flavour
    (contiguity, read-only flag) and each costs ~2 s of compilation.
    """
    u0 = np.require(np.asarray(u0, dtype=dtype).reshape(-1), requirements=["C", "W"])
    w0 = np.require(np.asarray(w0, dtype=dtype).reshape(-1), requirements=["C", "W"])
    if u0.shape != w0.shape:
        raise ValueError(f"u0 and w0 must have the same size, got {u0.size} and {w0.size}")
    i_app = np.asarray(i_app, dtype=dtype)
    if i_app.ndim and i_app.size != u0.size:
        raise ValueError(f"i_app must be a scalar or have {u0.size} values, got {i_app.size}")
    i_app = np.require(np.broadcast_to(i_app.reshape(-1) if i_app.ndim else i_app, u0.shape),
                       requirements=["C", "W"])
    return u0, w0, i_app
