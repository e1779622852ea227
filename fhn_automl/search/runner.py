"""Running a search on Ray: Tune trials whose drivers train with Ray Train workers.

The shape (Ray 2.60, Train V2; FACTS.md): every Tune trial is a small *driver function* holding no CPU
(``{"cpu": 0, "memory": 1}``) that builds a Ray Train trainer (``trial.trainer_class``) whose workers run
the learning layer's ``train(config, report)``. Each ``report`` becomes ``ray.train.report`` with the trainer's checkpoint
folder, ``TuneReportCallback`` forwards it to Tune, and Tune streams it to the search driver, where
``SearchMonitor`` writes MLflow and prints progress. Nothing but the driver talks to MLflow.

Fault tolerance comes in two layers: Train's ``FailureConfig`` restarts a lost worker from the last
checkpoint; Tune's restarts a lost trial driver, whose new trainer (same run name and storage)
picks up the Train run's latest checkpoint. ``--resume`` restores the Tune experiment, which keeps
finished trials finished; the MLflow callback finds the child runs it made before and adds to them.

This module runs a search in order: ``_run_search`` lists the steps, each a function here that can be
called alone (``search_site``, ``check_before_start``, ``build_datasets``, ``prepare_tune_folder``,
``open_parent_run``, ``trial_plan``, ``tune_experiment``, ``make_tuner``, ``fit_search``, ``close_search``).
The work of each has its own module: ``options`` (what a search is asked
and answers), ``resources`` (what a trial gets), ``ray_cluster`` (Ray start-up), ``trial`` (the Tune
trainables), ``worker`` (the training loop on a worker), ``monitor`` (the Tune callback -> MLflow).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# packed_trial.packed_trial is read off its module when a search starts (tests put a crashing one there)
import fhn_automl.search.packed_trial as packed_executor
from fhn_automl.physics.datasets import ensure_dataset
from fhn_automl.search.budgets import Budget
from fhn_automl.search.endpoints import check_ray_address, check_tracking_store
from fhn_automl.search.high_error import ensure_high_error_sets, needs_high_error_set
from fhn_automl.search.latency import cache_path, grid_latencies
from fhn_automl.search.lock import experiment_lock
from fhn_automl.search.mo_packed import packed_mo_tune_setup
from fhn_automl.search.moasha import ParetoASHAScheduler
from fhn_automl.search.monitor import SearchMonitor
from fhn_automl.search.objectives import make_sampler, models_from_results, report_front
from fhn_automl.search.options import SearchOptions, SearchSummary, tune_location
from fhn_automl.search.packed_trial import PackMonitor, packed_tune_setup
from fhn_automl.search.ray_cluster import init_ray
from fhn_automl.search.replay import existing_run, read_search_state, replay_trials, write_search_state
from fhn_automl.search.resources import ResourcePlan, cluster_nodes, plan_resources
from fhn_automl.search.space import SearchSpace, TrialSpec, check_packed_multi_objective
from fhn_automl.search.tracking import (SearchTracker, check_experiment_storage, environment_tags, experiment_name,
                                        resolve_tracking_uri)
from fhn_automl.search.tracking_tags import STORAGE_TAG
from fhn_automl.search.trial import TrialPlan, function_trial, trial_driver, trial_from_config
from fhn_automl.search.tune_state import check_before_restore, error_signer, sign_files, signing_tune_writes
from fhn_automl.search.untrained import run_untrained_sweep

logger = logging.getLogger(__name__)
#: The Optuna study of a model-based search, in its Tune folder: ``optuna-dashboard sqlite:///<that file>``.
OPTUNA_DB = "optuna.db"



class NothingToResumeError(RuntimeError):
    """``--resume`` found no interrupted search to continue."""


def build_datasets(trials: list[TrialSpec], data_root: str) -> dict[str, str]:
    """Build each problem's dataset once, here in the driver, and return absolute folders.

    Tune runs every trial in its own working directory, so only absolute paths survive the trip.
    """
    problems = sorted({t.problem for t in trials if t.kind != "untrained"})
    if not problems:
        return {}
    root = Path(data_root).resolve()
    data_dirs: dict[str, str] = {}
    for problem in problems:
        first = next(t for t in trials if t.problem == problem)
        started = time.perf_counter()
        data_dirs[problem] = str(Path(ensure_dataset(first.resolved_problem, root=str(root),
                                                     n_trajectories=first.n_trajectories, seed=0,
                                                     device="auto")).resolve())
        logger.info("dataset %s ready in %.1f s: %s", problem, time.perf_counter() - started,
                    data_dirs[problem])
    return data_dirs


def _high_error_sets(trials: list[TrialSpec], data_dirs: dict[str, str]) -> dict[str, str]:
    """The ``data:high_error`` sets, built once here before any trial (see ``search.high_error``).
    A failure is logged and leaves those trials to end as ``error``; the others still run."""
    if not any(needs_high_error_set(t) for t in trials):
        return {}
    try:
        return ensure_high_error_sets(trials, data_dirs)
    except Exception:
        logger.exception("could not build the high-error set; trials with extra_region "
                         "data:high_error will fail")
        return {}


def run_search(options: SearchOptions) -> SearchSummary:
    """Run (or resume) one search and return what happened; see the module docstring.

    Holds the experiment's lock (``search.lock``) throughout: a second search of the same experiment
    and storage raises ``SearchLockedError`` instead of deleting this one's Tune state.
    """
    experiment = experiment_name(options.space.name, options.budget.name)
    with experiment_lock(tune_location(options, experiment)[2]):
        return _run_search(options)


def _run_search(options: SearchOptions) -> SearchSummary:
    """The search's steps, in order; each is a function below that can run alone."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    trials = options.space.select_trials(options.budget, options.study)
    site = search_site(options)
    check_before_start(options, site, trials)
    if any(t.kind == "untrained" for t in trials):
        return run_untrained_sweep(options, trials, site.experiment, site.tracking_uri)

    data_dirs = _timed(timings, "datasets_seconds", build_datasets, trials, options.data_root)
    extra_sets = _timed(timings, "high_error_sets_seconds", _high_error_sets, trials, data_dirs)
    _timed(timings, "ray_init_seconds", init_ray, options.address)
    resources = plan_resources(options.space.resources, cluster_nodes())
    concurrent = min(resources.concurrent_trials, options.max_concurrent or resources.concurrent_trials)
    resuming, resume_parent = prepare_tune_folder(options, site)
    tracker = open_parent_run(options, site, trials, resources, concurrent, data_dirs, resume_parent)
    plan = trial_plan(options, site, trials, resources, data_dirs, extra_sets, timings)
    experiment = tune_experiment(options, site, trials, plan, concurrent)
    # MLflow calls on a background thread: Tune starts no trial while a callback runs (TrackingQueue)
    monitor = SearchMonitor(tracker, key=site.tune_name, total=experiment.total, metric=options.space.search.metric,
                            quiet=options.quiet, trial_lookup=trial_from_config, background=True)
    announce(options, site, experiment, resources, concurrent, tracker)
    tuner = make_tuner(options, site, experiment, monitor, resuming)
    return fit_search(options, site, tuner, experiment, monitor, tracker, resuming, timings, started)


def _timed(timings: dict[str, float], key: str, step: Callable[..., Any], *args: Any) -> Any:
    """``step(*args)``, its wall seconds recorded as ``timings[key]``."""
    t0 = time.perf_counter()
    try:
        return step(*args)
    finally:
        timings[key] = time.perf_counter() - t0


@dataclasses.dataclass(frozen=True)
class SearchSite:
    """Where one search lives, derived once from its options: the MLflow experiment and store, and the
    Tune experiment (storage, name, folder)."""

    experiment: str
    tracking_uri: str
    storage: str | Path
    tune_name: str
    tune_path: str

    @property
    def local(self) -> bool:
        """The Tune folder is on this machine (not a remote ``--storage`` URI): its files are signed,
        and it holds the search-state file and a model-based search's Optuna study."""
        return not _is_uri(str(self.storage))


def search_site(options: SearchOptions) -> SearchSite:
    experiment = experiment_name(options.space.name, options.budget.name)
    storage, tune_name, tune_path = tune_location(options, experiment)
    return SearchSite(experiment=experiment, tracking_uri=resolve_tracking_uri(options.tracking_uri),
                      storage=storage, tune_name=tune_name, tune_path=tune_path)


def check_before_start(options: SearchOptions, site: SearchSite, trials: list[TrialSpec]) -> None:
    """What can be refused before anything is written or Ray starts."""
    # seconds, not minutes, to learn that the cluster or the tracking server is not there
    check_tracking_store(site.tracking_uri)
    check_ray_address(options.address)
    check_experiment_storage(site.tracking_uri, site.experiment, str(site.storage))
    if options.resume and site.local and (Path(site.tune_path) / "tuner.pkl").is_file():
        check_before_restore(site.tune_path)  # Tune must unpickle only what we wrote
    space = options.space
    if space.search.multi is not None and space.resources.executor == "packed" and \
            space.search.algorithm == "multi_objective":  # one study per run
        check_packed_multi_objective(space, trials)


def prepare_tune_folder(options: SearchOptions, site: SearchSite) -> tuple[bool, str | None]:
    """(resuming, the parent run to resume): ``--resume`` needs a Tune experiment to restore; a fresh
    start removes the previous Tune state of a local folder."""
    from ray import tune

    if options.resume:
        if tune.Tuner.can_restore(site.tune_path):
            return True, read_search_state(site.tune_path).get("parent_run_id")
        raise NothingToResumeError(f"--resume: no interrupted search at {site.tune_path}; run "
                                   f"without --resume to start it")
    if site.local and Path(site.tune_path).exists():
        logger.warning("starting %s afresh: removing the previous Tune state at %s (its results "
                       "stay in MLflow; pass --resume to continue it instead)", site.experiment, site.tune_path)
        shutil.rmtree(site.tune_path)
    return False, None


def open_parent_run(options: SearchOptions, site: SearchSite, trials: list[TrialSpec], resources: ResourcePlan,
                    concurrent: int, data_dirs: dict[str, str], resume_parent: str | None) -> SearchTracker:
    """The search's MLflow parent run (reopened on resume) with its params, tags and datasets; a local
    Tune folder also records them (what ``--sync-tracking`` needs to remake it in a store that lost it)."""
    space, budget = options.space, options.budget
    tracker = SearchTracker(site.tracking_uri, site.experiment, strict=options.strict_tracking)
    resume_parent = existing_run(tracker, resume_parent)  # a store replaced after an outage lost it
    search_params = {
        "search_file": str(space.path), "budget": budget.name, "algorithm": space.search.algorithm,
        "scheduler": space.scheduler.kind, "n_trials": len(trials) if space.search.algorithm == "grid"
        else budget.num_samples or space.search.num_samples,
        "workers_per_trial": resources.workers, "per_worker": json.dumps(resources.per_worker),
        "executor": space.resources.executor,
        "concurrent_trials": concurrent, "study": options.study or "all",
        "steps": trials[0].steps if trials else 0, "metric": space.search.metric}
    environment = {**environment_tags(resources.device), STORAGE_TAG: str(site.storage)}
    tracker.start_search(search_name=space.name, budget=budget.name, params=search_params,
                         tags=environment, search_file=space.path,
                         resume_parent_run_id=resume_parent, datasets=data_dirs)
    if site.local:
        write_search_state(site.tune_path, {"parent_run_id": tracker.parent_run_id, "experiment": site.experiment,
                                            "params": search_params, "tags": environment, "datasets": data_dirs})
    return tracker


def _packed_multi_objective(options: SearchOptions) -> bool:
    return options.space.resources.executor == "packed" and options.space.search.algorithm == "multi_objective"


def trial_plan(options: SearchOptions, site: SearchSite, trials: list[TrialSpec], resources: ResourcePlan,
               data_dirs: dict[str, str], extra_sets: dict[str, str], timings: dict[str, float]) -> TrialPlan:
    """What every trial is handed; a search with a latency objective measures every architecture of
    the grid here, once (a packed multi-objective search measures as it asks: ``search.mo_packed``)."""
    latency_ms: dict[str, float] = {}
    multi = options.space.search.multi
    if multi is not None and multi.needs_latency and not _packed_multi_objective(options):
        latency_ms = _timed(timings, "latency_seconds", grid_latencies, trials, multi.latency,
                            cache_path(site.storage))
    return TrialPlan(train_fn=options.train_fn, device=resources.device, threads=max(1, int(resources.per_worker["CPU"])),
                     data_root=str(Path(options.data_root).resolve()), data_dirs=data_dirs, extra_sets=extra_sets,
                     latency_ms=latency_ms, workers=resources.workers, per_worker=resources.per_worker,
                     use_gpu=resources.use_gpu, train_storage=f"{site.storage}/{site.tune_name}-train",
                     max_failures=options.max_failures)


@dataclasses.dataclass(frozen=True)
class TuneExperiment:
    """What Tune runs: the trainable (with its resources), its param space and ``TuneConfig``, the
    number of trials (members, for packs), and whether a Tune trial is a pack of them."""

    trainable: Any
    param_space: dict[str, Any]
    tune_config: Any
    total: int
    packed: bool


def tune_experiment(options: SearchOptions, site: SearchSite, trials: list[TrialSpec], plan: TrialPlan,
                    concurrent: int) -> TuneExperiment:
    """The trainable and set-up of the file's executor, algorithm and scheduler."""
    from ray import tune

    space, budget = options.space, options.budget
    executor = space.resources.executor
    # executor function / packed: the trial trains in its own process, so it holds the worker's resources itself
    trial_resources = {"cpu": plan.per_worker["CPU"], **({"gpu": plan.per_worker["GPU"]} if plan.use_gpu else {})}
    if executor == "packed":  # a Tune trial trains a pack of trials (search.packed_trial)
        trainable = tune.with_resources(packed_executor.packed_trial, trial_resources)
        if space.search.algorithm == "multi_objective":  # Optuna asks a pack at a time
            path = cache_path(site.storage)
            param_space, tune_config, total = packed_mo_tune_setup(
                space, trials, plan, concurrent, budget.num_samples or space.search.num_samples,
                None if path is None else str(path))
        else:
            param_space, tune_config = packed_tune_setup(space, trials, plan, concurrent)
            total = len(trials)
        return TuneExperiment(trainable, param_space, tune_config, total, packed=True)
    # a model-based search's Optuna study lives beside Tune's state (a fresh start removes both); with
    # remote --storage it stays in memory, inside Tune's searcher state
    optuna_storage = None
    if space.search.algorithm != "grid" and site.local:
        Path(site.tune_path).mkdir(parents=True, exist_ok=True)
        optuna_storage = f"sqlite:///{Path(site.tune_path) / OPTUNA_DB}"
    param_space, tune_config, total = tune_setup(space, budget, trials, plan, concurrent,
                                                 optuna_storage=optuna_storage, optuna_study=site.tune_name)
    if executor == "function":
        trainable = tune.with_resources(function_trial, trial_resources)
    else:
        trainable = tune.with_resources(trial_driver, {"cpu": 0, "memory": 1})
    return TuneExperiment(trainable, param_space, tune_config, total, packed=False)


def announce(options: SearchOptions, site: SearchSite, experiment: TuneExperiment, resources: ResourcePlan,
             concurrent: int, tracker: SearchTracker) -> None:
    """The search's first console line: trials, concurrency, resources, executor, MLflow."""
    if not options.quiet:
        print(f"[search] {site.experiment}: {experiment.total} trial(s), {concurrent} at a time, "
              f"{resources.workers} worker(s) x {resources.per_worker} each, device {resources.device}, "
              f"executor {options.space.resources.executor}; "
              f"MLflow {site.tracking_uri} (parent run {tracker.parent_run_id})", flush=True)


def make_tuner(options: SearchOptions, site: SearchSite, experiment: TuneExperiment, monitor: SearchMonitor,
               resuming: bool) -> Any:
    """The ``Tuner`` (restored on ``--resume``) with the monitor and Tune's own result files."""
    from ray import tune
    # Tune's own result files (result.json, which --sync-tracking replays, and progress.csv), but not
    # its TensorBoard logger: its pointer named the driver's temporary staging folder, not the files,
    # and MLflow holds the same curves (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS is set around fit())
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    callbacks: list[Any] = [PackMonitor(monitor) if experiment.packed else monitor]
    callbacks += [JsonLoggerCallback(), CSVLoggerCallback()]
    guards: list[Any] = [error_signer(site.tune_path)] if site.local else []
    run_config = tune.RunConfig(
        name=site.tune_name, storage_path=str(site.storage), callbacks=callbacks + guards, verbose=0,
        failure_config=tune.FailureConfig(max_failures=options.max_failures))
    if resuming:
        tuner = tune.Tuner.restore(site.tune_path, experiment.trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        tuner = tune.Tuner(experiment.trainable, param_space=experiment.param_space,
                           tune_config=experiment.tune_config, run_config=run_config)
    if site.local:
        sign_files(site.tune_path, [Path(site.tune_path) / "tuner.pkl"])  # written by Tuner() / Tuner.restore just now
    return tuner


def fit_search(options: SearchOptions, site: SearchSite, tuner: Any, experiment: TuneExperiment,
               monitor: SearchMonitor, tracker: SearchTracker, resuming: bool, timings: dict[str, float],
               started: float) -> SearchSummary:
    """``tuner.fit()``, then (resume) the replay of what MLflow missed and (multi-objective) the front;
    the parent run is closed whatever happens."""
    interrupted = False
    replayed = None
    try:
        with _no_default_tune_loggers(), _end_only_objectives(options.space), _sigint_kept(), (
                signing_tune_writes(site.tune_path) if site.local else contextlib.nullcontext()):
            results = _timed(timings, "tune_fit_seconds", tuner.fit)
        monitor.drain()  # the replay below reads what the queued calls write (which trials are closed)
        if resuming and site.local:
            # trials that ended while MLflow was down, or as the previous driver was killed, are
            # complete in the Tune folder but not in MLflow; Tune does not run them again
            replayed = replay_trials(tracker, site.tune_path, quiet=options.quiet)
        if options.space.search.multi is not None:
            report_search_front(options, site, experiment, monitor, tracker, results, resuming)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        closed = close_search(options, monitor, tracker, replayed, interrupted, timings)
    wall = time.perf_counter() - started
    if not options.quiet:
        best_text = "none" if closed.best is None else f"{closed.best[0]:.3e} ({closed.best[1]})"
        print(f"[search] {site.experiment} done in {wall:.0f} s: {closed.counts}; best "
              f"{options.space.search.metric} {best_text}"
              + (f"; TRACKING FAILED: {closed.tracking_problem}" if closed.tracking_problem else ""), flush=True)
    best = closed.best
    return SearchSummary(experiment=site.experiment, tracking_uri=site.tracking_uri,
                         parent_run_id=tracker.parent_run_id, n_trials=monitor.total, statuses=closed.statuses,
                         best_trial=None if best is None else best[1],
                         best_value=None if best is None else best[0], wall_seconds=wall,
                         interrupted=closed.interrupted, tune_path=site.tune_path, timings=timings,
                         tracking_problem=closed.tracking_problem, models_missing=closed.models_missing,
                         trial_errors=dict(monitor.errors))


def report_search_front(options: SearchOptions, site: SearchSite, experiment: TuneExperiment,
                        monitor: SearchMonitor, tracker: SearchTracker, results: Any, resuming: bool) -> None:
    """A multi-objective search's front, its figure and each constraint query's answer."""
    multi = options.space.search.multi
    asked = getattr(getattr(experiment.tune_config, "search_alg", None), "asked", None)
    if asked is not None and not resuming:  # a packed MO search may exhaust its space early
        monitor.total = asked
    models = models_from_results(results, multi.keys, lambda spec: TrialSpec.from_dict(spec).name,
                                 extra=[c.key for c in multi.constraints])
    report_front(tracker, multi, models, Path(site.tune_path) / "front" if site.local else Path("runs") / "front",
                 quiet=options.quiet)


@dataclasses.dataclass(frozen=True)
class ClosedSearch:
    """What the search ended with, once the parent run is closed."""

    statuses: dict[str, str]
    models_missing: list[str]
    best: tuple[float, str] | None
    counts: dict[str, int]
    interrupted: bool
    tracking_problem: str | None


def close_search(options: SearchOptions, monitor: SearchMonitor, tracker: SearchTracker, replayed: Any,
                 interrupted: bool, timings: dict[str, float]) -> ClosedSearch:
    """Every queued MLflow call lands, then the parent run is closed with the counts; a strict tracker's
    error is raised after that."""
    drain_error = None
    try:
        monitor.drain()  # every queued MLflow call lands before the parent run is closed
    except Exception as exc:  # a strict tracker's error: raised below, once the parent run is closed
        drain_error = exc
    timings["mlflow_drain_seconds"] = monitor.queue.drain_seconds if monitor.queue else 0.0
    statuses = {**(replayed.statuses if replayed else {}), **monitor.statuses}
    attached = set(replayed.models_attached) if replayed else set()
    models_missing = sorted((set(monitor.missing_models) - attached)
                            | set(replayed.models_missing if replayed else ()))
    best = monitor.best
    counts = {status: sum(1 for s in statuses.values() if s == status)
              for status in ("finished", "diverged", "error")}
    summary_metrics: dict[str, float] = {f"n_{k}": v for k, v in counts.items()}
    if best is not None:
        summary_metrics[f"best_{options.space.search.metric}"] = best[0]
    interrupted = interrupted or len(statuses) < monitor.total
    summary_metrics["n_models_missing"] = len(models_missing)
    tracker.end_search(summary_metrics, interrupted=interrupted)
    tracking_problem = tracker.store_problem()
    timings["mlflow_seconds"] = tracker.logging_seconds
    if monitor.first_result_seconds:
        timings["mean_trial_start_to_first_result_seconds"] = (
            sum(monitor.first_result_seconds) / len(monitor.first_result_seconds))
    monitor.detach()
    if drain_error is not None:
        raise drain_error
    return ClosedSearch(statuses=statuses, models_missing=models_missing, best=best, counts=counts,
                        interrupted=interrupted, tracking_problem=tracking_problem)


@contextlib.contextmanager
def _sigint_kept():
    """Tune installs its own SIGINT handler in ``fit`` and puts the previous one back only when a signal
    arrives; after a search that ended normally Ctrl-C then only set a flag nobody read, so a
    post-stage that followed could not be stopped. The handler is put back here either way."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if main and before is not None:
            signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def _no_default_tune_loggers() -> Iterator[None]:
    """Tune adds CSV, JSON and TensorBoard loggers unless this variable says not to; the search
    passes the first two itself (see ``_run_search``). Put back afterwards: it is process-wide."""
    with _environment_variable("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"):
        yield


@contextlib.contextmanager
def _end_only_objectives(space: SearchSpace) -> Iterator[None]:
    """Tune refuses a result without every objective of its searcher in it, but the ``final_full_*``
    figures (the reported error, a beat problem's physiology metrics) exist only in a trial's final
    result, the one Optuna is told; the validations before it lack them. For a search with such an
    objective Tune's check is switched off around ``fit`` (process-wide, so put back afterwards)."""
    multi = space.search.multi
    if multi is None or space.resources.executor == "packed" or not any(
            key.startswith("final_full_") for key in multi.keys):
        yield  # packed: the searcher reads each member's final record itself (search.mo_packed)
        return
    with _environment_variable("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1"):
        yield


@contextlib.contextmanager
def _environment_variable(key: str, value: str) -> Iterator[None]:
    before = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def trial_counter(trial: Any) -> int:
    """The 0-based creation count of a Tune trial that a searcher suggested: it makes the Optuna trial's
    name (and the name its MLflow child run is found by), so it must survive a restore.

    Tune's ``SearchGenerator`` counts the trials it creates (the count is in its saved state) and puts
    the count first in the trial's ``experiment_tag`` (``"<count>_<sampled values>"``, 1-based); older
    Ray also ended the trial id with it (``<run id>_<0-based count>``), Ray 2.60's ids are random hex.
    """
    head = str(getattr(trial, "experiment_tag", "") or "").split("_", 1)[0]
    if head.isdigit():
        return int(head) - 1
    tail = str(trial.trial_id).rsplit("_", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return int(tail[1])
    raise ValueError(f"Tune trial {trial.trial_id!r} (tag {trial.experiment_tag!r}) carries no creation count")


def _is_uri(value: str | None) -> bool:
    return bool(value) and "://" in str(value)


def tune_setup(space: SearchSpace, budget: Budget, trials: list[TrialSpec],
               plan: TrialPlan, concurrent: int, *, optuna_storage: str | None = None,
               optuna_study: str = "fhn_automl") -> tuple[dict, Any, int]:
    """Param space, ``TuneConfig`` and trial count for the file's algorithm and scheduler.

    ``optuna_storage``: an Optuna RDB URL (``sqlite:///<search folder>/optuna.db``) where a model-based
    search keeps its study ``optuna_study``, so ``optuna-dashboard`` and ``optuna.load_study`` open it;
    None keeps it in memory (inside Tune's searcher state only).
    """
    from ray import tune

    metric = space.search.metric
    scheduler = None
    steps = max(t.steps for t in trials)
    if space.scheduler.kind in ("asha", "moasha"):
        from ray.tune.schedulers import ASHAScheduler

        val_every = min(t.val_every for t in trials)
        grace = space.scheduler.grace_steps(steps, val_every)
        # Every rung at or before the last validation *before* the last step (ASHA's rungs go up to
        # max_t): a rung first crossed at the last step, or max_t itself there, would stop a trial at its
        # last validation, before its final report (the model at training end, final_full_val_*), and
        # tag it stopped early although it trained every step. In-pack halving keeps its rungs below too.
        last_cut = ((steps - 1) // val_every) * val_every
        if grace > last_cut:
            logger.warning("scheduler: asha has no rung before the last step (grace %d, last validation "
                           "before the end %d): every trial runs to its end", grace, last_cut)
        elif space.scheduler.kind == "moasha":  # MOASHA: rungs promote by Pareto rank of (error, cost)
            cost = next(k for k in space.search.multi.keys if k != metric)
            scheduler = ParetoASHAScheduler(time_attr="step", metric=metric, cost_attr=cost, max_t=last_cut,
                                            grace_period=grace, reduction_factor=space.scheduler.reduction_factor)
        else:
            scheduler = ASHAScheduler(time_attr="step", metric=metric, mode="min", max_t=last_cut,
                                      grace_period=grace, reduction_factor=space.scheduler.reduction_factor,
                                      stop_last_trials=False)

    def name_trial(trial: Any) -> str:
        return trial_from_config(trial.config).name

    if space.search.algorithm == "grid":
        param_space = {"trial": tune.grid_search([t.as_dict() for t in trials]), "plan": plan.as_config()}
        tune_config = tune.TuneConfig(scheduler=scheduler, num_samples=1,
                                      max_concurrent_trials=concurrent,
                                      trial_name_creator=name_trial, trial_dirname_creator=name_trial)
        return param_space, tune_config, len(trials)

    from ray.tune.search.optuna import OptunaSearch

    template = trials[0].as_dict()
    dimensions: dict[str, Any] = {}
    for key in ("layers", "problem", "kind", "batch_size", "extra_region", "window", "seed"):
        values = list(dict.fromkeys(getattr(t, key) for t in trials))
        if len(values) > 1:
            dimensions[key] = tune.choice(values)
    for key in template["options"]:
        values = list(dict.fromkeys(t.options[key] for t in trials))
        if len(values) > 1:
            dimensions[f"option.{key}"] = tune.choice(values)
    num_samples = budget.num_samples or space.search.num_samples
    storage = None
    if optuna_storage is not None:
        import optuna

        storage = optuna.storages.RDBStorage(optuna_storage)
    study = {"storage": storage, "study_name": optuna_study} if storage is not None else {}
    if space.search.algorithm == "multi_objective" and space.search.multi is not None:
        keys = list(space.search.multi.keys)  # constraints: answered at the end (packed: also sampled with)
        searcher = OptunaSearch(metric=keys, mode=["min"] * len(keys),
                                sampler=make_sampler(space.search.multi.sampler, space.search.seed), **study)
    elif space.search.algorithm == "multi_objective":
        searcher = OptunaSearch(metric=[metric, space.search.cost_metric], mode=["min", "min"],
                                seed=space.search.seed, **study)
    else:
        searcher = OptunaSearch(metric=metric, mode="min", seed=space.search.seed, **study)

    def index_trial(trial: Any) -> str:
        trial.config.setdefault("index", trial_counter(trial))
        return trial_from_config(trial.config).name

    param_space = {"sampled": dimensions, "template": template, "plan": plan.as_config()}
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                  max_concurrent_trials=concurrent, trial_name_creator=index_trial,
                                  trial_dirname_creator=index_trial)
    return param_space, tune_config, num_samples
