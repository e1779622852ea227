"""High-error-region sets for ``extra_region: data:high_error`` trials (thesis 3.4.2, 4.2.3, 4.3).

Run once per search by the driver before any trial starts, through the learning layer's one
detection step (``learning.high_error_region.train_base_and_detect``, the same the train CLI's
``--extra-region detect`` runs):

1. train a base model on the homogeneous training set: the first such trial's architecture, kind,
   window, recipe and step budget (the search budget's), no extra region, stopped at a plateau of
   its validation error (``PlateauStop``), so it is trained to convergence within the budget;
2. select the high-error places by the problem's thesis rule (``high_error_region.THESIS_RULES``:
   the iterator's top 5 % of points, 4.2.3; problem C's trajectories with mean error > 0.1, 4.3),
   uncapped;
3. sample around them and solve (``physics.high_error.build_high_error_set``), written as
   ``high_error.parquet`` in the dataset folder with a ``high_error.json`` manifest; a later search
   with the same dataset and base settings reuses it.

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

from fhn_automl.search.space import TrialSpec

logger = logging.getLogger(__name__)

#: the set name that means "build it from a base model": ``extra_region: data:high_error`` (an extra
#: data term on the set) or ``physics:high_error`` (the physics residual at the set's points, thesis
#: 4.3's physics "limited to the high-error region")
HIGH_ERROR_SET = "high_error"
HIGH_ERROR_REGIONS = (f"data:{HIGH_ERROR_SET}", f"physics:{HIGH_ERROR_SET}")
#: the base model's convergence test: no 1 % improvement of the validation error in this many
#: validations in a row (of the budget's ``val_every``) ends its training
PLATEAU_PATIENCE = 5
PLATEAU_MIN_REL_IMPROVEMENT = 0.01
VERSION = 3


def needs_high_error_set(trial: TrialSpec) -> bool:
    return trial.extra_region in HIGH_ERROR_REGIONS


def ensure_high_error_sets(trials: list[TrialSpec], data_dirs: dict[str, str], *,
                           threads: int = 1) -> dict[str, str]:
    """Build (or reuse) the high-error set of every problem some trial asks one for.

    Returns ``{"<problem>:data:high_error": "data:/abs/path/high_error.parquet",
    "<problem>:physics:high_error": "physics:/abs/path/high_error.parquet"}``, the extra region each
    such trial's training config gets instead of the file's value.
    """
    out: dict[str, str] = {}
    for problem in sorted({t.problem for t in trials if needs_high_error_set(t)}):
        base = next(t for t in trials if t.problem == problem and t.kind != "untrained")
        path = ensure_high_error_set(base, data_dirs[problem], threads=threads)
        for region in HIGH_ERROR_REGIONS:
            kind = region.partition(":")[0]
            out[f"{problem}:{region}"] = f"{kind}:{path}"
    return out


def base_settings(trial: TrialSpec) -> dict[str, Any]:
    """What the base model and the sampling depend on (the cache key)."""
    from fhn_automl.learning.high_error_region import RADIUS, SET_FRACTION, rule_for

    return {"version": VERSION, "problem": trial.problem, "kind": trial.kind, "layers": trial.layers,
            "window": trial.window, "recipe": trial.recipe, "batch_size": trial.batch_size,
            "steps": trial.steps, "val_every": trial.val_every, "seed": trial.seed,
            "options": dict(trial.options), "rule": rule_for(trial.resolved_problem).as_dict(),
            "plateau": {"patience": PLATEAU_PATIENCE, "min_rel_improvement": PLATEAU_MIN_REL_IMPROVEMENT},
            "radius": RADIUS, "set_fraction": SET_FRACTION}


def ensure_high_error_set(base: TrialSpec, dataset_dir: str | Path, *, threads: int = 1) -> Path:
    """``<dataset_dir>/high_error.parquet``, built by the procedure of the module docstring."""
    from fhn_automl.learning.high_error_region import PlateauStop, rule_for, train_base_and_detect

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
    config = {"problem": base.problem, "kind": base.kind, "layers": base.layers, "recipe": base.recipe,
              "batch_size": base.batch_size, "steps": base.steps, "val_every": base.val_every,
              "seed": base.seed, "device": "cpu", "window": base.window, "data_dir": str(dataset_dir),
              "threads": threads, "write_torchscript": False, **base.options}
    with tempfile.TemporaryDirectory(prefix="fhn_automl_base_") as scratch:
        _, detection = train_base_and_detect(
            {**config, "out_dir": scratch}, out_path, rule=rule_for(base.resolved_problem),
            plateau=PlateauStop(PLATEAU_PATIENCE, PLATEAU_MIN_REL_IMPROVEMENT), seed=base.seed, device="auto")
    detection.pop("base_model_dir", None)  # a scratch folder, gone now
    seconds = time.perf_counter() - started
    manifest_path.write_text(json.dumps({"settings": settings, **detection,
                                         "total_seconds": round(seconds, 2)}, indent=1, default=str))
    logger.info("high-error set %s: %d centres (%s) x %d, base model stopped at step %s with val_mean_err "
                "%.3g, %.1f s", out_path, detection["centres"], detection["rule"], detection["n_per_centre"],
                detection["base_steps"], detection["base_val_mean_err"] or float("nan"), seconds)
    return out_path.resolve()
