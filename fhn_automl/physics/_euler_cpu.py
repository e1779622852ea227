"""The CPU twin of the CUDA Euler kernel: numba, blocks of 64 trajectories, parallel over blocks.

Why blocks: stepping one trajectory at a time is a chain of dependent scalar operations; stepping a
block of 64 side by side gives the compiler an inner loop with independent iterations that it turns
into SIMD instructions, and the block's state stays in L1 for all ``n_steps``. ``prange`` over the
blocks uses every core. FACTS.md measured ~10x over the NumPy loop this way on 2 cores.

Cell models plug in by class: :func:`register_numba_rhs` takes a plain scalar right-hand side
``rhs(u, w, i_app, constants) -> (du, dw)`` that numba compiles and inlines into the same blocked
loop, so a second model needs no change here. The constants arrive as a tuple of the compute dtype
(never float64 literals in float32 code, which would silently widen the arithmetic).

numba is imported lazily: without it the solver warns and uses the NumPy loop.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fhn_automl.physics.cell_models import CellModel, FitzHughNagumo
from fhn_automl.physics._euler_numpy import n_saved_states, time_major_buffers, warn_numpy_fallback

#: trajectories stepped side by side: 64 float32 = 8 AVX2 registers per variable, 2 cache lines
BLOCK = 64


@dataclass(frozen=True)
class NumbaRhs:
    """How numba evaluates one cell model: a scalar rhs and the model's constants, in its order."""

    rhs: Callable[..., tuple[Any, Any]]
    constants: Callable[[CellModel], tuple[float, ...]]


_NUMBA_RHS: dict[type, NumbaRhs] = {}
_COMPILED: dict[type, Any] = {}


def register_numba_rhs(model_cls: type, rhs: Callable[..., tuple[Any, Any]],
                       constants: Callable[[CellModel], tuple[float, ...]] | None = None) -> None:
    """Give ``model_cls`` a compiled CPU kernel. ``rhs(u, w, i_app, c)`` must use only arithmetic on
    its scalars and the tuple ``c`` (default: ``model.kernel_constants()`` values, in dict order)."""
    _NUMBA_RHS[model_cls] = NumbaRhs(rhs, constants or (lambda model: tuple(model.kernel_constants().values())))
    _COMPILED.pop(model_cls, None)


def _fhn_rhs(u, w, i_app, c):
    k, alpha, eps, beta, gamma = c
    # u (u - alpha)(1 - u) written without the literal 1.0, which would widen float32 to float64
    du = k * ((u - alpha) * (u - u * u) - w + i_app)
    dw = eps * (beta * u - gamma * w)
    return du, dw


register_numba_rhs(FitzHughNagumo, _fhn_rhs)


def numba_available() -> bool:
    return importlib.util.find_spec("numba") is not None


def cpu_kernel_for(model: CellModel) -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """The compiled CPU solver for ``model``, or None (after a warning) when there is none to use."""
    entry = _NUMBA_RHS.get(type(model))
    if entry is None:
        warn_numpy_fallback(f"no numba kernel is registered for {type(model).__name__}")
        return None
    if not numba_available():
        warn_numpy_fallback("numba is not installed: `pip install numba`")
        return None
    kernel = _COMPILED.get(type(model))
    if kernel is None:
        kernel = _COMPILED[type(model)] = _build_blocked_kernel(entry.rhs)
    constants = entry.constants(model)

    def solve(u0: np.ndarray, w0: np.ndarray, i_app: np.ndarray, *, dt: float, n_steps: int,
              save_every: int, out: tuple[np.ndarray, np.ndarray] | None = None,
              ) -> tuple[np.ndarray, np.ndarray]:
        scalar = u0.dtype.type
        U, W = time_major_buffers(out, n_saved_states(n_steps, save_every), u0.size, u0.dtype)
        kernel(u0, w0, i_app, scalar(dt), save_every, tuple(scalar(c) for c in constants), U, W)
        return U.T, W.T

    return solve


def _build_blocked_kernel(rhs: Callable[..., tuple[Any, Any]]):
    import numba

    inline_rhs = numba.njit(inline="always")(rhs)

    @numba.njit(parallel=True, nogil=True)
    def blocked_euler(u0, w0, i_app, dt, save_every, constants, U, W):  # pragma: no cover (jitted)
        n = u0.size
        n_saved = U.shape[0]
        for block in numba.prange((n + BLOCK - 1) // BLOCK):
            start = block * BLOCK
            used = min(BLOCK, n - start)
            u = np.empty(BLOCK, dtype=u0.dtype)
            w = np.empty(BLOCK, dtype=u0.dtype)
            i = np.empty(BLOCK, dtype=u0.dtype)
            for lane in range(BLOCK):
                # lanes past the end of a short last block repeat a real state: no NaN or
                # denormal garbage to slow the arithmetic; they are never stored
                src = start + lane if lane < used else start
                u[lane] = u0[src]
                w[lane] = w0[src]
                i[lane] = i_app[src]
            for lane in range(used):
                U[0, start + lane] = u[lane]
                W[0, start + lane] = w[lane]
            # steps after the last saved state change nothing anyone sees: run
            # (n_saved - 1) * save_every of them, with no modulo test in the hot loop
            for row in range(1, n_saved):
                for _ in range(save_every):
                    for lane in range(BLOCK):  # independent lanes: this is the loop that vectorises
                        du, dw = inline_rhs(u[lane], w[lane], i[lane], constants)
                        u[lane] = u[lane] + dt * du
                        w[lane] = w[lane] + dt * dw
                for lane in range(used):
                    U[row, start + lane] = u[lane]
                    W[row, start + lane] = w[lane]

    return blocked_euler
