"""Pre-pacing: pace a cell model for N beats so that a problem starts from its steady (paced) beat.

A published initial state is rarely the model's steady state at a given cycle length: TP06's
concentrations drift for hundreds of beats. Problems, datasets and reference biomarkers therefore
start from the state after ``n_beats`` beats of the model's stimulus at ``period``. Pacing many cells
(one per parameter set) costs seconds to minutes, so the result is cached as a small ``.npz`` next to
the datasets, keyed by the model's digest, the parameters and the pacing request; a cache file is
only ever read back when every one of those matches.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from fhn_automl._atomic import write_atomically
from fhn_automl.physics.ionic_model import IonicModel
from fhn_automl.physics.ionic_solvers import integrate_cells

__all__ = ["prepace"]


def prepace(model: IonicModel, *, n_beats: int, period: float | None = None, params: np.ndarray | None = None,
            y0: np.ndarray | None = None, dt: float | None = None, method: str = "rush_larsen",
            backend: str = "numba", cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """The state after ``n_beats`` beats (``(n_states,)``, or ``(n_states, n)`` for per-cell ``params``).

    ``period``: the cycle length (default: the model's protocol); ``dt``: the model's default step;
    ``cache_dir``: where to keep / find the result (None: no cache).
    """
    if n_beats < 0:
        raise ValueError(f"n_beats must be >= 0, got {n_beats}")
    protocol = model.stimulus if period is None else model.stimulus.with_period(period)
    if protocol.period <= 0:
        raise ValueError(f"{model.name}: pre-pacing needs a periodic stimulus (period > 0)")
    dt = model.default_dt if dt is None else dt
    steps_per_beat = int(round(protocol.period / dt))
    if abs(steps_per_beat * dt - protocol.period) > 1e-9 * protocol.period:
        raise ValueError(f"dt = {dt:g} does not divide the cycle length {protocol.period:g}")
    params = model.parameter_values() if params is None else np.asarray(params, dtype=np.float64)
    y0 = model.default_state() if y0 is None else np.asarray(y0, dtype=np.float64)
    single = params.ndim == 1 and y0.ndim == 1
    request = {"model": model.name, "digest": model.digest, "n_beats": n_beats, "protocol": repr(protocol),
               "dt": dt, "method": method,
               "params": hashlib.sha256(np.ascontiguousarray(params).tobytes()).hexdigest(),
               "y0": hashlib.sha256(np.ascontiguousarray(y0).tobytes()).hexdigest()}
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"prepaced-{model.name}-{key}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if json.loads(str(cached["request"])) == request:
                return cached["state"]
    state = y0 if y0.ndim == 2 else y0[:, None]
    if params.ndim == 2 and state.shape[1] == 1:
        state = np.repeat(state, params.shape[1], axis=1)
    # one beat per call keeps the memory to two saved states whatever n_beats
    for _ in range(n_beats):
        _, Y = integrate_cells(model, state, params, dt=dt, n_steps=steps_per_beat, save_every=steps_per_beat,
                               method=method, backend=backend, protocol=protocol)
        state = Y[-1]
    state = state[:, 0] if single else state
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda temporary: _save(temporary, state, request))
    return state


def _save(path: Path, state: np.ndarray, request: dict) -> None:
    with open(path, "wb") as handle:  # np.savez on a name would append '.npz' to the temporary
        np.savez(handle, state=state, request=np.array(json.dumps(request, sort_keys=True)))
