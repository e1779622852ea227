"""The NumPy reference loop of forward Euler and what every Euler backend shares.

The saved-state count and the time-major ``(n_saved, n)`` buffers are the layout contract of all
backends (see ``euler``); ``euler_reference`` is the generic loop the compiled kernels are tested
against and fall back to. ``euler``, ``_euler_cpu`` and ``_euler_cuda`` import this module, never
each other's front door, so the backends do not import ``euler`` back.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fhn_automl.physics.cell_models import CellModel


def n_saved_states(n_steps: int, save_every: int) -> int:
    """How many states a run keeps: the initial one plus every ``save_every``-th step."""
    return n_steps // save_every + 1


def euler_reference(model: CellModel, u0, w0, i_app, *, dt: float, n_steps: int, save_every: int = 1,
                    xp: Any = np, out: tuple[Any, Any] | None = None) -> tuple[Any, Any]:
    """The vectorised array loop, generic over ``model.rhs`` and the array module ``xp`` (NumPy or CuPy).

    Slow next to the compiled kernels (one pass over memory per operation), but it needs nothing
    beyond the model's ``rhs``, so it is both the reference they are tested against and the path
    for a new cell model before anyone writes a kernel for it. Computes in the dtype of ``u0``.
    """
    u = xp.array(u0, copy=True)
    w = xp.array(w0, copy=True).astype(u.dtype, copy=False)
    i_app = xp.broadcast_to(xp.asarray(i_app, dtype=u.dtype), u.shape)
    step = u.dtype.type(dt)
    U, W = time_major_buffers(out, n_saved_states(n_steps, save_every), u.size, u.dtype, xp)
    U[0], W[0] = u, w
    for n in range(1, n_steps + 1):
        du, dw = model.rhs(u, w, i_app)
        u = u + step * du
        w = w + step * dw
        if n % save_every == 0:
            U[n // save_every], W[n // save_every] = u, w
    return U.T, W.T


def time_major_buffers(out: tuple[Any, Any] | None, n_saved: int, n: int, dtype, xp: Any = np,
                       ) -> tuple[Any, Any]:
    """The ``(n_saved, n)`` output buffers: fresh ones, or ``out`` after checking it fits."""
    if out is None:
        return xp.empty((n_saved, n), dtype=dtype), xp.empty((n_saved, n), dtype=dtype)
    for buffer in out:
        if buffer.shape != (n_saved, n) or buffer.dtype != dtype:
            raise ValueError(f"out buffers must be time-major {(n_saved, n)} {np.dtype(dtype)}, "
                             f"got {buffer.shape} {buffer.dtype}")
    return out


def warn_numpy_fallback(reason: str) -> None:
    """One place for the 'slow path' warning, so users see why their CPU run is ~7x slower."""
    warnings.warn(f"Euler falls back to the NumPy loop ({reason}); expect ~7x less throughput",
                  RuntimeWarning, stacklevel=3)
