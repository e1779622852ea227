"""Datasets of N-state cell models: one paced beat per cell, cells differing in their parameters; and (for
``cell_state`` problems, :func:`build_state_dataset`) free trajectories from initial states.

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
from fhn_automl.physics.ap_metrics import action_potential_metrics
from fhn_automl.physics.dataset_files import DatasetError, file_sha256, prepare_output_dir
from fhn_automl.physics.ionic_model import IonicModel
from fhn_automl.physics.ionic_solvers import integrate_cells
from fhn_automl.physics.ionic_sources import resolve_cell_model
from fhn_automl.physics.prepacing import prepace
from fhn_automl.physics.problems import Problem

__all__ = ["CELL_DATASET_FORMAT_VERSION", "beat_from_states", "beat_model", "beat_parameters", "build_beat_dataset",
           "build_cell_dataset", "build_state_dataset", "prepaced_cells", "sample_parameters", "sample_scales",
           "solve_beats", "solve_states", "state_model"]

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




# ------------------------------------------------------------------------------------ beat problems

BEAT_DATASET_FORMAT_VERSION = 1


def beat_split_sizes(problem: Problem, n_cells: int | None) -> dict[str, int]:
    """Cells per split: the problem's own sizes, or ``n_cells`` in its train : val ratio (at least 1 each)."""
    if n_cells is None:
        return {"train": problem.n_train, "val": problem.n_val}
    if n_cells < 2:
        raise DatasetError(f"a beat dataset needs at least 2 cells (train and validation), got {n_cells}")
    n_val = min(n_cells - 1, max(1, round(n_cells * problem.n_val / (problem.n_train + problem.n_val))))
    return {"train": n_cells - n_val, "val": n_val}


def beat_model(problem: Problem) -> IonicModel:
    """The cell model of beat problem ``problem``, checked against what the problem expects of it."""
    setup = problem.beat
    if setup is None:
        raise DatasetError(f"{problem.name} is not a beat problem")
    model = resolve_cell_model(setup.cell_model)
    missing = [name for name in setup.scaled if name not in model.parameter_names]
    if missing:
        raise DatasetError(f"{problem.name}: {model.name} has no parameters {missing}; it has "
                           f"{', '.join(model.parameter_names)}")
    unknown = {out: state for out, state in setup.outputs.items() if state not in model.state_names}
    if unknown:
        raise DatasetError(f"{problem.name}: outputs {unknown} name no state of {model.name}")
    if abs(model.stimulus.period - setup.period) > 1e-9 * setup.period:
        raise DatasetError(f"{problem.name}: the problem's cycle is {setup.period:g} ms but {model.name}'s "
                           f"protocol paces every {model.stimulus.period:g} ms")
    return model


def beat_parameters(problem: Problem, model: IonicModel, scales: np.ndarray) -> np.ndarray:
    """``(n_params, n_cells)`` parameter sets: the defaults with the scaled ones multiplied by ``scales``
    (``(n_cells, n_scaled)``); a product outside a parameter's declared range raises ``ParameterRangeError``."""
    scales = np.atleast_2d(np.asarray(scales, dtype=np.float64))
    params = np.repeat(model.parameter_values({})[:, None], scales.shape[0], axis=1)
    by_name = {p.name: (i, p) for i, p in enumerate(model.parameters)}
    for column, name in enumerate(problem.beat.scaled):
        index, parameter = by_name[name]
        params[index] = params[index] * scales[:, column]
        for value in (params[index].min(), params[index].max()):
            parameter.check(float(value), model.name)
    return params


def prepaced_cells(problem: Problem, model: IonicModel, scales: np.ndarray, *, backend: str = "numba",
                   cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(params, states)`` of cells with scale factors ``scales``: their parameters ``(n_params, n)`` and their
    states ``(n_states, n)`` at the learned beat's start, paced as the problem defines it (``n_prepace`` beats at
    ``pace_dt`` from the model's default state)."""
    setup = problem.beat
    params = beat_parameters(problem, model, scales)
    states = prepace(model, n_beats=setup.n_prepace, params=params, dt=setup.pace_dt, method=setup.method,
                     backend=backend, cache_dir=cache_dir)
    return params, states


def beat_from_states(problem: Problem, model: IonicModel, states: np.ndarray, params: np.ndarray, *,
                     dt: float | None = None, method: str | None = None,
                     backend: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """One beat from ``states``: ``(t, Y)``, ``t`` the times within the beat (every ``save_dt``) and ``Y``
    ``(n_t, n_states, n_cells)``; ``dt`` / ``method`` default to the problem's (a solver sweep changes them)."""
    setup = problem.beat
    dt = setup.dt if dt is None else dt
    save_every = int(round(problem.save_dt / dt))
    if save_every < 1 or abs(save_every * dt - problem.save_dt) > 1e-9 * problem.save_dt:
        raise DatasetError(f"{problem.name}: the save spacing {problem.save_dt:g} is not a multiple of dt = {dt:g}")
    return integrate_cells(model, states, params, dt=dt, n_steps=int(round(setup.period / dt)),
                           save_every=save_every, method=method or setup.method, backend=backend)


def solve_beats(problem: Problem, model: IonicModel, scales: np.ndarray, *, backend: str = "numba",
                cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The learned beat of each cell: ``(t, Y, states)`` (:func:`prepaced_cells`, then :func:`beat_from_states`)."""
    params, states = prepaced_cells(problem, model, scales, backend=backend, cache_dir=cache_dir)
    t, Y = beat_from_states(problem, model, states, params, backend=backend)
    return t, Y, states


def sample_scales(problem: Problem, n_cells: int, seed: int, split: str) -> np.ndarray:
    """``(n_cells, n_scaled)`` scale factors by Latin hypercube over the problem's box, one independent
    stream per split (so validation cells are fresh parameter sets, not a share of the training draw)."""
    from scipy.stats import qmc

    streams = dict(zip(("train", "val", "bench"), np.random.SeedSequence(seed).spawn(3)))
    low, high = problem.beat.scale_range
    unit = qmc.LatinHypercube(d=len(problem.beat.scaled), seed=np.random.default_rng(streams[split])).random(n_cells)
    return low + unit * (high - low)


def build_beat_dataset(problem: Problem, out_dir: str | os.PathLike, *, n_cells: int | None = None, seed: int = 0,
                       backend: str = "numba", progress=None) -> Path:
    """Write (or reuse) the dataset of beat problem ``problem``: ``train.parquet`` / ``val.parquet`` with
    ``traj, t, <scale inputs>, <outputs>`` and a manifest (request, model, solver, AP metrics of the
    validation cells, every file's SHA-256). Everything is solved before the first byte is written."""
    model = beat_model(problem)
    setup = problem.beat
    sizes = beat_split_sizes(problem, n_cells)
    request = {"format": BEAT_DATASET_FORMAT_VERSION, "problem": problem.name, "model": model.name,
               "model_digest": model.digest, "sizes": sizes, "seed": seed, "scaled": list(setup.scaled),
               "scale_range": list(setup.scale_range), "n_prepace": setup.n_prepace, "pace_dt": setup.pace_dt,
               "dt": setup.dt, "method": setup.method, "save_dt": problem.save_dt, "outputs": dict(setup.outputs)}
    out = Path(out_dir)
    reused = _reusable(out, request)
    if reused is not None:
        return reused
    tables, summaries = {}, {}
    say = progress or (lambda message: None)
    for split, count in sizes.items():
        say(f"{problem.name}: pacing {count} {split} cells {setup.n_prepace} beats and solving their beat ({backend})")
        scales = sample_scales(problem, count, seed, split)
        t, Y, _ = solve_beats(problem, model, scales, backend=backend, cache_dir=out / "prepaced")
        tables[f"{split}.parquet"] = _split_table(model, t, Y, 0 if split == "train" else sizes["train"],
                                                  dict(zip(setup.scale_inputs, scales.T)), setup.outputs)
        V = Y[:, model.state_names.index(model.voltage), :].T
        metrics = action_potential_metrics(V, t)
        summaries[split] = {"cells": count, "cells_without_ap": int(np.isnan(metrics["apd90"]).sum()),
                            **{f"{key}_range": [float(np.nanmin(metrics[key])), float(np.nanmax(metrics[key]))]
                               for key in ("apd90", "resting_potential", "peak")
                               if np.isfinite(metrics[key]).any()}}
    return _write_problem_dataset(out, tables, {
        "problem": problem.name, "request": request,
        "model": {"name": model.name, "source": model.source, "voltage": model.voltage, "stimulus": vars(model.stimulus)},
        "solver": {"method": setup.method, "dt": setup.dt, "pace_dt": setup.pace_dt, "backend": backend,
                   "n_prepace": setup.n_prepace},
        "cells": summaries})


def _split_table(model: IonicModel, t: np.ndarray, Y: np.ndarray, first_traj: int, per_cell: dict[str, np.ndarray],
                 outputs: dict[str, str]) -> pa.Table:
    """One split's rows: ``traj`` (from ``first_traj``), ``t``, each per-cell input (a value per cell, repeated
    over its times), then each output's state from ``Y`` ``(n_t, n_states, n_cells)``."""
    count = Y.shape[2]
    columns: dict[str, Any] = {"traj": np.repeat(np.arange(count, dtype=np.int64) + first_traj, t.size),
                               "t": np.tile(t.astype(np.float32), count)}
    for name, values in per_cell.items():
        columns[name] = np.repeat(np.asarray(values).astype(np.float32), t.size)
    for output, state_name in outputs.items():
        columns[output] = Y[:, model.state_names.index(state_name), :].T.reshape(-1).astype(np.float32)
    return pa.table(columns)


def _write_problem_dataset(out: Path, tables: dict[str, pa.Table], manifest: dict[str, Any]) -> Path:
    """Write the splits atomically, then the manifest (``manifest`` plus the commit and every file's SHA-256)."""
    out = prepare_output_dir(out)
    files = {}
    for name, table in tables.items():
        write_atomically(out / name, lambda path, table=table: pq.write_table(table, path))
        files[name] = {"sha256": file_sha256(out / name), "rows": table.num_rows}
    manifest = {**manifest, "commit": git_commit(), "files": files}
    write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=float) + "\n")
    return out.resolve()


# ------------------------------------------------------------------------------- cell_state problems

STATE_DATASET_FORMAT_VERSION = 1


def state_model(problem: Problem) -> IonicModel:
    """The cell model of ``cell_state`` problem ``problem``; its outputs must be the model's whole state."""
    setup = problem.state
    if setup is None:
        raise DatasetError(f"{problem.name} is not a cell_state problem")
    model = resolve_cell_model(setup.cell_model)
    if sorted(setup.outputs.values()) != sorted(model.state_names):
        raise DatasetError(f"{problem.name}: its outputs {dict(setup.outputs)} must be every state of {model.name} "
                           f"({', '.join(model.state_names)}) once")
    return model


def sample_initial_states(problem: Problem, n: int, seed: int, split: str) -> np.ndarray:
    """``(n, n_outputs)`` initial states by Latin hypercube over the problem's domain, one independent stream
    per split (validation trajectories start from fresh initial states)."""
    from scipy.stats import qmc

    streams = dict(zip(("train", "val", "bench"), np.random.SeedSequence(seed).spawn(3)))
    names = problem.state.initial_inputs
    low = np.array([problem.domain[name][0] for name in names])
    high = np.array([problem.domain[name][1] for name in names])
    unit = qmc.LatinHypercube(d=len(names), seed=np.random.default_rng(streams[split])).random(n)
    return low + unit * (high - low)


def solve_states(problem: Problem, model: IonicModel, initial: np.ndarray, *, dt: float | None = None,
                 method: str | None = None, backend: str = "numba") -> tuple[np.ndarray, np.ndarray]:
    """Free trajectories (no stimulus) from ``initial`` ``(n, n_outputs)``: ``(t, Y)`` with ``Y``
    ``(n_t, n_states, n)``, stored every ``save_dt`` to the problem's end time."""
    setup = problem.state
    dt = setup.dt if dt is None else dt
    save_every = int(round(problem.save_dt / dt))
    if save_every < 1 or abs(save_every * dt - problem.save_dt) > 1e-9 * problem.save_dt:
        raise DatasetError(f"{problem.name}: the save spacing {problem.save_dt:g} is not a multiple of dt = {dt:g}")
    y0 = np.empty((model.n_states, initial.shape[0]))
    for column, (output, state_name) in enumerate(setup.outputs.items()):
        y0[model.state_names.index(state_name)] = initial[:, column]
    return integrate_cells(model, y0, None, dt=dt, n_steps=int(round(problem.t_end / dt)), save_every=save_every,
                           method=method or setup.method, backend=backend, protocol=model.stimulus.silenced())


def build_state_dataset(problem: Problem, out_dir: str | os.PathLike, *, n_trajectories: int | None = None,
                        seed: int = 0, backend: str = "numba", progress=None) -> Path:
    """Write (or reuse) the dataset of ``cell_state`` problem ``problem``: ``train.parquet`` / ``val.parquet``
    with ``traj, t, <state>0..., <state>...`` and a manifest (request, model, solver, every file's SHA-256).
    Everything is solved before the first byte is written."""
    model = state_model(problem)
    setup = problem.state
    sizes = beat_split_sizes(problem, n_trajectories)
    request = {"format": STATE_DATASET_FORMAT_VERSION, "problem": problem.name, "model": model.name,
               "model_digest": model.digest, "sizes": sizes, "seed": seed, "domain": dict(problem.domain),
               "t_end": problem.t_end, "dt": setup.dt, "method": setup.method, "save_dt": problem.save_dt,
               "outputs": dict(setup.outputs)}
    out = Path(out_dir)
    reused = _reusable(out, request)
    if reused is not None:
        return reused
    tables = {}
    say = progress or (lambda message: None)
    for split, count in sizes.items():
        say(f"{problem.name}: {count} {split} trajectories of {model.name} to t = {problem.t_end:g} ({backend})")
        initial = sample_initial_states(problem, count, seed, split)
        t, Y = solve_states(problem, model, initial, backend=backend)
        tables[f"{split}.parquet"] = _split_table(model, t, Y, 0 if split == "train" else sizes["train"],
                                                  dict(zip(setup.initial_inputs, initial.T)), setup.outputs)
    return _write_problem_dataset(out, tables, {
        "problem": problem.name, "request": request,
        "model": {"name": model.name, "source": model.source, "voltage": model.voltage},
        "solver": {"method": setup.method, "dt": setup.dt, "backend": backend, "stimulus": "none"}})
