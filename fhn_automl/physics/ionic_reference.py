"""The independent stiff reference for N-state cell models: SciPy's BDF (or LSODA) at tight tolerances.

Independent of the explicit solvers in every way that matters: an implicit, adaptive, variable-order
method in float64, with error control at ``rtol = 1e-8`` (``atol = 1e-10``), that shares with them
only the model's right-hand side. The stimulus is a discontinuity, so the integration restarts at
every pulse edge (a step that straddles an edge would smear the pulse) and the step inside a pulse is
bounded by its duration. Every error quoted for these models (``benchmarks/cell_solvers.py``,
``benchmarks/RESULTS.md``) is measured against this.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from fhn_automl.physics.ionic_model import CellModelError, IonicModel, StimulusProtocol

__all__ = ["ReferenceSolverError", "pulse_edges", "reference_solution"]


class ReferenceSolverError(CellModelError):
    """SciPy's integrator failed (its message is included)."""


def pulse_edges(protocol: StimulusProtocol, t0: float, t_end: float) -> list[float]:
    """The times in ``(t0, t_end)`` where the stimulus switches on or off, sorted."""
    edges = []
    if protocol.amplitude == 0 or not np.isfinite(protocol.duration):
        return edges
    start = protocol.start
    while start < t_end:
        for edge in (start, start + protocol.duration):
            if t0 < edge < t_end:
                edges.append(edge)
        if protocol.period <= 0:
            break
        start += protocol.period
    return sorted(edges)


def reference_solution(model: IonicModel, y0: np.ndarray, t_eval: np.ndarray, params: np.ndarray | None = None,
                       *, protocol: StimulusProtocol | None = None, method: str = "BDF", rtol: float = 1e-8,
                       atol: float = 1e-10) -> np.ndarray:
    """One cell's states at ``t_eval`` (sorted; ``t_eval[0]`` is the initial time): ``(len(t_eval), n_states)``."""
    protocol = protocol or model.stimulus
    params = model.parameter_values() if params is None else np.asarray(params, dtype=np.float64)
    model.check_parameters(params)
    t_eval = np.asarray(t_eval, dtype=np.float64)
    p = [np.float64(v) for v in params]
    edges = [t_eval[0], *pulse_edges(protocol, t_eval[0], t_eval[-1]), t_eval[-1]]
    out = np.empty((t_eval.size, model.n_states))
    out[0] = y0
    y = np.asarray(y0, dtype=np.float64)
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        current = float(protocol.current(np.float64(0.5 * (a + b))))

        def rhs(_t, state, current=current):
            with np.errstate(all="ignore"):
                return np.stack(np.broadcast_arrays(*model.rhs(state, current, p)))

        inside = (t_eval > a) & (t_eval <= b)
        times = np.unique(np.append(t_eval[inside], b))  # always end on the edge: the next start
        max_step = protocol.duration if current != 0 else np.inf
        solution = solve_ivp(rhs, (a, b), y, method=method, t_eval=times, rtol=rtol, atol=atol, vectorized=True,
                             max_step=max_step)
        if not solution.success:
            raise ReferenceSolverError(f"{model.name}: {method} failed on [{a:g}, {b:g}]: {solution.message}")
        out[inside] = solution.y.T[:int(inside.sum())]
        y = solution.y[:, -1]
    return out
