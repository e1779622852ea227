"""The training loop: ``train(config, report=None, *, checkpoint=None) -> dict``.

A trial is a plain function of a config mapping and a ``report(metrics, checkpoint_dir)`` callback,
so the search layer can hand in Ray's reporter while tests and the CLI pass their own (no Ray or
MLflow imported here). The loop follows the thesis protocol (3.2): a fixed number of iterations,
validation every ``val_every`` steps with the mean and max point error |dU| + |dW|, every loss term
recorded; plus what makes it usable as a search trial: the best model kept on disk, resumable
checkpoints, a NaN / inf loss stopping the run as ``diverged``, and DDP when a process group is up.

Data live on the training device and batches are drawn there with ``torch.randint`` from a seeded
``torch.Generator`` (one per rank), so a run is deterministic on the CPU for a given seed and a
resumed run continues exactly where the checkpoint left it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fhn_automl._atomic import write_json
from fhn_automl.learning import training_data
from fhn_automl.learning.architecture import architecture_figures, format_layers
# CheckpointError, UnsafeCheckpointError: re-exported, callers catch them from here
from fhn_automl.learning.checkpoints import (CheckpointError, UnsafeCheckpointError, copy_model_folders,  # noqa: F401
                                             load_state, plain, save_state)
from fhn_automl.learning.config import TrainConfig
from fhn_automl.learning.losses import (BoxSampler, ContinuityTerm, DataTerm, InitialConditionTerm, LossTerm,
                                        PhysicsTerm, PointSampler, TrainingObjective, input_box)
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.model_io import save_model
from fhn_automl.learning.physiology import physiology_metrics
from fhn_automl.learning.recipes import Recipe, get_recipe
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.learning.validation import REPORTED_ERROR_METRIC, final_full_metrics, validation_metrics
from fhn_automl.learning.windows import WindowPlan, parse_window
from fhn_automl.physics.datasets import check_dataset_dir, ensure_dataset, iter_split
from fhn_automl.physics.problems import Problem

ReportFn = Callable[[dict[str, Any], "str | None"], None]
StopFn = Callable[[dict[str, Any]], bool]

#: Seed of the fixed validation subset: independent of the trial seed so all trials compare alike.
VALIDATION_SUBSET_SEED = 20_240_601
CHECKPOINT_FOLDER = "checkpoint"
BEST_MODEL_FOLDER = "best"
STATE_FILE = "train_state.pt"
MODEL_FOLDER = "model"
METRICS_FILE = "metrics.json"
#: How often (in steps) the accumulated loss is checked for NaN / inf between validations.
DIVERGENCE_CHECK_EVERY = 100


@dataclass
class Progress:
    """Mutable loop state that a checkpoint carries (``train``'s, and each member's of ``train_pack``)."""

    step: int = 0
    best_val_mean_err: float = math.inf
    best_val_max_err: float = math.inf
    best_step: int = -1
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def interval_metrics(self, means: list[float], term_names: list[str], lr: float, seconds: float,
                         steps: int) -> dict[str, Any]:
        """The record of a validation interval just closed, before validation: the step, the mean loss
        (``means[0]``) and each term's (``loss_<name>``), the lr, the step time and the training
        seconds so far (add this interval's to ``train_seconds`` first). One home for both loops."""
        return {"step": self.step, "loss": means[0], **{f"loss_{name}": value for name, value in zip(term_names, means[1:])},
                "lr": lr, "step_time_ms": 1e3 * seconds / max(1, steps), "train_seconds": self.train_seconds}

    def close(self, metrics: dict[str, Any], status: str, counts: Mapping[str, Any]) -> dict[str, Any]:
        """Finish an interval's record: the best point so far (``best_val_*``, also as ``best_subset_val_*``),
        the status and the model's counts; a record without validation (diverged) gets infinite errors."""
        metrics.update({"best_val_mean_err": self.best_val_mean_err, "best_val_max_err": self.best_val_max_err,
                        "best_subset_val_mean_err": self.best_val_mean_err,
                        "best_subset_val_max_err": self.best_val_max_err,
                        "best_step": self.best_step, "status": status, **counts})
        metrics.setdefault("val_mean_err", math.inf)
        metrics.setdefault("val_max_err", math.inf)
        return metrics

    def record_best(self, metrics: Mapping[str, Any], step: int) -> bool:
        """Keep ``metrics``' validation errors as the best when the mean error improved; say whether."""
        if not metrics["val_mean_err"] < self.best_val_mean_err:
            return False
        self.best_val_mean_err = metrics["val_mean_err"]
        self.best_val_max_err = metrics["val_max_err"]
        self.best_step = step
        return True


@dataclass(frozen=True)
class Distributed:
    """This process's place in a DDP process group (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def distributed_context() -> Distributed:
    """The torch.distributed group this process belongs to (one process of one when none is up)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            rank = torch.distributed.get_rank()
            return Distributed(rank, world, int(os.environ.get("LOCAL_RANK", rank)))
    return Distributed()


def _resolve_device(name: str, dist: Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for but torch.cuda is not available on this machine")
        if name == "cuda":
            return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return torch.device(name)


def _dataset_dir(cfg: TrainConfig, problem: Problem, device: torch.device) -> Path:
    if cfg.data_dir is not None:  # the user's folder: judged (manifest, splits, digests) before it is read
        return check_dataset_dir(cfg.data_dir, problem.name, (cfg.train_split, cfg.val_split))

    return Path(ensure_dataset(problem, root=cfg.data_root, n_trajectories=cfg.n_trajectories,
                               seed=cfg.data_seed, device="cuda" if device.type == "cuda" else "cpu"))


def _check_kind(cfg: TrainConfig, problem: Problem, window: WindowPlan) -> None:
    if cfg.kind == "iter" and problem.kind != "iterator":
        raise ValueError(f"kind 'iter' needs an iterator problem; {problem.name} is a {problem.kind} problem")
    if cfg.kind != "iter" and problem.kind == "iterator":
        raise ValueError(f"{problem.name} is an iterator problem: use kind 'iter'")
    if cfg.kind == "iter" and window.mode != "none":
        raise ValueError("iterator models take no time windows")
    if cfg.extra_region is not None and cfg.extra_region.kind == "physics" and "t" not in problem.inputs:
        raise ValueError("a physics extra_region needs a 't' input; iterators take a data extra_region")
    if window.mode == "chained" and not {"u0", "w0"} <= set(problem.inputs):
        raise ValueError("chained windows need the initial state (u0, w0) among the inputs")


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32).to(device)


def _build_terms(cfg: TrainConfig, problem: Problem, window: WindowPlan, train_points, extra_sets,
                 mean: np.ndarray, std: np.ndarray, batch_size: int, device: torch.device,
                 region_points: np.ndarray | None = None) -> list[LossTerm]:
    def data_term(name: str, points, weight: float, size: int) -> DataTerm:
        return DataTerm(name, _to_device(points.x, device), _to_device((points.y - mean) / std, device),
                        weight=weight, batch_size=size)

    terms: list[LossTerm] = []
    if cfg.data_weight > 0:
        terms.append(data_term("data", train_points, cfg.data_weight, batch_size))
    for name, points, weight, size in extra_sets:
        terms.append(data_term(name, points, weight, size or batch_size))
    t_override = {"t": (window.edges[0], window.edges[1])} if window.mode == "chained" else {}
    domain = BoxSampler(*input_box(problem, problem.inputs, t_override), device)
    small_batch = max(1, batch_size // 4)
    if cfg.kind == "pinn":
        terms.append(PhysicsTerm("physics", problem, domain, weight=cfg.physics_weight,
                                 batch_size=cfg.physics_batch_size or batch_size))
        terms.append(InitialConditionTerm("ic", problem, problem.inputs, domain, weight=cfg.ic_weight,
                                          batch_size=cfg.ic_batch_size or small_batch))
    region = cfg.extra_region
    if region is not None and region.kind == "physics":
        if region_points is not None:  # the residual at a stored region's points
            sampler: BoxSampler | PointSampler = PointSampler(_to_device(region_points, device))
        else:
            sampler = BoxSampler(*input_box(problem, problem.inputs, {**t_override, **region.box}), device)
        terms.append(PhysicsTerm("extra_physics", problem, sampler, weight=region.weight,
                                 batch_size=region.batch_size or small_batch))
    if window.mode == "split":
        terms.append(ContinuityTerm("continuity", window.interfaces, problem.inputs, domain,
                                    weight=cfg.continuity_weight,
                                    batch_size=cfg.continuity_batch_size or small_batch))
    if not terms:
        raise ValueError("no loss terms: data_weight is 0 and the kind adds no physics terms")
    return terms


def _extra_sets(cfg: TrainConfig, problem: Problem, dataset_dir: Path, window: WindowPlan):
    """(term name, points, weight, batch size) of each additional data set (eq. 3.8)."""
    entries = [dict(item) for item in cfg.extra_data]
    region = cfg.extra_region
    if region is not None and region.kind == "data":
        entries.append({"source": region.source, "weight": region.weight, "batch_size": region.batch_size,
                        "name": "extra_data"})
    out = []
    for entry in entries:
        unknown = sorted(set(entry) - {"source", "weight", "batch_size", "name"})
        if unknown or "source" not in entry:
            raise ValueError(f"extra_data entries take source, weight, batch_size, name; got {sorted(entry)}")
        if window.mode == "chained":
            points = training_data.chained_window_points(
                training_data.read_columns(dataset_dir, str(entry["source"])), problem,
                window.edges[1] - window.edges[0], source=str(entry["source"]))
        else:
            points = training_data.load_points(problem, dataset_dir, str(entry["source"]))
        name = entry.get("name") or "data_" + Path(str(entry["source"])).stem
        out.append((name, points, float(entry.get("weight", 1.0)), entry.get("batch_size")))
    return out


def _region_points(cfg: TrainConfig, problem: Problem, dataset_dir: Path, window: WindowPlan) -> np.ndarray | None:
    """Inputs of a physics extra region given as a set (``physics:high_error``): its collocation points."""
    region = cfg.extra_region
    if region is None or region.kind != "physics" or not region.source:
        return None
    if window.mode == "chained":  # the set's trajectories cut into the model's windows
        return training_data.chained_window_points(training_data.read_columns(dataset_dir, region.source), problem,
                                                   window.edges[1] - window.edges[0], source=region.source).x
    return training_data.load_points(problem, dataset_dir, region.source).x


def _make_spec(cfg: TrainConfig, recipe: Recipe, problem: Problem, window: WindowPlan, mean, std) -> ModelSpec:
    return ModelSpec(
        problem=problem.key, kind=cfg.kind, layers=cfg.layers, inputs=problem.inputs, outputs=problem.outputs,
        ranges={name: problem.ranges[name] for name in problem.inputs}, input_scaling=recipe.scale_inputs,
        output_mean=tuple(float(v) for v in mean), output_std=tuple(float(v) for v in std),
        window_mode=window.mode, window_edges=window.edges,
        horizon=problem.t_end if window.mode == "chained" else None, dt_net=problem.dt_net,
        metadata={"recipe": recipe.name, "seed": cfg.seed, "window": window.describe(),
                  "extra_region": None if cfg.extra_region is None else cfg.extra_region.describe()},
    )


@dataclass(frozen=True)
class TrainingSetup:
    """What a run builds from its config before any network: the data on the device, the output
    standardisation and the loss terms. ``train`` and the packed trainer (``learning.packed``) share it,
    so a pack member sees exactly the batches and targets a single run would."""

    recipe: Recipe
    problem: Problem
    window: WindowPlan
    device: torch.device
    batch_size: int
    lr: float
    dataset_dir: Path
    mean: np.ndarray
    std: np.ndarray
    terms: list[LossTerm]
    val_x: torch.Tensor
    val_y: torch.Tensor
    rollout: tuple[torch.Tensor, torch.Tensor] | None

    def make_spec(self, cfg: TrainConfig) -> ModelSpec:
        """The spec of ``cfg``'s network (its layers and seed) on this data."""
        return _make_spec(cfg, self.recipe, self.problem, self.window, self.mean, self.std)


def prepare_training(cfg: TrainConfig, dist: Distributed | None = None) -> TrainingSetup:
    """Check ``cfg``, pick the device and threads, load the data onto the device, build the loss terms."""
    recipe = get_recipe(cfg.recipe)
    problem = cfg.resolved_problem
    window = parse_window(cfg.window, problem.t_span)
    _check_kind(cfg, problem, window)
    device = _resolve_device(cfg.device, dist or Distributed())
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    batch_size = cfg.batch_size or recipe.batch_size

    # data, once, on the training device
    dataset_dir = _dataset_dir(cfg, problem, device)
    if window.mode == "chained":  # windows that start from every state the marching visits
        train_points = training_data.chained_window_points(
            training_data.read_columns(dataset_dir, cfg.train_split), problem, window.edges[1] - window.edges[0],
            source=f"split {cfg.train_split!r} of {dataset_dir}")
    else:
        train_points = training_data.load_points(problem, dataset_dir, cfg.train_split)
    val_points = training_data.subsample(training_data.load_points(problem, dataset_dir, cfg.val_split),
                                         cfg.val_max_points, VALIDATION_SUBSET_SEED)
    rollout = None
    if cfg.kind == "iter":
        arrays = training_data.rollout_arrays(training_data.read_columns(dataset_dir, "rollout"), problem,
                                              cfg.rollout_max_trajectories, VALIDATION_SUBSET_SEED)
        rollout = (_to_device(arrays.x0, device), _to_device(arrays.y, device))
    extra_sets = _extra_sets(cfg, problem, dataset_dir, window)
    if recipe.standardise_outputs:
        mean = train_points.y.mean(axis=0, dtype=np.float64)
        std = np.maximum(train_points.y.std(axis=0, dtype=np.float64), 1e-6)
    else:
        mean, std = np.zeros(len(problem.outputs)), np.ones(len(problem.outputs))
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    terms = _build_terms(cfg, problem, window, train_points, extra_sets, mean, std, batch_size, device,
                         _region_points(cfg, problem, dataset_dir, window))
    return TrainingSetup(recipe=recipe, problem=problem, window=window, device=device, batch_size=batch_size,
                         lr=cfg.lr or recipe.lr, dataset_dir=dataset_dir, mean=mean, std=std, terms=terms,
                         val_x=_to_device(val_points.x, device), val_y=_to_device(val_points.y, device),
                         rollout=rollout)


def train(config: Mapping[str, Any], report: ReportFn | None = None, *, checkpoint: str | os.PathLike | None = None,
          stop: StopFn | None = None) -> dict[str, Any]:
    """Train one surrogate as ``config`` says; see ``TrainConfig`` for the keys and defaults.

    ``report(metrics, checkpoint_dir)`` is called after every validation on every rank
    (``checkpoint_dir`` is None on ranks other than 0). ``checkpoint`` resumes from such a folder.
    Returns the final metrics with ``status`` (``finished`` | ``diverged``), ``model_dir`` and
    ``out_dir``. A finished run's last validation adds ``final_full_val_*``: the model at the end of
    training on the whole validation set (and every rollout), the thesis' figure and the
    ``reported_error`` (see ``learning.validation``); ``model_dir`` then holds that model. A diverged
    run keeps its best subset checkpoint in ``model_dir`` (None if it diverged before its first
    validation). ``best_model_dir`` is the best subset checkpoint either way.

    ``stop(metrics)``, asked after every validation before the last, ends the run there when it
    returns True (a convergence test such as ``high_error_region.PlateauStop``): the run then counts
    as finished at that step (``stopped_at_step``), with its final figures as above.
    """
    cfg = TrainConfig.from_mapping(config)
    dist = distributed_context()
    setup = prepare_training(cfg, dist)
    recipe, window, device = setup.recipe, setup.window, setup.device
    lr = setup.lr
    dataset_dir = setup.dataset_dir
    spec = setup.make_spec(cfg)
    with torch.random.fork_rng(devices=[]):  # seed the initial weights without touching the caller's RNG
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        model = build_model(spec).to(device)
    objective = TrainingObjective(model, setup.terms).to(device)
    runner: nn.Module = objective
    if dist.active:
        runner = nn.parallel.DistributedDataParallel(
            objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=window.mode == "split")
    optimizer = recipe.make_optimizer(model.parameters(), lr, device)
    scheduler = recipe.make_scheduler(optimizer, cfg.steps, cfg.warmup_steps)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed * 1_000_003 + 7919 * dist.rank + 1)

    out_dir = Path(cfg.out_dir) if cfg.out_dir else Path(tempfile.mkdtemp(prefix="fhn_train_"))
    checkpoint_dir = out_dir / CHECKPOINT_FOLDER
    is_writer = dist.rank == 0
    progress = Progress()
    if checkpoint is not None:  # a checkpoint that cannot be restored fails before anything is written
        progress = _restore(Path(checkpoint), None, model, optimizer, scheduler, generator, device)
    if is_writer:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is not None:
            copy_model_folders(Path(checkpoint), checkpoint_dir, (BEST_MODEL_FOLDER,))

    val_x, val_y, rollout_tensors = setup.val_x, setup.val_y, setup.rollout
    counts = model_counts(spec)

    names = objective.term_names
    running = torch.zeros(len(names) + 1, device=device)
    steps_in_interval = 0
    status = "running"
    interval_start = time.perf_counter()
    last: dict[str, Any] = {}
    while progress.step < cfg.steps:
        batches = objective.draw(generator)
        total, values = runner(batches)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if recipe.steps_on_loss:
            scheduler.step(total.item())
        else:
            scheduler.step()
        running += torch.cat((total.detach().reshape(1), values))
        steps_in_interval += 1
        progress.step += 1
        at_validation = progress.step % cfg.val_every == 0 or progress.step == cfg.steps
        if progress.step % DIVERGENCE_CHECK_EVERY == 0 or at_validation:
            if not bool(torch.isfinite(running).all()):
                status = "diverged"
        if not at_validation and status != "diverged":
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        interval_seconds = time.perf_counter() - interval_start
        progress.train_seconds += interval_seconds
        means = (running / max(1, steps_in_interval)).tolist()
        metrics = progress.interval_metrics(means, names, optimizer.param_groups[0]["lr"], interval_seconds,
                                            steps_in_interval)
        if status != "diverged":
            metrics.update(validation_metrics(model, val_x, val_y, rollout_tensors))
            if not math.isfinite(metrics["val_mean_err"]):
                status = "diverged"
        if status != "diverged" and progress.record_best(metrics, progress.step):
            if is_writer:
                save_model(model, checkpoint_dir / BEST_MODEL_FOLDER, torchscript=cfg.write_torchscript)
        stopped_early = (status == "running" and progress.step < cfg.steps and stop is not None
                         and bool(stop(dict(metrics))))
        if stopped_early:
            metrics["stopped_at_step"] = progress.step
        if status == "running" and (progress.step >= cfg.steps or stopped_early):
            status = "finished"
            metrics.update(final_full_metrics(model, full_validation_batches(cfg, setup), device,
                                              full_rollout(cfg, setup)))
            metrics.update(final_physiology(model, cfg, setup))
        progress.history.append(progress.close(metrics, status, counts))
        if is_writer:
            _save_state(checkpoint_dir, model, optimizer, scheduler, generator, progress, cfg)
        if report is not None:
            report(dict(metrics), str(checkpoint_dir) if is_writer else None)
        last = metrics
        running.zero_()
        steps_in_interval = 0
        if status == "diverged" or stopped_early:
            break
        interval_start = time.perf_counter()

    if not last:  # resumed from a checkpoint that had already reached cfg.steps
        last = dict(progress.history[-1]) if progress.history else {"step": progress.step}
        last["status"] = status = "finished"
    best_dir = checkpoint_dir / BEST_MODEL_FOLDER
    model_dir = out_dir / MODEL_FOLDER
    result = {**last, "status": status, "out_dir": str(out_dir), "model_dir": None, "dataset_dir": str(dataset_dir),
              "best_model_dir": str(best_dir) if (best_dir / "spec.json").exists() else None,
              # which figure ranks and registers this trial, and which weights model_dir holds
              "reported_error": REPORTED_ERROR_METRIC if status == "finished" else "best_subset_val_mean_err",
              "model_selection": "final" if status == "finished" else "best_subset"}
    if status == "finished":
        # the weights in memory are those at the last step (trained now or restored from the state
        # saved at it): the model that final_full_val_* describes
        if is_writer:
            save_model(model, model_dir, torchscript=cfg.write_torchscript)
        result["model_dir"] = str(model_dir)
    elif (best_dir / "spec.json").exists():
        if is_writer:
            shutil.copytree(best_dir, model_dir, dirs_exist_ok=True)
        result["model_dir"] = str(model_dir)
    if is_writer:
        write_json(out_dir / METRICS_FILE, {"final": result, "config": cfg.to_dict(), "history": progress.history})
    return result


def model_counts(spec: ModelSpec) -> dict[str, Any]:
    """The architecture figures a run reports with every metric (``train``'s and ``train_pack``'s)."""
    figures = architecture_figures(spec.layers, spec.n_in, spec.n_out, n_networks=spec.n_networks)
    return {"n_neurons": figures["neurons"], "n_parameters": figures["parameters"],
            "macs_per_eval": figures["macs"], "shape_class": figures["shape_class"],
            "layers": format_layers(spec.layers)}


def full_validation_batches(cfg: TrainConfig, setup: TrainingSetup) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The whole validation split in host chunks (the subset itself when it already is the whole)."""
    problem = setup.problem
    columns = (*problem.inputs, *problem.outputs)

    def as_xy(chunk: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([chunk[name] for name in problem.inputs], axis=1).astype(np.float32, copy=False),
                np.stack([chunk[name] for name in problem.outputs], axis=1).astype(np.float32, copy=False))

    if cfg.val_max_points is None:  # the subset is the whole set
        yield setup.val_x.cpu().numpy(), setup.val_y.cpu().numpy()
        return
    if not (setup.dataset_dir / f"{cfg.val_split}.parquet").is_file():  # a split given as a Parquet path
        points = training_data.load_points(problem, setup.dataset_dir, cfg.val_split)
        yield points.x, points.y
        return

    for chunk in iter_split(setup.dataset_dir, cfg.val_split, columns):
        yield as_xy(chunk)


def final_physiology(model: nn.Module, cfg: TrainConfig, setup: TrainingSetup) -> dict[str, float]:
    """A beat problem's physiology metrics (``learning.physiology``) of ``model`` on the whole validation
    split; empty for other problems."""
    if setup.problem.kind != "beat":
        return {}

    return physiology_metrics(model, setup.problem, training_data.read_columns(setup.dataset_dir, cfg.val_split),
                              setup.device)


def full_rollout(cfg: TrainConfig, setup: TrainingSetup) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Every rollout trajectory of an iterator's validation (the training-time figure uses a subset)."""
    if setup.rollout is None:
        return None
    if cfg.rollout_max_trajectories is None:
        return setup.rollout
    arrays = training_data.rollout_arrays(training_data.read_columns(setup.dataset_dir, "rollout"), setup.problem)
    return _to_device(arrays.x0, setup.device), _to_device(arrays.y, setup.device)


def _save_state(checkpoint_dir: Path, model: nn.Module, optimizer, scheduler, generator: torch.Generator,
                progress: Progress, cfg: TrainConfig) -> None:
    state = {
        "step": progress.step, "best_val_mean_err": progress.best_val_mean_err,
        "best_val_max_err": progress.best_val_max_err, "best_step": progress.best_step,
        "train_seconds": progress.train_seconds, "history": plain(progress.history),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(), "config": plain(cfg.to_dict()),
    }
    save_state(checkpoint_dir / STATE_FILE, state)


_plain = plain  # the name the tests and older callers use


def _restore(source: Path, checkpoint_dir: Path | None, model: nn.Module, optimizer, scheduler,
             generator: torch.Generator, device: torch.device) -> Progress:
    """Load a checkpoint folder written by ``train`` (and copy its best model into ours)."""
    state_path = source / STATE_FILE
    state = load_state(state_path, device=device, what="train",
                       required=("model", "optimizer", "scheduler", "generator", "step", "best_val_mean_err",
                                 "best_val_max_err", "best_step", "train_seconds", "history"))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])
        raise CheckpointError(f"{state_path}: written for another architecture than the layers asked for "
                              f"({detail[:300]})") from None
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"].cpu())  # generator states are CPU byte tensors
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{state_path}: its optimiser / scheduler state does not fit this run ({exc})") from None
    if checkpoint_dir is not None:
        copy_model_folders(source, checkpoint_dir, (BEST_MODEL_FOLDER,))
    return Progress(step=int(state["step"]), best_val_mean_err=float(state["best_val_mean_err"]),
                     best_val_max_err=float(state["best_val_max_err"]), best_step=int(state["best_step"]),
                     train_seconds=float(state["train_seconds"]), history=list(state["history"]))
