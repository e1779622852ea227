"""Forward Euler for cell models, on the CPU (NumPy) or the GPU (CuPy kernel in cuda/).

Placeholder NumPy path; the numba CPU twin and the CuPy kernel replace the internals behind the
same signature.
"""

from __future__ import annotations

import numpy as np

from fhn_automl.physics.cell_models import CellModel


def euler_trajectories(model: CellModel, u0, w0, i_app, *, dt: float, n_steps: int, save_every: int = 1,
                       backend: str = "auto", dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``n`` trajectories; returns (U, W) of shape (n, n_steps // save_every + 1)."""
    u = np.asarray(u0, dtype=dtype).copy()
    w = np.asarray(w0, dtype=dtype).copy()
    i_app = np.broadcast_to(np.asarray(i_app, dtype=dtype), u.shape)
    n_saved = n_steps // save_every + 1
    U = np.empty((u.size, n_saved), dtype=dtype)
    W = np.empty((u.size, n_saved), dtype=dtype)
    U[:, 0], W[:, 0] = u, w
    step = dtype(dt)
    for n in range(1, n_steps + 1):
        du, dw = model.rhs(u, w, i_app)
        u, w = u + step * du, w + step * dw
        if n % save_every == 0:
            U[:, n // save_every], W[:, n // save_every] = u, w
    return U, W
