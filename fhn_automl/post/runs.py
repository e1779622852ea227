"""Reading a search's MLflow experiment: the finished trials, their figures and their model files.

The layout is the search layer's (``fhn_automl.search.tracking`` and docs/ARCHITECTURE.md): child
runs tagged ``fhn_automl.role=trial`` and ``fhn_automl.trial_status``, params with the architecture's
figures, metrics, and the learning layer's model files under the artifact path ``model/``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fhn_automl.learning.architecture import architecture_figures, format_layers, parse_layers
from fhn_automl.learning.windows import parse_window
from fhn_automl.physics.problems import get_problem
from fhn_automl.post.errors import ExperimentNotFoundError, NoFinishedTrialsError, TrackingStoreError
from fhn_automl.post.integrity import recorded_digests, verify_model_files
from fhn_automl.search.endpoints import TrackingStoreUnreachableError, check_tracking_store
from fhn_automl.search.tracking import resolve_tracking_uri as search_default
from fhn_automl.search.tracking_tags import MODEL_ARTIFACT_PATH, POST_ROLE, ROLE_TAG, STATUS_TAG, TRIAL_ROLE

logger = logging.getLogger(__name__)

__all__ = ["MODEL_ARTIFACT_PATH", "POST_ROLE", "ROLE_TAG", "STATUS_TAG", "TrialRecord", "download_model",
           "load_trials", "resolve_tracking_uri"]
#: The error that ranks and registers a trial is the learning layer's ``REPORTED_ERROR_METRIC``
#: (``learning.validation``): the saved model, the one at the end of training, on the whole
#: validation set (every rollout for iterators), the thesis' figure, logged once at the trial's end
#: (``search.tracking.FINAL_METRICS``; older runs logged it at the last validation and again as
#: ``final_final_...``). Runs from before that figure existed fall back to the best point on the
#: validation subset (their saved model was that checkpoint).
MEAN_ERR_KEYS = ("final_full_val_mean_err", "final_final_full_val_mean_err",
                 "final_best_val_mean_err", "best_val_mean_err", "final_val_mean_err", "val_mean_err")
MAX_ERR_KEYS = ("final_full_val_max_err", "final_final_full_val_max_err",
                "final_best_val_max_err", "best_val_max_err", "final_val_max_err", "val_max_err")


@dataclass
class TrialRecord:
    """One finished trial as the post-stage sees it."""

    run_id: str
    name: str
    problem: str
    kind: str
    layers: str
    shape_class: str
    neurons: int
    depth: int
    parameters: int
    macs: int
    mean_err: float | None
    max_err: float | None
    params: dict[str, str] = field(default_factory=dict)
    #: the same model in the thesis code's measure (physics.error_measures; None for older runs)
    code_mean_err: float | None = None
    code_max_err: float | None = None
    #: the run's latest value of every metric (the analysis reads step times and the error variants)
    metrics: dict[str, float] = field(default_factory=dict)
    #: the search file's study the trial belongs to (analyses never pool over studies)
    study: str = ""

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("params")
        row.pop("metrics")
        return row


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else the local ``mlruns/`` SQLite store.

    Checked before any work (``TrackingStoreError``): a server that does not answer within seconds,
    or a SQLite file that is not there (a reader must not create an empty store on a typo).
    """
    uri = search_default(tracking_uri, create=False)
    try:
        check_tracking_store(uri, must_exist=True)
    except TrackingStoreUnreachableError as exc:
        raise TrackingStoreError(str(exc)) from None
    return uri


def _first_metric(metrics: dict[str, float], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            return float(value)
    return None


def _figures(params: dict[str, str]) -> dict[str, Any]:
    """Architecture figures of a trial, recomputed from its ``layers``, ``problem`` and ``window``.

    Recomputed rather than read back, so runs logged before a figure was fixed (split-window models
    logged one window's neurons) are ranked by the same figures as new ones.
    """
    layers = parse_layers(params["layers"])
    problem = get_problem(params["problem"])
    window = params.get("window")
    n_networks = parse_window(None if window in (None, "none", "None") else window, problem.t_span).n_networks
    figures = architecture_figures(layers, len(problem.inputs), len(problem.outputs), n_networks=n_networks)
    return {"layers": format_layers(layers),
            **{key: figures[key] for key in ("shape_class", "neurons", "depth", "parameters", "macs")}}


def load_trials(experiment_name: str, tracking_uri: str, *, require_error: bool = True) -> tuple[str, list[TrialRecord]]:
    """(experiment id, the finished trials). Raises when the experiment is missing or holds none.

    ``require_error`` False also accepts trials without a validation error (untrained sweeps).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments())
        raise ExperimentNotFoundError(
            f"no MLflow experiment {experiment_name!r} in {tracking_uri}; experiments there: "
            f"{', '.join(known) or 'none'} (pass --tracking-uri if the search logged elsewhere)")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"tags.`{ROLE_TAG}` = '{TRIAL_ROLE}' and tags.`{STATUS_TAG}` = 'finished'",
                              max_results=50_000)
    trials: list[TrialRecord] = []
    skipped = 0
    for run in runs:
        params = dict(run.data.params)
        if "layers" not in params or "problem" not in params:
            continue
        mean_err = _first_metric(run.data.metrics, MEAN_ERR_KEYS)
        if require_error and mean_err is None:
            continue
        if not _has_model(client, run.info.run_id):
            # e.g. a driver killed between a trial's last result and its model upload: such a
            # trial is re-run by --resume; until then it has nothing to time or register
            logger.warning("skipping trial %s (run %s): marked finished but has no %s/spec.json artifact",
                           run.info.run_name, run.info.run_id, MODEL_ARTIFACT_PATH)
            skipped += 1
            continue
        trials.append(TrialRecord(run_id=run.info.run_id, name=run.info.run_name or run.info.run_id,
                                  problem=params["problem"], kind=params.get("kind", "ddnn"),
                                  mean_err=mean_err, max_err=_first_metric(run.data.metrics, MAX_ERR_KEYS),
                                  code_mean_err=_first_metric(run.data.metrics, ("final_full_val_code_mean_err",)),
                                  code_max_err=_first_metric(run.data.metrics, ("final_full_val_code_max_err",)),
                                  params=params, metrics=dict(run.data.metrics), study=params.get("study", ""),
                                  **_figures(params)))
    if not trials:
        raise NoFinishedTrialsError(
            f"experiment {experiment_name!r} has no finished trial with a model and a validation error "
            f"({len(runs)} finished trial run(s) found, {skipped} without a model); run or resume the search first "
            "(python -m fhn_automl.search SEARCH --budget BUDGET [--resume])")
    trials.sort(key=lambda t: (t.problem, t.name, t.run_id))  # deterministic order for ties
    return experiment.experiment_id, trials


def _has_model(client: Any, run_id: str) -> bool:
    """Whether the run holds the learning layer's model files under ``model/``."""
    return any(Path(item.path).name == "spec.json" for item in client.list_artifacts(run_id, MODEL_ARTIFACT_PATH))


def download_model(tracking_uri: str, run_id: str, dst: Path) -> Path:
    """The trial's ``model/`` artifacts (spec.json, weights.pt, model.ts) copied under ``dst``, checked
    against the digests recorded when they were logged (``ModelDigestError`` for a changed file)."""
    from mlflow.tracking import MlflowClient

    dst.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=tracking_uri)
    local = Path(client.download_artifacts(run_id, MODEL_ARTIFACT_PATH, str(dst)))
    if not (local / "spec.json").exists():
        raise NoFinishedTrialsError(f"run {run_id} has no model/spec.json artifact; was the trial logged completely?")
    verify_model_files(local, recorded_digests(client, run_id), what=f"trial run {run_id}")
    return local
