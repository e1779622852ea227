"""Running a search on Ray: Tune trials whose drivers train with Ray Train workers.

The shape (Ray 2.60, Train V2; FACTS.md): every Tune trial is a small *driver function* holding no CPU
(``{"cpu": 0, "memory": 1}``) that builds a ``TorchTrainer`` whose workers run the learning layer's
``train(config, report)``. Each ``report`` becomes ``ray.train.report`` with the trainer's checkpoint
folder, ``TuneReportCallback`` forwards it to Tune, and Tune streams it to the search driver, where
``SearchMonitor`` writes MLflow and prints progress. Nothing but the driver talks to MLflow.

Fault tolerance comes in two layers: Train's ``FailureConfig`` restarts a lost worker from the last
checkpoint; Tune's restarts a lost trial driver, whose new ``TorchTrainer`` (same run name and storage)
picks up the Train run's latest checkpoint. ``--resume`` restores the Tune experiment, which keeps
finished trials finished; the MLflow callback finds the child runs it made before and adds to them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fhn_automl.search.budgets import Budget
from fhn_automl.search.space import Resources, SearchSpace, TrialSpec
from fhn_automl.search.tracking import (SearchTracker, environment_tags, experiment_name,
                                        resolve_tracking_uri, trial_params)

logger = logging.getLogger(__name__)

#: The learning layer's entry point; a ``module:function`` string so Ray workers import it lazily.
DEFAULT_TRAIN_FN = "fhn_automl.learning.trainer:train"
#: Ray Train's controller polls workers every 2 s by default and each report waits for the poll;
#: 0.2 s cut a smoke trial from 33.5 s to 14.9 s (FACTS.md).
HEALTH_CHECK_INTERVAL_S = "0.2"
#: Ray Train V2 settings the search sets (unless the environment already does) on the driver and,
#: through the job's runtime env, on every worker. Per Train trial Ray starts ~7 processes (controller,
#: worker, placement-group cleaner, dataset manager, synchronization actor, report queue, preemption
#: watcher); each costs 1-3 s of CPU on two cores. The preemption watcher only helps on spot nodes
#: that announce their draining (FailureConfig still restarts a trial whose node vanishes), and
#: Train's Prometheus metrics have no reader here: both off. Set them to 1 in the environment to keep them.
TRAIN_ENV_DEFAULTS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": HEALTH_CHECK_INTERVAL_S,
                      "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
                      "RAY_TRAIN_METRICS_ENABLED": "0"}
#: Marks the last checkpoint of a trial: it holds the final metrics and the best model, not a
#: training state, so a trial restored from it reports it again instead of training.
FINAL_FILE = "fhn_automl_final.json"
#: Written beside Tune's state so ``--resume`` reopens the same MLflow parent run.
SEARCH_STATE_FILE = "fhn_automl_search.json"


class UnsatisfiableResourcesError(RuntimeError):
    """A trial asks for more than the cluster can ever give; raised before anything is launched."""


class NothingToResumeError(RuntimeError):
    """``--resume`` found no interrupted search to continue."""


# ----------------------------------------------------------------------------- resources


@dataclasses.dataclass(frozen=True)
class ResourcePlan:
    """What each trial gets on this cluster and how many trials fit at once."""

    workers: int
    per_worker: dict[str, float]
    use_gpu: bool
    concurrent_trials: int
    cluster: dict[str, float]

    @property
    def device(self) -> str:
        return "cuda" if self.use_gpu else "cpu"


def plan_resources(resources: Resources, nodes: list[Mapping[str, float]]) -> ResourcePlan:
    """Fit ``resources`` onto the nodes (each a mapping of resource totals) or raise why not.

    A Train worker must fit on one node; a trial needs ``workers`` such slots somewhere in the cluster.
    Counting slots node by node (not the cluster total) is what catches "4 CPUs per worker on nodes of
    2" before Tune would wait forever for it.
    """
    has_gpu = any(node.get("GPU", 0) > 0 for node in nodes)
    if resources.use_gpu == "always" and not has_gpu:
        raise UnsatisfiableResourcesError(
            "the search file says resources.use_gpu: always but the cluster has no GPU")
    use_gpu = resources.gpus_per_worker > 0 and (resources.use_gpu == "always" or
                                                 (resources.use_gpu == "auto" and has_gpu))
    per_worker = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    slots = 0
    for node in nodes:
        slots += min(math.floor(node.get(name, 0.0) / need + 1e-9) for name, need in per_worker.items())
    cluster = {name: sum(node.get(name, 0.0) for node in nodes) for name in ("CPU", "GPU")}
    if slots < resources.workers:
        largest = max((dict(node) for node in nodes), key=lambda n: n.get("CPU", 0), default={})
        raise UnsatisfiableResourcesError(
            f"a trial needs {resources.workers} worker(s) of {per_worker}, but the cluster "
            f"(totals {cluster}, largest node CPU={largest.get('CPU', 0)} GPU={largest.get('GPU', 0)}) "
            f"fits only {slots}; lower resources.workers / cpus_per_worker / gpus_per_worker in the "
            f"search file or add nodes")
    return ResourcePlan(workers=resources.workers, per_worker=per_worker, use_gpu=use_gpu,
                        concurrent_trials=max(1, slots // resources.workers), cluster=cluster)


def cluster_nodes() -> list[dict[str, float]]:
    """Resource totals of the live nodes of the connected Ray cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


# ----------------------------------------------------------------------------- train config


def architecture_figures(trial: TrialSpec) -> dict[str, Any]:
    """Depth, widths, activations, shape class and costs of a trial's network (MLflow params)."""
    from fhn_automl.learning.architecture import (count_macs, count_neurons, count_parameters,
                                                  parse_layers, shape_class)
    from fhn_automl.physics.problems import get_problem

    problem = get_problem(trial.problem)
    layers = parse_layers(trial.layers)
    n_in, n_out = len(problem.inputs), len(problem.outputs)
    return {"depth": len(layers), "widths": [layer.width for layer in layers],
            "activations": [layer.activation for layer in layers], "shape_class": shape_class(layers),
            "neurons": count_neurons(layers), "parameters": count_parameters(layers, n_in, n_out),
            "macs": count_macs(layers, n_in, n_out)}


def train_config(trial: TrialSpec, *, data_dir: str | None, device: str, threads: int = 1,
                 data_root: str | None = None) -> dict[str, Any]:
    """The learning layer's config for one trial (``out_dir`` is filled in on the worker).

    ``n_trajectories`` and ``data_root`` travel too, so a trainer that has to build the dataset itself
    (no ``data_dir`` on its node) builds the same one the driver did.
    """
    config: dict[str, Any] = {
        "problem": trial.problem, "kind": trial.kind, "layers": trial.layers, "steps": trial.steps,
        "batch_size": trial.batch_size, "recipe": trial.recipe, "val_every": trial.val_every,
        "seed": trial.seed, "device": device, "extra_region": trial.extra_region,
        "window": trial.window, "data_dir": data_dir, "n_trajectories": trial.n_trajectories,
        "threads": threads}
    if data_root is not None:
        config["data_root"] = data_root
    config.update(trial.options)
    return config


# ----------------------------------------------------------------------------- Ray Train worker


def _load_function(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def train_worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: ``train(config, report)`` with Ray's report and checkpoints.

    Restored from a checkpoint, it hands that folder to ``train`` (which resumes from it), unless
    the checkpoint is the trial's final one: then the trial is already done and only says so again.
    """
    loop_started = time.time()
    import ray.train

    context = ray.train.get_context()
    _train_and_report(loop_config, rank=context.get_world_rank(),
                      checkpoint=ray.train.get_checkpoint(), report_fn=ray.train.report,
                      checkpoint_cls=ray.train.Checkpoint, loop_started=loop_started)


def function_trial(config: dict[str, Any]) -> None:
    """``executor: function``: one Tune function trial that trains in its own process, no Ray Train.

    Same ``train(config, report)`` and the same checkpoints as ``train_worker_loop``, reported with
    ``ray.tune.report``; Tune's ``FailureConfig`` restarts a lost trial from ``tune.get_checkpoint()``.
    """
    loop_started = time.time()
    from ray import tune

    loop_config = _loop_config(config)
    loop_config["timing"]["ts_driver_start"] = loop_started
    _train_and_report(loop_config, rank=0, checkpoint=tune.get_checkpoint(), report_fn=tune.report,
                      checkpoint_cls=tune.Checkpoint, loop_started=loop_started)


def _process_created() -> float:
    """When this worker process started (wall clock), so start-up can be split into spawn and init."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil comes with ray[default]; without it the figure is just missing
        return float("nan")


def _train_and_report(loop_config: dict[str, Any], *, rank: int, checkpoint: Any,
                      report_fn: Callable[..., None], checkpoint_cls: Any,
                      loop_started: float) -> None:
    # worker_session tells the driver when a trial's workers were restarted (lost node, --resume)
    timing = {**loop_config.get("timing", {}), "ts_worker_process": _process_created(),
              "ts_loop_start": loop_started}
    static = {**loop_config["static_metrics"], "worker_session": time.time()}
    config = dict(loop_config["train_config"])
    _ensure_data_on_this_node(config)

    scratch = Path(tempfile.mkdtemp(prefix="fhn_automl_trial_"))
    config["out_dir"] = str(scratch / "out")
    resume_dir = None
    if checkpoint is not None:
        resume_dir = scratch / "resume"
        checkpoint.to_directory(str(resume_dir))
        final_file = resume_dir / FINAL_FILE
        if final_file.exists():
            final = json.loads(final_file.read_text())
            report_fn({**final, **static, "final": 1})
            return
    report_counter = {"n": 0, "seconds": 0.0}

    def report(metrics: Mapping[str, Any], checkpoint_dir: str | os.PathLike | None) -> None:
        started = time.perf_counter()
        if report_counter["n"] == 0:
            timing["ts_first_report"] = time.time()
        payload = {**_scalars(metrics), **static, "resumed": int(resume_dir is not None),
                   "report_seconds_total": report_counter["seconds"]}
        ray_checkpoint = None
        if checkpoint_dir is not None and rank == 0:
            ray_checkpoint = checkpoint_cls.from_directory(str(checkpoint_dir))
        report_fn(payload, checkpoint=ray_checkpoint)
        report_counter["n"] += 1
        report_counter["seconds"] += time.perf_counter() - started

    train = _load_function(loop_config["train_fn"])  # imports torch and the learning layer
    timing["ts_imports_done"] = time.time()
    started = time.perf_counter()
    timing["ts_train_start"] = time.time()
    final = train(config, report, checkpoint=str(resume_dir) if resume_dir else None)
    train_seconds = time.perf_counter() - started
    timing["ts_train_end"] = time.time()

    # The final report carries the best model; every rank must report (it is a barrier).
    final_metrics = {**_scalars(final), "train_call_seconds": train_seconds,
                     "report_seconds_total": report_counter["seconds"],
                     "reports": report_counter["n"], **timing}
    final_checkpoint = None
    if rank == 0:
        final_dir = scratch / "final"
        final_dir.mkdir()
        model_dir = final.get("model_dir")
        if model_dir and Path(model_dir).is_dir():
            shutil.copytree(model_dir, final_dir / "model")
        (final_dir / FINAL_FILE).write_text(json.dumps(final_metrics, default=str))
        final_checkpoint = checkpoint_cls.from_directory(str(final_dir))
    report_fn({**final_metrics, **static, "final": 1}, checkpoint=final_checkpoint)
    shutil.rmtree(scratch, ignore_errors=True)


def _ensure_data_on_this_node(config: dict[str, Any]) -> None:
    """On a cluster without a shared file system the driver's dataset folder is not on this node:
    let the trainer build it locally (the folder name is deterministic and so is the data)."""
    data_dir = config.get("data_dir")
    if data_dir and not Path(data_dir).exists():
        config["data_dir"] = None
        config["data_root"] = str(Path(tempfile.gettempdir()) / "fhn_automl_data")


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers, booleans and short strings (``status``); paths and arrays stay on the worker."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, str) and key in ("status",):
            out[key] = value
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            out[key] = value.item()
    return out


# ----------------------------------------------------------------------------- Tune trial driver


def _loop_config(config: Mapping[str, Any]) -> dict[str, Any]:
    plan = config["plan"]
    trial = trial_from_config(config)
    data_dir = plan["data_dirs"].get(trial.problem)
    train_cfg = train_config(trial, data_dir=data_dir, device=plan["device"],
                             threads=plan["threads"], data_root=plan["data_root"])
    extra = plan.get("extra_sets", {}).get(f"{trial.problem}:{trial.extra_region}")
    if extra:
        train_cfg["extra_region"] = extra  # data:<absolute path of the set the driver built>
    return {
        "train_fn": plan["train_fn"],
        "train_config": train_cfg,
        "static_metrics": {key: value for key, value in architecture_figures(trial).items()
                           if isinstance(value, (int, float))},
        "timing": {},
    }


def trial_driver(config: dict[str, Any]) -> None:
    """One Tune trial: builds and fits the ``TorchTrainer`` that trains this trial's network."""
    driver_started = time.time()
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    plan = config["plan"]
    trial = trial_from_config(config)
    loop_config = _loop_config(config)
    loop_config["timing"].update(ts_driver_start=driver_started, ts_trainer_fit=time.time())
    trainer = TorchTrainer(
        train_worker_loop,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(num_workers=plan["workers"], use_gpu=plan["use_gpu"],
                                               resources_per_worker=plan["per_worker"]),
        run_config=ray.train.RunConfig(
            name=trial.name, storage_path=plan["train_storage"],
            failure_config=ray.train.FailureConfig(max_failures=plan["max_failures"]),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def trial_from_config(config: Mapping[str, Any]) -> TrialSpec:
    """The trial of a Tune config: a whole spec (grid) or the dimensions Optuna sampled."""
    if "trial" in config:
        return TrialSpec.from_dict(config["trial"])
    template = dict(config["template"])
    sampled = dict(config["sampled"])
    options = dict(template.get("options", {}))
    for key in list(sampled):
        if key.startswith("option."):
            options[key.removeprefix("option.")] = sampled.pop(key)
    template.update(sampled)
    template["options"] = options
    template["index"] = int(config.get("index", 0))
    return TrialSpec.from_dict(template)


# ----------------------------------------------------------------------------- driver side


@dataclasses.dataclass
class SearchOptions:
    """Everything ``python -m fhn_automl.search`` can set; also the programmatic entry point."""

    space: SearchSpace
    budget: Budget
    address: str | None = None
    storage: str | None = None
    tracking_uri: str | None = None
    resume: bool = False
    data_root: str = "data"
    study: str | None = None
    max_concurrent: int | None = None
    max_failures: int = 3
    train_fn: str = DEFAULT_TRAIN_FN
    strict_tracking: bool = False
    quiet: bool = False


@dataclasses.dataclass
class SearchSummary:
    experiment: str
    tracking_uri: str
    parent_run_id: str | None
    n_trials: int
    statuses: dict[str, str]
    best_trial: str | None
    best_value: float | None
    wall_seconds: float
    interrupted: bool
    tune_path: str | None
    timings: dict[str, float]


class SearchMonitor(Callback):
    """Tune callback on the search driver: MLflow child runs and a progress line per event.

    Tune pickles its callbacks with the experiment state; this one pickles to a reference to the
    monitor of the running search (``SearchMonitor.current``), so a restored search reattaches to its
    live MLflow client instead of unpickling a dead one.
    """

    current: SearchMonitor | None = None

    def __init__(self, tracker: SearchTracker, *, total: int, metric: str, quiet: bool,
                 trial_lookup: Callable[[Mapping[str, Any]], TrialSpec]) -> None:
        self.tracker = tracker
        self.total = total
        self.metric = metric
        self.quiet = quiet
        self.trial_lookup = trial_lookup
        self.finals: dict[str, dict[str, Any]] = {}
        self.last_checkpoint: dict[str, str] = {}
        self.running: set[str] = set()
        self.statuses: dict[str, str] = dict(tracker.closed)
        self.best: tuple[float, str] | None = None
        self.started = time.perf_counter()
        self.first_result_seconds: list[float] = []
        self.trial_started_at: dict[str, float] = {}
        #: trial name -> the distinct worker sessions that reported (more than one: restarted)
        self.worker_sessions: dict[str, set[float]] = {}
        SearchMonitor.current = self

    def __reduce__(self):  # see the class docstring
        return (_current_monitor, ())

    # -- Tune hooks
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.add(trial.trial_id)
        self.trial_started_at[trial.trial_id] = time.perf_counter()
        if spec.name in self.statuses:
            return
        self.tracker.start_trial(spec.name, trial_params(spec.as_dict(),
                                                         architecture_figures(spec)))
        self._progress(f"started {spec.name}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        if trial.trial_id in self.trial_started_at:
            self.first_result_seconds.append(time.perf_counter()
                                             - self.trial_started_at.pop(trial.trial_id))
        if result.get("checkpoint_path"):
            self.last_checkpoint[spec.name] = str(result["checkpoint_path"])
        if "worker_session" in result:
            self.worker_sessions.setdefault(spec.name, set()).add(result["worker_session"])
        if result.get("final"):
            self.finals[spec.name] = dict(result)
        else:
            self.tracker.log_result(spec.name, result)
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if self.best is None or value < self.best[0]:
                self.best = (float(value), spec.name)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        # executor: function reports checkpoints to Tune itself (no ``checkpoint_path`` metric)
        path = getattr(checkpoint, "path", None)
        if path:
            self.last_checkpoint[self.trial_lookup(trial.config).name] = str(path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.discard(trial.trial_id)
        if spec.name in self.statuses:
            return
        final = self.finals.get(spec.name)
        status = "diverged" if final and final.get("status") == "diverged" else "finished"
        model_dir = None
        checkpoint = self.last_checkpoint.get(spec.name)
        if checkpoint:
            model_dir = _local_model_dir(checkpoint)
        restarts = max(0, len(self.worker_sessions.get(spec.name, ())) - 1)
        self.tracker.finish_trial(spec.name, status, final=final or trial.last_result,
                                  model_dir=model_dir, restarts=restarts)
        if final is None and self.tracker.child_runs.get(spec.name):
            # ASHA stopped it before its end; the model is the last validation's best model.
            self.tracker.client.set_tag(self.tracker.child_runs[spec.name],
                                        "fhn_automl.stopped_early", "true")
        self.statuses[spec.name] = status
        self._progress(f"{status} {spec.name}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.discard(trial.trial_id)
        if spec.name in self.statuses:
            return
        message = _trial_error_text(trial)
        self.tracker.finish_trial(spec.name, "error", final=trial.last_result, error=message)
        self.statuses[spec.name] = "error"
        self._progress(f"error {spec.name}: {message.strip().splitlines()[-1] if message else ''}")

    def _progress(self, event: str) -> None:
        if self.quiet:
            return
        done = len(self.statuses)
        running = len(self.running)
        left = max(0, self.total - done - running)
        best = "n/a" if self.best is None else f"{self.best[0]:.3e} ({self.best[1]})"
        elapsed = time.perf_counter() - self.started
        print(f"[search {elapsed:6.0f}s] done {done} / running {running} / left {left} | "
              f"best {self.metric} {best} | {event}", flush=True)


def _current_monitor() -> SearchMonitor | None:
    return SearchMonitor.current


def _local_model_dir(checkpoint_path: str) -> Path | None:
    """The ``model/`` folder of a trial's checkpoint, fetched to local disk if storage is remote."""
    path = Path(checkpoint_path)
    if path.exists():
        model = path / "model"
        return model if model.is_dir() else _model_files_dir(path)
    from ray.train import Checkpoint

    local = Path(tempfile.mkdtemp(prefix="fhn_automl_model_"))
    Checkpoint(checkpoint_path).to_directory(str(local))
    model = local / "model"
    return model if model.is_dir() else _model_files_dir(local)


def _model_files_dir(folder: Path) -> Path | None:
    """A validation checkpoint of the learning layer keeps the best model somewhere inside."""
    for spec_file in sorted(folder.rglob("spec.json")):
        if (spec_file.parent / "weights.pt").exists():
            return spec_file.parent
    return None


def _trial_error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        if path and Path(path).exists():
            return Path(path).read_text()[-4000:]
    except OSError:
        pass
    return str(getattr(trial, "error_msg", "") or "trial failed")


def build_datasets(trials: list[TrialSpec], data_root: str) -> dict[str, str]:
    """Build each problem's dataset once, here in the driver, and return absolute folders.

    Tune runs every trial in its own working directory, so only absolute paths survive the trip.
    """
    problems = sorted({t.problem for t in trials if t.kind != "untrained"})
    if not problems:
        return {}
    from fhn_automl.physics.datasets import ensure_dataset

    root = Path(data_root).resolve()
    data_dirs: dict[str, str] = {}
    for problem in problems:
        n_trajectories = next(t.n_trajectories for t in trials if t.problem == problem)
        started = time.perf_counter()
        data_dirs[problem] = str(Path(ensure_dataset(problem, root=str(root),
                                                     n_trajectories=n_trajectories, seed=0,
                                                     device="auto")).resolve())
        logger.info("dataset %s ready in %.1f s: %s", problem, time.perf_counter() - started,
                    data_dirs[problem])
    return data_dirs


def _high_error_sets(trials: list[TrialSpec], data_dirs: dict[str, str]) -> dict[str, str]:
    """The ``data:high_error`` sets, built once here before any trial (see ``search.high_error``).
    A failure is logged and leaves those trials to end as ``error``; the others still run."""
    from fhn_automl.search.high_error import ensure_high_error_sets, needs_high_error_set

    if not any(needs_high_error_set(t) for t in trials):
        return {}
    try:
        return ensure_high_error_sets(trials, data_dirs)
    except Exception:
        logger.exception("could not build the high-error set; trials with extra_region "
                         "data:high_error will fail")
        return {}


def run_search(options: SearchOptions) -> SearchSummary:
    """Run (or resume) one search and return what happened; see the module docstring."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    space, budget = options.space, options.budget
    trials = space.select_trials(budget, options.study)
    experiment = experiment_name(space.name, budget.name)
    tracking_uri = resolve_tracking_uri(options.tracking_uri)

    if any(t.kind == "untrained" for t in trials):
        from fhn_automl.search.untrained import run_untrained_sweep

        return run_untrained_sweep(options, trials, experiment, tracking_uri)

    t0 = time.perf_counter()
    data_dirs = build_datasets(trials, options.data_root)
    timings["datasets_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra_sets = _high_error_sets(trials, data_dirs)
    timings["high_error_sets_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray = _init_ray(options.address)
    timings["ray_init_seconds"] = time.perf_counter() - t0
    plan = plan_resources(space.resources, cluster_nodes())
    concurrent = min(plan.concurrent_trials, options.max_concurrent or plan.concurrent_trials)

    storage = Path(options.storage or Path("runs") / "ray").resolve() if not _is_uri(
        options.storage) else options.storage
    # The MLflow experiment is per file and budget (the post-stage's contract); Tune's state is per
    # study too, so a --study run never overwrites the state of a whole-file run.
    tune_name = experiment if options.study is None else f"{experiment}-{options.study}"
    tune_path = f"{storage}/{tune_name}"
    state_file = Path(tune_path) / SEARCH_STATE_FILE if not _is_uri(str(storage)) else None
    resume_parent = None
    resuming = False
    from ray import tune

    if options.resume:
        if tune.Tuner.can_restore(tune_path):
            resuming = True
            if state_file is not None and state_file.exists():
                resume_parent = json.loads(state_file.read_text()).get("parent_run_id")
        else:
            raise NothingToResumeError(f"--resume: no interrupted search at {tune_path}; run "
                                       f"without --resume to start it")
    elif state_file is not None and Path(tune_path).exists():
        logger.warning("starting %s afresh: removing the previous Tune state at %s (its results "
                       "stay in MLflow; pass --resume to continue it instead)", experiment, tune_path)
        shutil.rmtree(tune_path)

    tracker = SearchTracker(tracking_uri, experiment, strict=options.strict_tracking)
    search_params = {
        "search_file": str(space.path), "budget": budget.name, "algorithm": space.search.algorithm,
        "scheduler": space.scheduler.kind, "n_trials": len(trials) if space.search.algorithm == "grid"
        else budget.num_samples or space.search.num_samples,
        "workers_per_trial": plan.workers, "per_worker": json.dumps(plan.per_worker),
        "executor": space.resources.executor,
        "concurrent_trials": concurrent, "study": options.study or "all",
        "steps": trials[0].steps if trials else 0, "metric": space.search.metric}
    tracker.start_search(search_name=space.name, budget=budget.name, params=search_params,
                         tags=environment_tags(plan.device), search_file=space.path,
                         resume_parent_run_id=resume_parent)
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"parent_run_id": tracker.parent_run_id,
                                          "experiment": experiment}))

    plan_dict = {"data_dirs": data_dirs, "extra_sets": extra_sets, "train_fn": options.train_fn,
                 "device": plan.device, "workers": plan.workers, "per_worker": plan.per_worker,
                 "use_gpu": plan.use_gpu, "train_storage": f"{storage}/{tune_name}-train",
                 "max_failures": options.max_failures,
                 "threads": max(1, int(plan.per_worker["CPU"])),
                 "data_root": str(Path(options.data_root).resolve())}
    param_space, tune_config, total = _tune_setup(space, budget, trials, plan_dict, concurrent)
    monitor = SearchMonitor(tracker, total=total, metric=space.search.metric, quiet=options.quiet,
                            trial_lookup=trial_from_config)
    if space.resources.executor == "function":
        # the trial trains in its own process, so it holds the worker's resources itself
        trial_resources = {"cpu": plan.per_worker["CPU"]}
        if plan.use_gpu:
            trial_resources["gpu"] = plan.per_worker["GPU"]
        trainable = tune.with_resources(function_trial, trial_resources)
    else:
        trainable = tune.with_resources(trial_driver, {"cpu": 0, "memory": 1})
    run_config = tune.RunConfig(
        name=tune_name, storage_path=str(storage), callbacks=[monitor], verbose=0,
        failure_config=tune.FailureConfig(max_failures=options.max_failures))
    if not options.quiet:
        print(f"[search] {experiment}: {total} trial(s), {concurrent} at a time, "
              f"{plan.workers} worker(s) x {plan.per_worker} each, device {plan.device}, "
              f"executor {space.resources.executor}; "
              f"MLflow {tracking_uri} (parent run {tracker.parent_run_id})", flush=True)
    if resuming:
        tuner = tune.Tuner.restore(tune_path, trainable, resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
    else:
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                           run_config=run_config)
    interrupted = False
    try:
        t0 = time.perf_counter()
        tuner.fit()
        timings["tune_fit_seconds"] = time.perf_counter() - t0
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        statuses = dict(monitor.statuses)
        best = monitor.best
        counts = {status: sum(1 for s in statuses.values() if s == status)
                  for status in ("finished", "diverged", "error")}
        summary_metrics = {f"n_{k}": v for k, v in counts.items()}
        if best is not None:
            summary_metrics[f"best_{space.search.metric}"] = best[0]
        interrupted = interrupted or len(statuses) < total
        tracker.end_search(summary_metrics, interrupted=interrupted)
        timings["mlflow_seconds"] = tracker.logging_seconds
        if monitor.first_result_seconds:
            timings["mean_trial_start_to_first_result_seconds"] = (
                sum(monitor.first_result_seconds) / len(monitor.first_result_seconds))
        SearchMonitor.current = None
    wall = time.perf_counter() - started
    if not options.quiet:
        best_text = "none" if best is None else f"{best[0]:.3e} ({best[1]})"
        print(f"[search] {experiment} done in {wall:.0f} s: {counts}; best {space.search.metric} "
              f"{best_text}", flush=True)
    return SearchSummary(experiment=experiment, tracking_uri=tracking_uri,
                         parent_run_id=tracker.parent_run_id, n_trials=total, statuses=statuses,
                         best_trial=None if best is None else best[1],
                         best_value=None if best is None else best[0], wall_seconds=wall,
                         interrupted=interrupted, tune_path=tune_path, timings=timings)


def _is_uri(value: str | None) -> bool:
    return bool(value) and "://" in str(value)


def _init_ray(address: str | None):
    """Join ``address`` (or ``RAY_ADDRESS``) if given, else start a local Ray on this machine."""
    for key, value in TRAIN_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Tune would otherwise change into each trial's folder and the search's relative paths with it.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    import ray

    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": {key: os.environ[key] for key in TRAIN_ENV_DEFAULTS}}
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        # Under `ray job submit` the job's runtime env (jobs/runtime_env.yaml) already reaches every
        # worker, and Ray refuses a second one that sets the same keys.
        runtime_env = None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        # The dashboard stays on: without it, trials stopped early leaked placement groups (FACTS.md).
        ray.init(runtime_env=runtime_env, log_to_driver=False, include_dashboard=True)
    return ray


def _tune_setup(space: SearchSpace, budget: Budget, trials: list[TrialSpec],
                plan: dict[str, Any], concurrent: int) -> tuple[dict, Any, int]:
    """Param space, ``TuneConfig`` and trial count for the file's algorithm and scheduler."""
    from ray import tune

    metric = space.search.metric
    scheduler = None
    steps = max(t.steps for t in trials)
    if space.scheduler.kind == "asha":
        from ray.tune.schedulers import ASHAScheduler

        val_every = min(t.val_every for t in trials)
        grace = max(val_every, int(space.scheduler.grace_fraction * steps))
        scheduler = ASHAScheduler(time_attr="step", metric=metric, mode="min", max_t=steps,
                                  grace_period=grace,
                                  reduction_factor=space.scheduler.reduction_factor)

    def name_trial(trial: Any) -> str:
        return trial_from_config(trial.config).name

    if space.search.algorithm == "grid":
        param_space = {"trial": tune.grid_search([t.as_dict() for t in trials]), "plan": plan}
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
    if space.search.algorithm == "multi_objective":
        searcher = OptunaSearch(metric=[metric, space.search.cost_metric], mode=["min", "min"],
                                seed=space.search.seed)
    else:
        searcher = OptunaSearch(metric=metric, mode="min", seed=space.search.seed)
    def index_trial(trial: Any) -> str:
        # Tune numbers trials ``<run id>_<counter>`` in creation order, across restores too; the
        # counter makes the Optuna trial's name (and the name its MLflow child run is found by).
        trial.config.setdefault("index", int(str(trial.trial_id).rsplit("_", 1)[-1]))
        return trial_from_config(trial.config).name

    param_space = {"sampled": dimensions, "template": template, "plan": plan}
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                  max_concurrent_trials=concurrent, trial_name_creator=index_trial,
                                  trial_dirname_creator=index_trial)
    return param_space, tune_config, num_samples
