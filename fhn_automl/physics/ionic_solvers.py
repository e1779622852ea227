"""Explicit solvers for N-state cell models, vectorised over many cells: forward Euler and Rush-Larsen.

One front door, :func:`integrate_cells`, with the backend as an argument:

- ``numpy``: the array loop over the model's generated ``rhs`` (any ``xp``): the reference the
  compiled backends are tested against;
- ``numba`` (alias ``cpu``): the CPU twin, one generated scalar step inlined into a loop over cells,
  parallel over cells (``prange``), computed in float64 whatever the storage dtype;
- ``cuda``: the model's generated CUDA kernel (one thread per cell), compiled by NVRTC through CuPy.

Every backend computes the same thing: ``n_steps`` steps of ``dt`` from ``t0``, the stimulus evaluated
at the start of each step (``StimulusProtocol.current``), every ``save_every``-th state kept. Output is
time-major ``(n_saved, n_states, n)`` (one row per saved time, cells contiguous), with ``t`` the saved
times. A run whose states leave the finite numbers raises :class:`UnstableStepError` naming the model,
the method and dt: the dt is too large for the method (Euler on TP06's sodium gates needs dt below
~0.1 ms; Rush-Larsen takes larger steps), and nothing of such a run is returned or written.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fhn_automl.physics._ionic_codegen import exec_generated
from fhn_automl.physics.ionic_model import CellModelError, IonicModel, StimulusProtocol

__all__ = ["BACKENDS", "METHODS", "UnstableStepError", "integrate_cells", "n_saved_states"]

METHODS = ("euler", "rush_larsen")
BACKENDS = ("numpy", "numba", "cpu", "cuda")
THREADS_PER_BLOCK = 128


class UnstableStepError(CellModelError):
    """The solution left the finite numbers: the step is too large for the method."""


def n_saved_states(n_steps: int, save_every: int) -> int:
    return n_steps // save_every + 1


def integrate_cells(model: IonicModel, y0: Any, params: Any = None, *, dt: float, n_steps: int,
                    save_every: int = 1, method: str = "rush_larsen", backend: str = "numpy",
                    protocol: StimulusProtocol | None = None, t0: float = 0.0, dtype: Any = np.float64,
                    check_finite: bool = True, to_host: bool = True) -> tuple[np.ndarray, Any]:
    """Integrate ``n`` cells; returns ``(t, Y)`` with ``Y`` of shape ``(n_saved, n_states, n)``.

    ``y0``: ``(n_states,)`` (one cell) or ``(n_states, n)``; ``params``: None (defaults), ``(n_params,)``
    or ``(n_params, n)``, checked against the declared ranges; ``protocol``: the model's own by default.
    ``to_host=False`` with ``cuda`` returns CuPy arrays (and skips the finiteness check's copy).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not (dt > 0 and math.isfinite(dt)) or n_steps < 0 or save_every < 1:
        raise ValueError(f"need dt > 0, n_steps >= 0 and save_every >= 1, got {dt}, {n_steps}, {save_every}")
    dtype = np.dtype(dtype)
    protocol = protocol or model.stimulus
    y0 = np.asarray(y0, dtype=np.float64)
    y0 = y0.reshape(model.n_states, -1) if y0.ndim == 1 else y0
    if y0.shape[0] != model.n_states:
        raise ValueError(f"{model.name} has {model.n_states} states; y0 has {y0.shape[0]} rows")
    n = y0.shape[1]
    params = model.parameter_values() if params is None else np.asarray(params, dtype=np.float64)
    model.check_parameters(params)
    params = np.ascontiguousarray(np.broadcast_to(params.reshape(len(model.parameters), -1),
                                                  (len(model.parameters), n)))
    t = t0 + dt * save_every * np.arange(n_saved_states(n_steps, save_every))
    rush_larsen = method == "rush_larsen"
    if backend == "numpy":
        Y = _integrate_numpy(model, y0.astype(dtype), params.astype(dtype), dt, n_steps, save_every, rush_larsen,
                             protocol, t0, np)
    elif backend in ("numba", "cpu"):
        Y = _integrate_numba(model, y0, params, dt, n_steps, save_every, rush_larsen, protocol, t0, dtype)
    else:
        Y = _integrate_cuda(model, y0, params, dt, n_steps, save_every, rush_larsen, protocol, t0, dtype)
        if to_host:
            import cupy

            Y = cupy.asnumpy(Y)
        elif check_finite:
            import cupy

            if not bool(cupy.isfinite(Y).all()):
                _raise_unstable(model, method, dt, t, cupy.asnumpy(Y))
            return t, Y
    if check_finite and not np.isfinite(Y).all():
        _raise_unstable(model, method, dt, t, Y)
    return t, Y


def _raise_unstable(model: IonicModel, method: str, dt: float, t: np.ndarray, Y: np.ndarray) -> None:
    first = int(np.argmax(~np.isfinite(Y).reshape(Y.shape[0], -1).all(axis=1)))
    raise UnstableStepError(
        f"{model.name}: {method} with dt = {dt:g} {model.time_unit} is unstable (states not finite by "
        f"t = {t[first]:g} {model.time_unit}); take a smaller dt (default for this model: {model.default_dt:g})")


def _integrate_numpy(model: IonicModel, y0: Any, params: Any, dt: float, n_steps: int, save_every: int,
                     rush_larsen: bool, protocol: StimulusProtocol, t0: float, xp: Any) -> Any:
    """The reference loop; ``xp`` may be NumPy or CuPy (arrays of the same module)."""
    n_saved = n_saved_states(n_steps, save_every)
    Y = xp.empty((n_saved, model.n_states, y0.shape[1]), dtype=y0.dtype)
    y = [y0[i].copy() for i in range(model.n_states)]
    p = [params[i] for i in range(params.shape[0])]
    Y[0] = y0
    gates = model._gate_indices
    step = y0.dtype.type(dt)
    with np.errstate(all="ignore"):  # where() evaluates both branches; a discarded one may overflow
        for k in range(n_steps):
            i_stim = y0.dtype.type(protocol.current(np.float64(t0 + k * dt)))
            if rush_larsen:
                derivatives, slopes = model.rush_larsen_rates(y, i_stim, p, xp)
                slope_of = dict(zip(gates, slopes))
                y = [y[i] + derivatives[i] * (xp.expm1(slope_of[i] * step) / slope_of[i]) if i in slope_of
                     else y[i] + step * derivatives[i] for i in range(model.n_states)]
            else:
                derivatives = model.rhs(y, i_stim, p, xp)
                y = [y[i] + step * derivatives[i] for i in range(model.n_states)]
            if (k + 1) % save_every == 0:
                Y[(k + 1) // save_every] = xp.stack(y)
    return Y


# ------------------------------------------------------------------------------------------ numba


def _numba_kernel(model: IonicModel) -> Any:
    """The compiled cell loop for ``model`` (compiled once per model object, ~seconds for TP06)."""
    if "numba_kernel" in model._cache:
        return model._cache["numba_kernel"]
    try:
        import numba
    except ImportError:
        raise RuntimeError("the numba backend needs numba: pip install numba") from None

    step = numba.njit(inline="always", fastmath=False)(
        exec_generated(model.numba_source, "step", f"<{model.name} numba step>", {"math": math}))
    n_states = model.n_states

    @numba.njit(parallel=True, nogil=True)
    def run(Y0, P, out, dt, t0, amplitude, start, duration, period, save_every, rush_larsen):  # pragma: no cover
        n = Y0.shape[1]
        n_saved = out.shape[0]
        for c in numba.prange(n):
            y = np.empty(n_states, dtype=np.float64)
            p = np.empty(P.shape[0], dtype=np.float64)
            for k in range(n_states):
                y[k] = Y0[k, c]
                out[0, k, c] = y[k]
            for k in range(P.shape[0]):
                p[k] = P[k, c]
            steps = 0
            for row in range(1, n_saved):
                for _ in range(save_every):
                    t = t0 + steps * dt
                    since = t - start
                    if period > 0:
                        since = since - math.floor(since / period) * period
                    i_stim = amplitude if (t >= start and since < duration) else 0.0
                    step(y, p, i_stim, dt, rush_larsen)
                    steps += 1
                for k in range(n_states):
                    out[row, k, c] = y[k]

    model._cache["numba_kernel"] = run
    return run


def _integrate_numba(model: IonicModel, y0: np.ndarray, params: np.ndarray, dt: float, n_steps: int,
                     save_every: int, rush_larsen: bool, protocol: StimulusProtocol, t0: float,
                     dtype: np.dtype) -> np.ndarray:
    kernel = _numba_kernel(model)
    out = np.empty((n_saved_states(n_steps, save_every), model.n_states, y0.shape[1]), dtype=dtype)
    with np.errstate(all="ignore"):
        kernel(np.ascontiguousarray(y0), params, out, float(dt), float(t0), float(protocol.amplitude),
               float(protocol.start), float(protocol.duration), float(protocol.period), int(save_every),
               bool(rush_larsen))
    return out


# ------------------------------------------------------------------------------------------- CUDA


def _integrate_cuda(model: IonicModel, y0: np.ndarray, params: np.ndarray, dt: float, n_steps: int,
                    save_every: int, rush_larsen: bool, protocol: StimulusProtocol, t0: float,
                    dtype: np.dtype) -> Any:
    import cupy as cp

    n = y0.shape[1]
    n_saved = n_saved_states(n_steps, save_every)
    Y = cp.empty((n_saved, model.n_states, n), dtype=dtype)
    kernel = cuda_function(model, dtype)
    scalar = dtype.type
    if n:
        kernel(((n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK,), (THREADS_PER_BLOCK,),
               cuda_arguments(cp.asarray(y0, dtype=dtype), cp.asarray(params, dtype=dtype), Y, n, n_saved,
                              save_every, scalar(dt), t0, protocol, rush_larsen))
    return Y


def cuda_arguments(y0: Any, params: Any, Y: Any, n: int, n_saved: int, save_every: int, dt: Any, t0: float,
                   protocol: StimulusProtocol, rush_larsen: bool) -> tuple:
    """The kernel's argument list, typed as its C signature (``_ionic_codegen.cuda_kernel_source``)."""
    return (y0, params, Y, np.int64(n), np.int32(n_saved), np.int32(save_every), dt, np.float64(t0),
            np.float64(protocol.amplitude), np.float64(protocol.start), np.float64(protocol.duration),
            np.float64(protocol.period), np.int32(rush_larsen))


def cuda_function(model: IonicModel, dtype: np.dtype) -> Any:
    """The compiled entry point for ``dtype`` (CuPy caches the binary on disk as well)."""
    key = ("cuda_function", np.dtype(dtype).name)
    if key not in model._cache:
        import cupy as cp

        suffix = {"float32": "f32", "float64": "f64"}[np.dtype(dtype).name]
        module = cp.RawModule(code=model.cuda_source())
        model._cache[key] = module.get_function(f"{model.cuda_entry_prefix}_{suffix}")
    return model._cache[key]
