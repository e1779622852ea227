"""The Tune side of a trial: its config for the learning layer and the trainables Tune runs.

``trial_driver`` (``executor: train``) holds no CPU and builds a Ray Train ``TorchTrainer`` whose workers
run ``worker.train_worker_loop``; ``function_trial`` (``executor: function``) trains in the Tune trial's
own process. Both start from ``loop_config``, built by ``build_loop_config`` from the Tune config.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fhn_automl.search.space import TrialSpec
from fhn_automl.search.worker import train_and_report, train_worker_loop


def trial_figures(trial: TrialSpec) -> dict[str, Any]:
    """The architecture figures of a trial's network (MLflow params), every window network counted."""
    from fhn_automl.learning.architecture import architecture_figures
    from fhn_automl.learning.windows import parse_window
    from fhn_automl.physics.problems import get_problem

    problem = get_problem(trial.problem)
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


def build_loop_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial's worker needs (``worker.train_and_report``): the train function's name, its
    config with this cluster's data folders, the architecture figures it reports, a timing slot."""
    plan = config["plan"]
    trial = trial_from_config(config)
    data_dir = plan["data_dirs"].get(trial.problem)
    train_cfg = train_config(trial, data_dir=data_dir, device=plan["device"],
                             threads=plan["threads"], data_root=plan["data_root"])
    extra = plan.get("extra_sets", {}).get(f"{trial.problem}:{trial.extra_region}")
    if extra:
        train_cfg["extra_region"] = extra  # data:<absolute path of the set the driver built>
    static = {key: value for key, value in trial_figures(trial).items() if isinstance(value, (int, float))}
    if trial.layers in plan.get("latency_ms", {}):  # measured on the driver (search.latency)
        static["latency_ms"] = plan["latency_ms"][trial.layers]
    return {"train_fn": plan["train_fn"], "train_config": train_cfg, "static_metrics": static, "timing": {}}


def trial_driver(config: dict[str, Any]) -> None:
    """One Tune trial: builds and fits the ``TorchTrainer`` that trains this trial's network."""
    driver_started = time.time()
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    plan = config["plan"]
    trial = trial_from_config(config)
    loop_config = build_loop_config(config)
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


def function_trial(config: dict[str, Any]) -> None:
    """``executor: function``: one Tune function trial that trains in its own process, no Ray Train.

    Same ``train(config, report)`` and the same checkpoints as ``train_worker_loop``, reported with
    ``ray.tune.report``; Tune's ``FailureConfig`` restarts a lost trial from ``tune.get_checkpoint()``.
    """
    loop_started = time.time()
    from ray import tune

    loop_config = build_loop_config(config)
    loop_config["timing"]["ts_driver_start"] = loop_started
    train_and_report(loop_config, rank=0, checkpoint=tune.get_checkpoint(), report_fn=tune.report,
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
