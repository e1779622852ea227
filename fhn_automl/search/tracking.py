"""MLflow tracking of a search, written from one place: the search driver.

Layout (the post-stage reads exactly this):

- experiment ``<search-file>-<budget>`` (e.g. ``problem_b_s-smoke``);
- one parent run per search: tag ``fhn_automl.role=search``, params of the search, the search file as
  an artifact, summary metrics at the end;
- one nested child run per trial (tag ``mlflow.parentRunId``), tag ``fhn_automl.role=trial`` and
  ``fhn_automl.trial_status`` = ``finished`` | ``diverged`` | ``error``; params (problem, kind, layers,
  depth, widths, activations, shape_class, neurons, parameters, macs, pinn, batch_size, extra_region,
  window, seed, ...); the tags of the parent's environment (user, source, git commit, versions);
  a small metric vocabulary (``FINAL_METRICS``, the reported error ``final_full_val_mean_err`` first,
  the physiology metrics of ``beat`` problems last;
  curves ``CURVE_METRICS`` at each validation, MLflow step = training step) and everything else a
  trial reports (timings, counts, best step) in one artifact, ``trial_result.json``;
  the learning layer's model files under the artifact path ``model/`` (``spec.json``, ``weights.pt``,
  ``model.ts``), and the same model as an MLflow pyfunc model (outputs named) linked to the run (the UI's "Models"
  column; ``mlflow.pyfunc.load_model`` / ``mlflow models serve``), see :func:`log_mlflow_model`;
- the experiment tagged ``mlflow.experimentKind=custom_model_development``, the UI's own mark of a
  training (not GenAI) experiment. MLflow 3.17's UI uses it only where its sidebar's GenAI / Model
  training switch is off; with the switch (the default) the view follows the switch, which the
  browser remembers, or ``?workflowType=machine_learning`` in the address (README);
- the dataset's Parquet files as MLflow dataset inputs of the parent and of every trial run (train
  and validation context, digest from the dataset's manifest), see :func:`log_dataset_inputs`.

Workers never touch MLflow: Ray Tune streams every reported result to the driver, and the callback
below logs it. A tracking failure is logged as a warning and the search goes on (``strict`` turns it
into an error), because losing a plot is better than losing a day of training.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from fhn_automl._provenance import git_commit
from fhn_automl.learning.digests import file_digests
# the names only: learning.physiology imports torch inside its functions, so the search stays torch-free
from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS
from fhn_automl.search.tracking_tags import (BUDGET_TAG, DEVICE_TAG, ERROR_TAG, EXPERIMENT_KIND_TAG, GIT_COMMIT_TAG,
                                             HOST_TAG, KIND_TAG, LAYERS_TAG, MLFLOW_MODEL_FILES, PROBLEM_TAG,
                                             PYTHON_TAG, STORAGE_TAG, WORKER_RESTARTS_TAG,
                                             MODEL_ARTIFACT_PATH, MODEL_DIGESTS_TAG, MODEL_MISSING_TAG, PARENT_TAG,
                                             ROLE_TAG,
                                             SEARCH_ROLE, SEARCH_TAG, STATUS_TAG, TRAINING_EXPERIMENT_KIND,
                                             TRIAL_NAME_TAG, TRIAL_ROLE, TRIAL_STATUSES, STOPPED_EARLY_TAG)

logger = logging.getLogger(__name__)

MODEL_FILE_NAMES = ("spec.json", "weights.pt", "model.ts")
#: ``mlflow.data.context`` of each split of a dataset folder that is logged as a run input.
DATASET_CONTEXTS = {"train": "training", "val": "validation"}

#: Result keys that Ray adds to every result; not training metrics, so not logged.
_RAY_RESULT_KEYS = {
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "done", "pid", "hostname",
    "node_ip", "date", "trial_id", "experiment_id", "experiment_tag", "checkpoint_dir_name",
    "should_checkpoint", "timesteps_since_restore", "config", "step",
    # the architecture's fixed figures ride along in every result for Optuna's cost objective; in
    # MLflow they are params, not curves
    "depth", "neurons", "parameters", "macs", "n_neurons", "n_parameters", "macs_per_eval",
    "worker_session", "resumed", "repeated", "final",
}

F = TypeVar("F", bound=Callable[..., Any])

# The metric vocabulary of a trial's run (README, "What a trial's run holds"). Each trial reports ~40
# numbers; a run page shows only these, the rest go to one JSON artifact (RESULT_ARTIFACT).
#: Logged once when the trial ends, the reported error first: the model at training end on the whole
#: validation set (the figure the post-stage ranks and registers by), then the last validation on
#: the validation subset, the best subset point during training, and the training seconds; last, for
#: ``beat`` problems only, the physiology metrics of the same model (``learning.physiology``: V RMSE,
#: APD90 / APD50 / max dV/dt / resting-potential errors on the validation cells).
FINAL_METRICS = ("final_full_val_mean_err", "final_full_val_max_err", "final_full_val_code_mean_err",
                 "final_full_val_code_max_err", "final_val_mean_err", "final_val_max_err", "latency_ms",
                 "best_subset_val_mean_err", "best_subset_val_max_err", "train_seconds",
                 *(f"final_full_val_{name}" for name in PHYSIOLOGY_METRICS))
#: Curves, at every validation (MLflow step = training step); also ``loss_<term>`` and, for
#: iterators, ``val_step_*_err`` / ``val_rollout_*_err`` (and their ``final_full_`` figures at the end).
CURVE_METRICS = ("val_mean_err", "val_max_err", "loss", "lr", "step_time_ms", "pack_members")
_CURVE_PATTERN = re.compile(r"loss_\w+|val_(step|rollout)_(mean|max)_err")
_FINAL_PATTERN = re.compile(r"final_full_val_(step|rollout)_(code_)?(mean|max)_err")
#: The whole final result of a trial (timings, counts, best step, every figure) as one JSON file.
RESULT_ARTIFACT = "trial_result.json"


def curve_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The curve metrics of one validation result (see ``CURVE_METRICS``)."""
    return {k: v for k, v in _numeric(result).items() if k in CURVE_METRICS or _CURVE_PATTERN.fullmatch(k)}


def final_metrics(final: Mapping[str, Any]) -> dict[str, float]:
    """The end-of-trial metrics of a final result (see ``FINAL_METRICS``): the last validation's
    subset errors get the ``final_`` prefix; the figures the trainer computes at the end keep their names."""
    numbers = _numeric(final)
    out = {f"final_{k}": numbers[k] for k in ("val_mean_err", "val_max_err") if k in numbers}
    out.update({k: v for k, v in numbers.items() if k in FINAL_METRICS or _FINAL_PATTERN.fullmatch(k)})
    return {k: out[k] for k in sorted(out, key=lambda k: (FINAL_METRICS + (k,)).index(k))}


def default_tracking_uri(cwd: str | Path | None = None) -> str:
    """``sqlite:///<cwd>/mlruns/mlflow.db``: MLflow 3 refuses the old file store (FACTS.md)."""
    root = Path(cwd or os.getcwd()).resolve() / "mlruns"
    return f"sqlite:///{root / 'mlflow.db'}"


def default_artifact_root(tracking_uri: str) -> str | None:
    """``<dir of the SQLite file>/artifacts`` for a local SQLite store; ``None`` lets a server decide."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts")
    return None


def resolve_tracking_uri(cli_value: str | None = None, *, create: bool = True) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the local default under ``mlruns/``.

    ``create``: make a local SQLite store's folder (a search writes there); readers (post, pull, bench,
    serve) pass False, so a store that is not there is reported without leaving an empty ``mlruns/``.
    """
    uri = cli_value or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if create and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


class ExperimentStorageMismatchError(ValueError):
    """A search into an MLflow experiment whose earlier searches kept their Tune state elsewhere."""


def check_experiment_storage(tracking_uri: str, experiment: str, storage: str) -> None:
    """Refuse a second ``--storage`` for one experiment: the post-stage reads every trial of the
    experiment, so searches whose records live in two storages would be mixed in one front (issue 21
    item 9). Parent runs from before the storage tag existed are not counted."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return
        parents = client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'",
                                     max_results=1000)
    except Exception as exc:  # an MLflow hiccup: the tracker's own outage handling takes it from here
        logger.warning("could not check which storage experiment %s uses (%s: %s); carrying on",
                       experiment, type(exc).__name__, exc)
        return
    others = sorted({run.data.tags[STORAGE_TAG] for run in parents
                     if run.data.tags.get(STORAGE_TAG) not in (None, str(storage))})
    if others:
        raise ExperimentStorageMismatchError(
            f"experiment {experiment!r} holds searches whose Tune state is in {', '.join(others)}, not in "
            f"--storage {storage}: its post-stage would mix them. Use the same --storage, or another "
            f"experiment (another search file name or budget), or delete the experiment in MLflow first")


def experiment_name(search_name: str, budget: str) -> str:
    return f"{search_name}-{budget}"


def _forgiving(method: F) -> F:
    """Log an MLflow failure and carry on, unless the tracker was made ``strict``."""

    @functools.wraps(method)
    def wrapper(self: SearchTracker, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # any tracking-server or store error
            if self.strict:
                raise
            self.hiccups += 1
            logger.warning("MLflow tracking hiccup in %s (search continues): %s", method.__name__,
                           exc)
            return None

    return wrapper  # type: ignore[return-value]


def _json_ready(result: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a result for JSON (non-finite numbers as strings, e.g. ``"nan"``)."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = value if math.isfinite(value) else str(value)
    return out


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-not numeric entries of a result (MLflow stores NaN/inf; strings are tags)."""
    out = {}
    for key, value in metrics.items():
        if key in _RAY_RESULT_KEYS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out


class SearchTracker:
    """The parent run and the child runs of one search, by explicit run ids (no fluent state)."""

    def __init__(self, tracking_uri: str, experiment: str, *, strict: bool = False) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.strict = strict
        self.hiccups = 0
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        #: trial name -> child run id
        self.child_runs: dict[str, str] = {}
        #: trial name -> status tag already written (finished trials are never logged twice)
        self.closed: dict[str, str] = {}
        #: run id -> last logged training step (a trial resumed from an older checkpoint repeats
        #: steps; the history keeps the first pass)
        self.last_step: dict[str, int] = {}
        self.logging_seconds = 0.0
        #: tags of the parent run's environment, repeated on every child run (see :meth:`start_search`)
        self.provenance_tags: dict[str, str] = {}
        #: problem -> dataset folder (see :meth:`start_search`)
        self.dataset_dirs: dict[str, Path] = {}
        #: (device, inode) of a local SQLite store once it is open: a file deleted or replaced
        #: mid-search swallows every later write without an error (the connection keeps the old inode)
        self._store_identity: tuple[int, int] | None = None

    # ------------------------------------------------------------------ parent
    @_forgiving
    def start_search(self, *, search_name: str, budget: str, params: Mapping[str, Any],
                     tags: Mapping[str, str], search_file: Path | None,
                     resume_parent_run_id: str | None = None,
                     datasets: Mapping[str, str | Path] | None = None) -> str | None:
        """Create (or, when resuming, reopen) the parent run; returns its id.

        ``datasets``: problem -> dataset folder; logged as inputs of the parent run here and of each
        trial run of that problem in :meth:`start_trial`.
        """
        started = time.perf_counter()
        # the child runs carry the parent's source, user, commit and environment tags too, so a
        # trial's page says where it came from without a trip to the parent
        self.provenance_tags = dict(tags)
        self.dataset_dirs = {problem: Path(folder) for problem, folder in (datasets or {}).items()}
        experiment = self.client.get_experiment_by_name(self.experiment)
        self._store_identity = _sqlite_identity(self.tracking_uri)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                self.experiment, artifact_location=_artifact_location(self.tracking_uri,
                                                                      self.experiment),
                tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND})
        else:
            self.experiment_id = experiment.experiment_id
            if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an older version
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG,
                                               TRAINING_EXPERIMENT_KIND)
        if resume_parent_run_id:
            self.parent_run_id = resume_parent_run_id
            self.client.update_run(resume_parent_run_id, status="RUNNING")
            self._load_children()
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=f"{search_name}-{budget}",
                tags={ROLE_TAG: SEARCH_ROLE, SEARCH_TAG: search_name, BUDGET_TAG: budget, **tags})
            self.parent_run_id = run.info.run_id
            self._log_params(self.parent_run_id, params)
            if search_file is not None:
                self.client.log_artifact(self.parent_run_id, str(search_file), "search_space")
            for folder in self.dataset_dirs.values():
                log_dataset_inputs(self.client, self.parent_run_id, folder)
        self.logging_seconds += time.perf_counter() - started
        return self.parent_run_id

    def _load_children(self) -> None:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}'",
            max_results=50_000)
        for run in runs:
            name = run.data.tags.get(TRIAL_NAME_TAG)
            if name is None:
                continue
            self.child_runs[name] = run.info.run_id
            status = run.data.tags.get(STATUS_TAG)
            if status:
                self.closed[name] = status
                if run.info.status == "RUNNING":
                    # the driver stopped between the status tag and closing the run (finish_trial)
                    self.client.set_terminated(run.info.run_id,
                                               status="FAILED" if status == "error" else "FINISHED")
            history = self.client.get_metric_history(run.info.run_id, "val_mean_err")
            if history:
                self.last_step[run.info.run_id] = max(m.step for m in history)

    @_forgiving
    def end_search(self, summary: Mapping[str, Any], *, interrupted: bool) -> None:
        if self.parent_run_id is None:
            return
        self.client.log_batch(self.parent_run_id, metrics=_metric_entities(_numeric(summary), 0))
        self.client.set_terminated(self.parent_run_id,
                                   status="KILLED" if interrupted else "FINISHED")

    # ------------------------------------------------------------------ children
    @_forgiving
    def start_trial(self, trial_name: str, params: Mapping[str, Any]) -> str | None:
        """The child run of a trial, created once; a resumed trial gets its old run back."""
        if trial_name in self.child_runs:
            return self.child_runs[trial_name]
        started = time.perf_counter()
        run = self.client.create_run(
            self.experiment_id, run_name=trial_name,
            tags={**self.provenance_tags, ROLE_TAG: TRIAL_ROLE, TRIAL_NAME_TAG: trial_name,
                  PARENT_TAG: self.parent_run_id})
        self.child_runs[trial_name] = run.info.run_id
        self._log_params(run.info.run_id, params)
        dataset_dir = self.dataset_dirs.get(str(params.get("problem")))
        if dataset_dir is not None:
            log_dataset_inputs(self.client, run.info.run_id, dataset_dir)
        self.logging_seconds += time.perf_counter() - started
        return run.info.run_id

    @_forgiving
    def log_result(self, trial_name: str, result: Mapping[str, Any]) -> None:
        """One validation point of a trial: every numeric metric at MLflow step = training step."""
        run_id = self.child_runs.get(trial_name)
        if run_id is None or trial_name in self.closed:
            return
        step = int(result.get("step", result.get("training_iteration", 0)))
        if step <= self.last_step.get(run_id, -1) or result.get("final"):
            return
        started = time.perf_counter()
        self.client.log_batch(run_id, metrics=_metric_entities(curve_metrics(result), step))
        self.last_step[run_id] = step
        self.logging_seconds += time.perf_counter() - started

    @_forgiving
    def fill_history(self, trial_name: str, results: Iterable[Mapping[str, Any]]) -> int:
        """Log every validation point of ``results`` whose step MLflow lacks; returns how many.

        The replay's way of making MLflow equal to the Tune record point by point: a short outage in
        the middle of a trial lost points below the last logged step (which ``log_result`` skips, as a
        resumed trial repeats them), also for trials already closed. Each point is one ``log_batch``
        of all its metrics, so the steps of the reported metric tell which points are there. A step
        repeated in ``results`` (a trial resumed from an older checkpoint) keeps its first pass.
        """
        run_id = self.child_runs.get(trial_name)
        points = [r for r in results if not r.get("final")]
        if run_id is None or not points:
            return 0
        key = "val_mean_err" if any("val_mean_err" in r for r in points) else sorted(_numeric(points[0]))[0]
        logged = {m.step for m in self.client.get_metric_history(run_id, key)}
        added = 0
        for result in points:
            step = int(result.get("step", result.get("training_iteration", 0)))
            if step in logged:
                continue
            self.client.log_batch(run_id, metrics=_metric_entities(_numeric(result), step))
            logged.add(step)
            added += 1
        if logged:
            self.last_step[run_id] = max(self.last_step.get(run_id, -1), max(logged))
        return added

    @_forgiving
    def finish_trial(self, trial_name: str, status: str, final: Mapping[str, Any] | None = None,
                     model_dir: Path | None = None, error: str | None = None,
                     restarts: int = 0) -> None:
        """Final metrics (``FINAL_METRICS``), the whole final result as ``trial_result.json``, status
        tag, model artifacts and the MLflow model; at most once per trial."""
        run_id = self.child_runs.get(trial_name)
        if run_id is None or trial_name in self.closed:
            return
        started = time.perf_counter()
        if final:
            self.client.log_batch(run_id, metrics=_metric_entities(final_metrics(final), int(final.get("step", 0))))
            self.client.log_dict(run_id, _json_ready(final), RESULT_ARTIFACT)
        if model_dir is not None and Path(model_dir).is_dir():
            self._record_digests(run_id, Path(model_dir))
            self.client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
            log_mlflow_model(self.client, self.experiment_id, run_id, Path(model_dir),
                             name=trial_name, step=int((final or {}).get("step", 0)))
        if error:
            self.client.set_tag(run_id, ERROR_TAG, error[:4000])
        # how often the trial's workers started again from a checkpoint (lost node, --resume)
        self.client.set_tag(run_id, WORKER_RESTARTS_TAG, str(restarts))
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_terminated(run_id, status="FAILED" if status == "error" else "FINISHED")
        self.closed[trial_name] = status
        self.logging_seconds += time.perf_counter() - started

    # ------------------------------------------------------------------ failures and repair
    def store_problem(self) -> str | None:
        """Why this search's records may not be in MLflow (None: every call succeeded)."""
        if self._store_identity is not None and _sqlite_identity(self.tracking_uri) != self._store_identity:
            return (f"the SQLite store {self.tracking_uri} was deleted or replaced during the search, so "
                    "what was logged after that is lost")
        if self.hiccups:
            return f"{self.hiccups} MLflow call(s) failed (see the warnings above)"
        return None

    @_forgiving
    def mark_model_missing(self, trial_name: str) -> None:
        run_id = self.child_runs.get(trial_name)
        if run_id is not None:
            self.client.set_tag(run_id, MODEL_MISSING_TAG, "true")

    @_forgiving
    def mark_stopped_early(self, trial_name: str) -> None:
        """The scheduler (ASHA, or halving inside a pack) stopped the trial before its last step."""
        run_id = self.child_runs.get(trial_name)
        if run_id is not None:
            self.client.set_tag(run_id, STOPPED_EARLY_TAG, "true")

    def has_model(self, trial_name: str) -> bool:
        """Whether the trial's run holds ``model/spec.json`` (False when MLflow cannot say)."""
        run_id = self.child_runs.get(trial_name)
        try:
            return run_id is not None and any(
                Path(item.path).name == "spec.json" for item in self.client.list_artifacts(run_id, MODEL_ARTIFACT_PATH))
        except Exception:  # a store that does not answer: the repair is tried, and counted if it fails
            return False

    @_forgiving
    def attach_model(self, trial_name: str, model_dir: Path, step: int = 0) -> None:
        """The model of a closed trial that reached MLflow without it (replayed from the Tune folder)."""
        run_id = self.child_runs[trial_name]
        self._record_digests(run_id, Path(model_dir))
        self.client.log_artifacts(run_id, str(model_dir), MODEL_ARTIFACT_PATH)
        log_mlflow_model(self.client, self.experiment_id, run_id, Path(model_dir), name=trial_name, step=step)
        if MODEL_MISSING_TAG in self.client.get_run(run_id).data.tags:
            self.client.delete_tag(run_id, MODEL_MISSING_TAG)

    def _record_digests(self, run_id: str, model_dir: Path) -> None:
        """The model files' SHA-256, as a run tag, before the files go up: whoever reads the model back
        (post-stage, pull, bench) checks the artifact store's copy against this record."""
        self.client.set_tag(run_id, MODEL_DIGESTS_TAG, json.dumps(file_digests(model_dir), sort_keys=True))

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(str(k), _param_text(v)) for k, v in params.items()]
        for start in range(0, len(entries), 100):  # MLflow caps a batch at 100 params
            self.client.log_batch(run_id, params=entries[start:start + 100])


class TrackingQueue:
    """A search tracker's calls run in order on one background thread (the live search's driver).

    Tune calls its callbacks on its controller thread and starts no trial while one of them runs. A
    finished trial's MLflow model costs the driver ~0.1 s, so a pack of 36 members ending held the next
    packs back ~5 s, a third of a packed search's wall (benchmarks/RESULTS.md). Queued, the MLflow calls
    run beside the training. One thread keeps them in submission order and alone on the client (SQLite
    takes one writer). ``drain()`` waits for them all; the search calls it before the tracker is used
    directly again (replay, ``end_search``). A strict tracker's error is raised by the next ``submit``
    or by ``drain``; a forgiving one counts it as a hiccup, as before.
    """

    def __init__(self, tracker: SearchTracker) -> None:
        self.tracker = tracker
        self._pool: Any = None
        self._error: BaseException | None = None
        self._scratch: Path | None = None
        self._copies = 0
        #: seconds the driver waited in ``drain`` for calls still queued
        self.drain_seconds = 0.0

    def submit(self, method: str, *args: Any, **kwargs: Any) -> None:
        """``tracker.<method>(*args, **kwargs)``, after every call submitted before it."""
        from concurrent.futures import ThreadPoolExecutor

        self._raise_error()
        bound = getattr(self.tracker, method)

        def run() -> None:
            try:
                bound(*args, **kwargs)
            except BaseException as exc:  # only a strict tracker raises (or an interrupt)
                if self._error is None:
                    self._error = exc

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fhn_automl_mlflow")
        self._pool.submit(run)

    def snapshot(self, folder: Path) -> Path:
        """A private copy of a model folder for a call that runs later: Tune keeps only the last two
        checkpoints of a trial, so a pack member's model from an early checkpoint may be gone by then."""
        import shutil
        import tempfile

        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="fhn_automl_tracking_"))
        self._copies += 1
        copy = self._scratch / str(self._copies)
        shutil.copytree(folder, copy)
        return copy

    def drain(self) -> None:
        """Wait until every submitted call has run (their copies are removed); raise a strict error."""
        import shutil

        if self._pool is not None:
            started = time.perf_counter()
            self._pool.shutdown(wait=True)
            self._pool = None
            self.drain_seconds += time.perf_counter() - started
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _sqlite_identity(tracking_uri: str) -> tuple[int, int] | None:
    """(device, inode) of a local SQLite store's file; None for other stores or no file yet."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    try:
        stat = os.stat(tracking_uri.removeprefix("sqlite:///"))
    except OSError:
        return (-1, -1)  # missing: different from any real file, so a deletion is noticed
    return (stat.st_dev, stat.st_ino)


def _metric_entities(metrics: Mapping[str, float], step: int) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, value, now, step) for key, value in metrics.items()]


def _param_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# ----------------------------------------------------------------------------- MLflow model


def log_mlflow_model(client: Any, experiment_id: str, run_id: str, model_dir: Path, *,
                     name: str = "model", step: int = 0) -> str:
    """Log a saved surrogate (``model_io.save_model``'s folder) as an MLflow model of ``run_id``.

    The model is a pyfunc model from code (``mlflow_surrogate_model.py``, copied into the model) around
    the folder's TorchScript module: it loads with plain torch + mlflow, fhn_automl not installed, for
    every model kind (split and chained windows included, which ``torch.export`` cannot trace), and it
    returns its outputs by name (``u``, ``w``; MLflow's pytorch flavor would return columns ``0``,
    ``1``). The signature names the raw inputs in the spec's order (pyfunc reorders DataFrame columns
    to it) and the outputs; the input example is three float32 points inside the input ranges; the
    spec is the model's metadata, and the folder's own files (``spec.json``, ``weights.pt``,
    ``model.ts``) ride along under ``fhn_automl/`` for ``pull``.

    Done with explicit ids, as everything here: the logged model is created in ``experiment_id``,
    linked to the run as an output (the UI's "Models" column), filled and marked READY. Returns its
    model id (``models:/<id>`` loads it).
    """
    import shutil
    import tempfile

    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import torch
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    spec = json.loads((model_dir / "spec.json").read_text())
    run = client.get_run(run_id)
    # MLflow refuses / : . % " ' in a logged model's name, and trial names carry '.' between layers
    logged = client.create_logged_model(
        experiment_id, name=re.sub(r"[/:.%\"']", "_", name), source_run_id=run_id, model_type="fhn_automl surrogate",
        params=dict(run.data.params),
        tags={PROBLEM_TAG: spec["problem"], KIND_TAG: spec["kind"], LAYERS_TAG: spec["layers"]})
    try:
        # inputs declared double so that pandas' default float64 frames are accepted (a float
        # signature refuses them as an unsafe cast); the model hands the network float32 either
        # way, and float32 frames pass too (a safe cast)
        signature = ModelSignature(inputs=Schema([ColSpec("double", n) for n in spec["inputs"]]),
                                   outputs=Schema([ColSpec("float", n) for n in spec["outputs"]]))
        low = np.array([spec["ranges"][n][0] for n in spec["inputs"]])
        high = np.array([spec["ranges"][n][1] for n in spec["inputs"]])
        rows = low + (high - low) * np.array([[0.1], [0.5], [0.9]])
        example = pd.DataFrame(rows.astype(np.float32), columns=spec["inputs"])
        torch_version = torch.__version__.split("+")[0]
        with tempfile.TemporaryDirectory(prefix="fhn_mlflow_model_") as tmp:
            local = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                str(local), python_model=str(Path(__file__).with_name("mlflow_surrogate_model.py")),
                artifacts={"model_ts": str(model_dir / "model.ts")},
                model_config={"inputs": list(spec["inputs"]), "outputs": list(spec["outputs"])},
                signature=signature, input_example=example, metadata={"fhn_automl_spec": spec},
                # explicit, because inferring them starts a subprocess (seconds per trial)
                pip_requirements=[f"torch=={torch_version}", "pandas"],
                mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id,
                                   model_uuid=logged.model_id, model_id=logged.model_id))
            (local / MLFLOW_MODEL_FILES).mkdir()
            for file_name in MODEL_FILE_NAMES:
                if (model_dir / file_name).exists():
                    shutil.copy2(model_dir / file_name, local / MLFLOW_MODEL_FILES / file_name)
            client.log_model_artifacts(logged.model_id, str(local))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=step)])
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        try:
            client.finalize_logged_model(logged.model_id, "FAILED")
        except Exception:  # the original error is the one to report
            pass
        raise
    return logged.model_id


def trial_model_id(client: Any, run_id: str) -> str | None:
    """The id of the MLflow model logged for a trial run (the newest), or None for older runs."""
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs is not None else []
    if not outputs:
        return None
    return max(outputs, key=lambda output: output.step).model_id


# ----------------------------------------------------------------------------- datasets


def log_dataset_inputs(client: Any, run_id: str, dataset_dir: str | Path) -> None:
    """The train and validation Parquet files of a dataset folder as MLflow dataset inputs of a run.

    Metadata only (``mlflow.data.meta_dataset.MetaDataset``: source path, schema from the Parquet
    footer, row count), so a 50-million-row set costs what a small one does; the digest is the
    first 16 hex digits of the file's SHA-256 in the folder's ``manifest.json``, so two runs trained
    on the same bytes show the same digest.
    """
    import pyarrow.parquet as pq
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema

    from fhn_automl.physics.datasets import read_manifest  # loads scipy and pyarrow

    folder = Path(dataset_dir).resolve()
    files = read_manifest(folder).get("files", {})
    inputs = []
    for split, context in DATASET_CONTEXTS.items():
        path = folder / f"{split}.parquet"
        entry = files.get(path.name)
        if entry is None or not path.is_file():
            continue
        arrow = pq.read_schema(path)
        schema = Schema([ColSpec(_ARROW_TO_MLFLOW.get(str(field.type), "string"), field.name)
                         for field in arrow])
        with warnings.catch_warnings():
            # MLflow registers its local source under two schemes ("" and "file") and warns that
            # a path matches both; they are the same class
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(str(path))
        meta = MetaDataset(source, name=f"{folder.name}/{split}",
                           digest=entry["sha256"][:16], schema=schema).to_dict()
        dataset = Dataset(name=meta["name"], digest=meta["digest"], source_type=meta["source_type"],
                          source=meta["source"], schema=meta.get("schema"),
                          profile=json.dumps({"num_rows": entry.get("rows"),
                                              "sha256": entry["sha256"]}))
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


_ARROW_TO_MLFLOW = {"float": "float", "double": "double", "int64": "long", "int32": "integer"}


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    root = default_artifact_root(tracking_uri)
    if root is None:
        return None
    path = Path(root) / experiment
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


# ----------------------------------------------------------------------------- tags


def environment_tags(device: str) -> dict[str, str]:
    """Git commit, package versions and the device the trials ran on: enough to redo a result."""
    import importlib.metadata as metadata

    tags = {DEVICE_TAG: device, PYTHON_TAG: platform.python_version(), HOST_TAG: platform.node()}
    for package in ("fhn_automl", "ray", "torch", "mlflow", "optuna", "numpy"):
        try:
            tags[f"fhn_automl.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            tags[f"fhn_automl.version.{package}"] = "absent"
    # who ran it and from what, as MLflow's own fluent runs record it (the UI's User and Source columns)
    from mlflow.tracking.context.registry import resolve_tags

    tags.update({k: v for k, v in resolve_tags().items() if k in ("mlflow.user", "mlflow.source.name",
                                                                   "mlflow.source.type")})
    commit = git_commit(mark_dirty=True)
    if commit:
        tags[GIT_COMMIT_TAG] = commit
        tags["mlflow.source.git.commit"] = commit
    return tags


def trial_params(spec: Mapping[str, Any], architecture: Mapping[str, Any]) -> dict[str, Any]:
    """The MLflow params of a child run: the trial's settings and its architecture's figures."""
    params = {key: spec[key] for key in ("problem", "kind", "layers", "batch_size", "extra_region",
                                         "window", "seed", "steps", "val_every", "recipe", "study",
                                         "n_trajectories")}
    params.update(architecture)
    for key in ("extra_region", "window"):
        params[key] = "none" if params[key] is None else params[key]
    params["pinn"] = spec["kind"] == "pinn"
    for key, value in spec.get("options", {}).items():
        params[f"option.{key}"] = value
    return params


def iter_child_runs(tracking_uri: str, experiment: str) -> Iterable[Any]:
    """Child runs of an experiment (tests, the benchmark and users' notebooks read them this way)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{TRIAL_ROLE}'",
                              max_results=50_000)
