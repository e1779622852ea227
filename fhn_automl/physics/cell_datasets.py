"""Datasets of N-state cell models: one paced beat per cell, cells differing in their parameters.

``python -m fhn_automl.data --cell-model NAME_OR_PATH --out DIR`` calls :func:`build_cell_dataset`:

1. draw ``n_cells`` parameter sets: the model's ``varied`` parameters (or ``--vary``) by Latin hypercube in
   ``default * (1 +- spread)`` (clipped to their declared ranges), the others at their defaults;
2. pre-pace every cell ``n_beats_prepace`` beats (:mod:`prepacing`, cached in ``DIR/prepaced``);
3. solve one more beat per cell (Rush-Larsen by default, at the model's default dt), keeping a state
   every ``save_dt``;
4. split the cells in half, train and validation, and write ``train.parquet``, ``val.parquet`` and a
   ``manifest.json`` (request, model source and digest, solver, every file's SHA-256).

Rows: ``traj`` (int64), ``t`` (time within the beat), the varied parameters, then every state (float32;
column names are the model's state names). Everything is computed in memory before the first byte is
written, so an unstable dt or a parameter out of range leaves the disk untouched; files are written
atomically; a folder whose manifest matches the request and whose files match their checksums is reused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fhn_automl._atomic import write_atomically, write_text
from fhn_automl._provenance import git_commit
from fhn_automl.physics.datasets import DatasetError, file_sha256, prepare_output_dir
from fhn_automl.physics.ionic_model import IonicModel
from fhn_automl.physics.ionic_solvers import integrate_cells
from fhn_automl.physics.prepacing import prepace

__all__ = ["CELL_DATASET_FORMAT_VERSION", "build_cell_dataset", "sample_parameters"]

CELL_DATASET_FORMAT_VERSION = 1


def sample_parameters(model: IonicModel, n_cells: int, *, seed: int, spread: float = 0.3,
                      vary: tuple[str, ...] | None = None) -> np.ndarray:
    """``(n_params, n_cells)`` parameter sets: ``vary`` (default ``model.varied``) by Latin hypercube."""
    from scipy.stats import qmc

    vary = model.varied if vary is None else tuple(vary)
    defaults = model.parameter_values({})
    params = np.repeat(defaults[:, None], n_cells, axis=1)
    if vary:
        unit = qmc.LatinHypercube(d=len(vary), seed=np.random.default_rng(seed)).random(n_cells)
        by_name = {p.name: (i, p) for i, p in enumerate(model.parameters)}
        for column, name in enumerate(vary):
            if name not in by_name:
                raise DatasetError(f"{model.name} has no parameter {name!r} to vary")
            index, parameter = by_name[name]
            low = max(parameter.range[0], min(defaults[index] * (1 - spread), defaults[index] * (1 + spread)))
            high = min(parameter.range[1], max(defaults[index] * (1 - spread), defaults[index] * (1 + spread)))
            params[index] = low + unit[:, column] * (high - low)
    return params


def build_cell_dataset(model: IonicModel, out_dir: str | os.PathLike, *, n_cells: int = 64, seed: int = 0,
                       n_beats_prepace: int = 10, save_dt: float = 1.0, dt: float | None = None,
                       method: str = "rush_larsen", backend: str = "numba", spread: float = 0.3,
                       vary: tuple[str, ...] | None = None) -> Path:
    """Write (or reuse) the dataset; returns its absolute path. See the module docstring.

    ``vary``: the parameters drawn per cell (default ``model.varied``; models from files declare none,
    so their cells differ only if this names some)."""
    vary = model.varied if vary is None else tuple(vary)
    if n_cells < 2:
        raise DatasetError(f"--n-trajectories must be at least 2 (train and validation), got {n_cells}")
    dt = model.default_dt if dt is None else dt
    save_every = int(round(save_dt / dt))
    if save_every < 1 or abs(save_every * dt - save_dt) > 1e-9 * save_dt:
        raise DatasetError(f"the save spacing {save_dt:g} is not a multiple of dt = {dt:g}")
    period = model.stimulus.period
    if period <= 0:
        raise DatasetError(f"{model.name}: a beat dataset needs a periodic stimulus")
    n_steps = int(round(period / dt))
    request = {"format": CELL_DATASET_FORMAT_VERSION, "model": model.name, "model_digest": model.digest,
               "n_cells": n_cells, "seed": seed, "n_beats_prepace": n_beats_prepace, "save_dt": save_dt, "dt": dt,
               "method": method, "spread": spread, "varied": list(vary)}
    out = Path(out_dir)
    reused = _reusable(out, request)
    if reused is not None:
        return reused
    # everything in memory first: a bad dt or parameter raises before anything is written
    params = sample_parameters(model, n_cells, seed=seed, spread=spread, vary=vary)
    state = prepace(model, n_beats=n_beats_prepace, params=params, dt=dt, method=method, backend=backend)
    t, Y = integrate_cells(model, state, params, dt=dt, n_steps=n_steps, save_every=save_every, method=method,
                           backend=backend)
    tables = {}
    half = n_cells // 2
    for split, cells in (("train", range(0, half)), ("val", range(half, n_cells))):
        tables[f"{split}.parquet"] = _table(model, t, Y, params, list(cells), vary)
    out = prepare_output_dir(out)
    files = {}
    for name, table in tables.items():
        write_atomically(out / name, lambda path, table=table: pq.write_table(table, path))
        files[name] = {"sha256": file_sha256(out / name), "rows": table.num_rows}
    # the pre-paced states travel with the dataset: a consumer restarts cells from them
    write_atomically(out / "prepaced.npz", lambda path: _save_states(path, state, params, model))
    files["prepaced.npz"] = {"sha256": file_sha256(out / "prepaced.npz"), "rows": n_cells}
    manifest = {"request": request, "model": {"name": model.name, "source": model.source,
                                              "states": [vars(s) for s in model.states],
                                              "voltage": model.voltage, "gates": list(model.gates),
                                              "stimulus": vars(model.stimulus)},
                "solver": {"method": method, "dt": dt, "backend": backend, "save_every": save_every},
                "commit": git_commit(), "files": files}
    write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=float) + "\n")
    return out


def _save_states(path: Path, state: np.ndarray, params: np.ndarray, model: IonicModel) -> None:
    with open(path, "wb") as handle:  # np.savez on a name would append '.npz' to the temporary
        np.savez(handle, state=state, params=params, state_names=np.array(model.state_names),
                 parameter_names=np.array(model.parameter_names))


def _table(model: IonicModel, t: np.ndarray, Y: np.ndarray, params: np.ndarray, cells: list[int],
           vary: tuple[str, ...]) -> pa.Table:
    n_t = t.size
    columns: dict[str, Any] = {"traj": np.repeat(np.asarray(cells, dtype=np.int64), n_t),
                               "t": np.tile(t.astype(np.float32), len(cells))}
    names = model.parameter_names
    for name in vary:
        columns[name] = np.repeat(params[names.index(name), cells].astype(np.float32), n_t)
    for k, state in enumerate(model.state_names):
        columns[state] = Y[:, k, cells].T.reshape(-1).astype(np.float32)
    return pa.table(columns)


def _reusable(out: Path, request: dict) -> Path | None:
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("request") != json.loads(json.dumps(request)):
        return None
    for name, record in manifest.get("files", {}).items():
        if not (out / name).is_file() or file_sha256(out / name) != record["sha256"]:
            return None
    return out.resolve()


