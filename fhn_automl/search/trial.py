"""The Tune side of a trial: its config for the learning layer and the trainables Tune runs.

``trial_driver`` (``executor: train``) holds no CPU and builds a Ray Train trainer (``TorchTrainer`` for
DDP over several workers, the plain data-parallel trainer for one) whose workers run
``worker.train_worker_loop``; ``function_trial`` (``executor: function``) trains in the Tune trial's
own process. Both start from ``loop_config``: the trial (``TrialSpec``) and the search's ``TrialPlan``,
both read from the Tune config by ``build_loop_config``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from fhn_automl.learning.architecture import architecture_figures
from fhn_automl.learning.windows import parse_window
from fhn_automl.search.space import TrialSpec
from fhn_automl.search.worker import train_and_report, train_worker_loop


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """What the search driver hands every trial of one search: where this cluster keeps the data, what
    trains, on which device, and (``executor: train``) the Ray Train resources of each trial.

    It travels in Tune's config as a plain dict (``as_config``; ``from_config`` reads it back in the
    trial): Tune writes the config to each trial's ``params.json`` and keeps it in the experiment state
    that ``--resume`` restores, so a search started before this type existed resumes with it too.
    """

    train_fn: str                   # ``module:function`` of the learning layer's train (imported on the worker)
    device: str                     # cpu | cuda
    threads: int                    # CPU threads of one trainer
    data_root: str                  # absolute: where a trainer without ``data_dirs`` on its node builds the data
    data_dirs: dict[str, str]       # problem -> absolute dataset folder (built on the driver)
    extra_sets: dict[str, str] = dataclasses.field(default_factory=dict)   # "<problem>:<extra_region>" ->
                                                                            # "data:<absolute path>" (search.high_error)
    latency_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # layers -> measured latency (search.latency)
    # executor: train only (the Ray Train trainer of trial_driver)
    workers: int = 1
    per_worker: dict[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1})
    use_gpu: bool = False
    train_storage: str | None = None  # the Train runs' storage: "<Tune storage>/<Tune name>-train"
    max_failures: int = 0

    def as_config(self) -> dict[str, Any]:
        """The plan as Tune carries it: plain JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> TrialPlan:
        """The plan of a Tune config's ``plan`` entry; an unknown or missing key is named."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"trial plan: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(value))
        if missing:
            raise ValueError(f"trial plan: missing key(s) {', '.join(missing)}")
        return cls(**{key: dict(item) if isinstance(item, Mapping) else item for key, item in value.items()})


def trial_figures(trial: TrialSpec) -> dict[str, Any]:
    """The architecture figures of a trial's network (MLflow params), every window network counted."""
    problem = trial.resolved_problem
    n_networks = parse_window(trial.window, problem.t_span).n_networks
    return architecture_figures(trial.layers, len(problem.inputs), len(problem.outputs),
                                n_networks=n_networks)


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


def loop_config(trial: TrialSpec, plan: TrialPlan) -> dict[str, Any]:
    """What a trial's worker needs (``worker.train_and_report``): the train function's name, its
    config with this cluster's data folders, the architecture figures it reports, a timing slot."""
    train_cfg = train_config(trial, data_dir=plan.data_dirs.get(trial.problem), device=plan.device,
                             threads=plan.threads, data_root=plan.data_root)
    extra = plan.extra_sets.get(f"{trial.problem}:{trial.extra_region}")
    if extra:
        train_cfg["extra_region"] = extra  # data:<absolute path of the set the driver built>
    static = {key: value for key, value in trial_figures(trial).items() if isinstance(value, (int, float))}
    if trial.layers in plan.latency_ms:  # measured on the driver (search.latency)
        static["latency_ms"] = plan.latency_ms[trial.layers]
    return {"train_fn": plan.train_fn, "train_config": train_cfg, "static_metrics": static, "timing": {}}


def build_loop_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``loop_config`` of a Tune config: its trial and the search's plan."""
    return loop_config(trial_from_config(config), TrialPlan.from_config(config["plan"]))


def trial_driver(config: dict[str, Any]) -> None:
    """One Tune trial: builds and fits the Ray Train trainer that trains this trial's network."""
    driver_started = time.time()
    import ray.train
    from ray.tune.integration.ray_train import TuneReportCallback

    plan = TrialPlan.from_config(config["plan"])
    trial = trial_from_config(config)
    worker_config = loop_config(trial, plan)
    worker_config["timing"].update(ts_driver_start=driver_started, ts_trainer_fit=time.time())
    trainer = trainer_class(plan.workers)(
        train_worker_loop,
        train_loop_config=worker_config,
        scaling_config=ray.train.ScalingConfig(num_workers=plan.workers, use_gpu=plan.use_gpu,
                                               resources_per_worker=plan.per_worker),
        run_config=ray.train.RunConfig(
            name=trial.name, storage_path=plan.train_storage,
            failure_config=ray.train.FailureConfig(max_failures=plan.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def trainer_class(workers: int) -> type:
    """The Ray Train trainer of a trial of ``workers`` workers. Several: ``TorchTrainer``, whose torch
    process group (Gloo / NCCL) DDP averages over. One: Ray Train's plain data-parallel trainer, with no
    process group, hence no TCPStore rendezvous (its server listens on every interface and takes no bind
    address) and no Gloo start-up; ``learning.trainer`` trains one process alike either way."""
    if workers > 1:
        from ray.train.torch import TorchTrainer

        return TorchTrainer
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    return DataParallelTrainer


def function_trial(config: dict[str, Any]) -> None:
    """``executor: function``: one Tune function trial that trains in its own process, no Ray Train.

    Same ``train(config, report)`` and the same checkpoints as ``train_worker_loop``, reported with
    ``ray.tune.report``; Tune's ``FailureConfig`` restarts a lost trial from ``tune.get_checkpoint()``.
    """
    loop_started = time.time()
    from ray import tune

    worker_config = build_loop_config(config)
    worker_config["timing"]["ts_driver_start"] = loop_started
    train_and_report(worker_config, rank=0, checkpoint=tune.get_checkpoint(), report_fn=tune.report,
                     checkpoint_cls=tune.Checkpoint, loop_started=loop_started)


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
