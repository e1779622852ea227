"""High-error-region sets for ``extra_region: data:high_error`` trials (thesis 3.4.2, 4.2.3, 4.3).

The thesis' procedure, run once per search by the driver before any trial starts:

1. train a base model on the homogeneous training set (the first such trial's architecture and
   batch size, no extra region, the ``fast`` recipe, the budget's steps capped at
   ``BASE_STEPS_CAP``: seconds at ``smoke``, under a minute at ``small``);
2. find where it errs: trajectory problems rank whole trajectories by their mean point error and
   take those above ``MEAN_ERROR_THRESHOLD`` (problem C, thesis 4.3: mean error > 0.1 per
   trajectory), at most the worst 5 % (a barely trained base model is above 0.1 everywhere), or
   the worst 5 % when none is above; iterator problems take the worst 5 % of pairs (thesis 4.2.3)
   through the learning layer's ``high_error_centres``;
3. sample around those initial states / states and solve them (``physics.high_error.
   build_high_error_set``), written as ``high_error.parquet`` in the dataset folder with a
   ``high_error.json`` manifest; a later search with the same dataset and base settings reuses it.

Trials then get ``extra_region: data:<absolute path of the set>`` in their training config (the
learning layer reads a ``data:`` source by split name or Parquet path); their MLflow params and
names keep the file's ``data:high_error``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fhn_automl.search.space import TrialSpec

logger = logging.getLogger(__name__)

#: the set name that means "build it from a base model" (``extra_region: data:high_error``)
HIGH_ERROR_SET = "high_error"
FRACTION = 0.05
#: problem C (thesis 4.3): trajectories whose mean point error exceeds this are high-error
MEAN_ERROR_THRESHOLD = 0.1
#: the base model never trains longer than this, whatever the budget (paper: a 20k-step fast-recipe
#: model is already ~1e-3 on B_S; the set only needs to know *where* models err)
BASE_STEPS_CAP = 20_000
RADIUS = 0.02
MAX_CENTRES = 200
#: the set holds about this fraction of the training set's trajectories (pairs for iterators)
SET_FRACTION = 0.25
VERSION = 2


def needs_high_error_set(trial: TrialSpec) -> bool:
    return trial.extra_region == f"data:{HIGH_ERROR_SET}"


def ensure_high_error_sets(trials: list[TrialSpec], data_dirs: dict[str, str], *,
                           threads: int = 1) -> dict[str, str]:
    """Build (or reuse) the high-error set of every problem some trial asks one for.

    Returns ``{"<problem>:data:high_error": "data:/abs/path/high_error.parquet"}``, the extra region
    each such trial's training config gets instead of the file's value.
    """
    out: dict[str, str] = {}
    for problem in sorted({t.problem for t in trials if needs_high_error_set(t)}):
        base = next(t for t in trials if t.problem == problem and t.kind != "untrained")
        path = ensure_high_error_set(base, data_dirs[problem], threads=threads)
        out[f"{problem}:data:{HIGH_ERROR_SET}"] = f"data:{path}"
    return out


def base_settings(trial: TrialSpec) -> dict[str, Any]:
    """What the base model and the sampling depend on (the cache key)."""
    return {"version": VERSION, "problem": trial.problem, "kind": trial.kind, "layers": trial.layers,
            "window": trial.window, "recipe": "fast",
            "steps": min(trial.steps, BASE_STEPS_CAP), "val_every": min(trial.steps, BASE_STEPS_CAP),
            "seed": trial.seed, "fraction": FRACTION, "threshold": MEAN_ERROR_THRESHOLD,
            "radius": RADIUS, "max_centres": MAX_CENTRES, "set_fraction": SET_FRACTION}


def ensure_high_error_set(base: TrialSpec, dataset_dir: str | Path, *, threads: int = 1) -> Path:
    """``<dataset_dir>/high_error.parquet``, built by the procedure of the module docstring."""
    dataset_dir = Path(dataset_dir)
    out_path = dataset_dir / f"{HIGH_ERROR_SET}.parquet"
    manifest_path = dataset_dir / f"{HIGH_ERROR_SET}.json"
    settings = base_settings(base)
    if out_path.is_file() and manifest_path.is_file():
        try:
            if json.loads(manifest_path.read_text()).get("settings") == settings:
                return out_path.resolve()
        except (OSError, ValueError):
            pass
    started = time.perf_counter()
    from fhn_automl.learning.model_io import load_model
    from fhn_automl.learning.trainer import train

    config = {"problem": base.problem, "kind": base.kind, "layers": base.layers, "recipe": "fast", "steps": settings["steps"],
              "val_every": settings["val_every"], "seed": base.seed, "device": "cpu",
              "window": base.window, "data_dir": str(dataset_dir), "threads": threads,
              "write_torchscript": False}
    with tempfile.TemporaryDirectory(prefix="fhn_automl_base_") as scratch:
        final = train({**config, "out_dir": scratch})
        if not final.get("model_dir"):
            raise RuntimeError(f"the base model for {base.problem}'s high-error set diverged "
                               f"({final.get('status')}); no set built")
        model = load_model(final["model_dir"])
    trained = time.perf_counter() - started
    centres, detection = high_error_centres(model, base.problem, dataset_dir)
    from fhn_automl.physics.high_error import build_high_error_set

    n_per_centre = max(2, int(round(SET_FRACTION * detection["train_units"] / max(1, len(centres)))))
    build_high_error_set(base.problem, centres, out_path, radius=RADIUS, n_per_centre=n_per_centre,
                         seed=base.seed, device="auto")
    seconds = time.perf_counter() - started
    manifest_path.write_text(json.dumps({
        "settings": settings, "base_val_mean_err": final.get("best_val_mean_err"),
        "centres": int(len(centres)), "n_per_centre": n_per_centre, **detection,
        "train_seconds": round(trained, 2), "total_seconds": round(seconds, 2)}, indent=1))
    logger.info("high-error set %s: %d centres x %d, base model val_mean_err %.3g, %.1f s",
                out_path, len(centres), n_per_centre, final.get("best_val_mean_err", float("nan")),
                seconds)
    return out_path.resolve()


def high_error_centres(model: Any, problem_name: str, dataset_dir: Path,
                       ) -> tuple[np.ndarray, dict[str, Any]]:
    """Centres (columns of ``problem.initial_state_ranges()``) where ``model`` errs most on train."""
    import torch

    from fhn_automl.learning import high_error_region, training_data
    from fhn_automl.learning.validation import point_errors
    from fhn_automl.physics.problems import get_problem

    problem = get_problem(problem_name)
    if problem.kind == "iterator" or "t" not in problem.inputs:
        points = training_data.load_points(problem, dataset_dir, "train")
        centres = high_error_region.high_error_centres(model.cpu().eval(), problem, points,
                                                       fraction=FRACTION, max_centres=MAX_CENTRES)
        return centres, {"rule": f"top {FRACTION:.0%} of points", "train_units": len(points)}
    columns = training_data.read_columns(dataset_dir, "train")
    points = training_data.point_arrays(columns, problem.inputs, problem.outputs)
    with torch.no_grad():
        errors = point_errors(model.cpu().eval(), torch.as_tensor(points.x),
                              torch.as_tensor(points.y)).numpy()
    traj = np.asarray(columns["traj"])
    ids, inverse = np.unique(traj, return_inverse=True)
    mean_err = np.bincount(inverse, weights=errors) / np.bincount(inverse)
    above = np.flatnonzero(mean_err > MEAN_ERROR_THRESHOLD)
    top = max(1, int(round(FRACTION * len(ids))))
    worst_first = np.argsort(mean_err)[::-1]
    if len(above):
        chosen = worst_first[:min(len(above), top)]
        rule = f"mean error > {MEAN_ERROR_THRESHOLD}, at most the worst {FRACTION:.0%}"
    else:
        chosen, rule = worst_first[:top], f"worst {FRACTION:.0%} of trajectories"
    chosen = chosen[:MAX_CENTRES]
    names = list(problem.initial_state_ranges())
    first_row = np.zeros(len(ids), dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(len(inverse))[::-1]  # first row of every trajectory
    centres = np.stack([np.asarray(columns[name], dtype=np.float64)[first_row[chosen]]
                        for name in names], axis=1)
    return centres, {"rule": rule, "train_units": int(len(ids)),
                     "trajectories_above_threshold": int(len(above)),
                     "worst_trajectory_mean_err": float(mean_err.max())}
