"""The detection step of increased cloud-point density (thesis 3.4.2): where a model trained on the
homogeneous set errs most, and a solved set around those places for an extra data term.

One step, the rule a parameter (:class:`DetectionRule`):

* ``top_fraction``: the worst ``value`` share of the split's points by the point error
  |dU| + |dW|, reduced to the distinct sampled quantities they come from;
* ``trajectory_mean_above``: every trajectory whose mean point error exceeds ``value`` (an
  iterator's pair is its own trajectory, so there it is every pair above ``value``).

The places are the sampled quantities: initial states ``u0, w0[, k]`` of trajectory problems, states
``u, w[, k]`` of iterator pairs; worst first. ``max_centres`` caps them only when set: the thesis
caps nothing. The physics layer samples and solves around them (``physics.high_error``).

The thesis' rule per problem (:data:`THESIS_RULES`):

* B_C iterator, 4.2.3: "This region is identified by training the model with the homogeneous set
  and selecting points of high error (top 5%) and sampling points near then." -> top 5 % of points.
* C, 4.3: "The high-error regions were identified by training a model, with a base set that
  uniformly explored the parameter space, and selecting points (U0, W0, K) where the solution had a
  mean error exceeding 0.1. A new set was then created by sampling the region around these points."
  -> trajectories with mean error > 0.1.
* B_S, 4.2.1: the region is known in advance (the unstable equilibrium U0 ~ alpha) and is a physics
  term, the ``unstable_equilibrium`` preset; no detection. B_C, 4.2.2: a high-error region is
  observed but no set is built. Problems without a thesis rule get :data:`DEFAULT_RULE`, the
  thesis' only point rule (4.2.3).

The base model is "trained with the homogeneous set": here to convergence, a step budget with a
plateau stop (:class:`PlateauStop`), so the set marks where a trained model errs, not where an
untrained one does. The training split is the default source so the validation set stays unseen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fhn_automl.learning import training_data
from fhn_automl.learning.config import TrainConfig
from fhn_automl.learning.model_io import load_model
from fhn_automl.learning.trainer import train
from fhn_automl.learning.validation import point_errors
from fhn_automl.physics.high_error import build_high_error_set
from fhn_automl.physics.problems import Problem

RULE_KINDS = ("top_fraction", "trajectory_mean_above")
#: the set holds about this share of the training set's trajectories (pairs for iterators), spread
#: over the centres: the thesis gives no size, and a quarter keeps the extra term's data comparable
#: to the base set without dwarfing it
SET_FRACTION = 0.25
#: half-width of each sampling box, as a fraction of each quantity's range ("the region around")
RADIUS = 0.02


class HighErrorDetectionError(ValueError):
    """The rule selects nothing (or the input is unusable); the message says what was found."""


@dataclass(frozen=True)
class DetectionRule:
    """Which places count as high-error: ``top_fraction`` (share of points) or
    ``trajectory_mean_above`` (mean point error threshold); ``max_centres`` None = no cap."""

    kind: str
    value: float
    max_centres: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"detection rule kind must be one of {', '.join(RULE_KINDS)}, got {self.kind!r}")
        if self.kind == "top_fraction" and not 0 < self.value <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.value}")
        if self.kind == "trajectory_mean_above" and not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"trajectory_mean_above needs a finite threshold >= 0, got {self.value}")
        if self.max_centres is not None and int(self.max_centres) < 1:
            raise ValueError(f"max_centres must be >= 1 or None, got {self.max_centres}")

    def describe(self) -> str:
        text = (f"top {self.value:.0%} of points" if self.kind == "top_fraction"
                else f"trajectories with mean error > {self.value:g}")
        return text + ("" if self.max_centres is None else f", at most {self.max_centres} centres")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The thesis' detection rule per problem (module docstring: 4.2.3 and 4.3).
THESIS_RULES: dict[str, DetectionRule] = {
    "problem_b_c_iter": DetectionRule("top_fraction", 0.05),
    "problem_c": DetectionRule("trajectory_mean_above", 0.1),
}
#: Problems the thesis builds no detected set for: its point rule of 4.2.3.
DEFAULT_RULE = DetectionRule("top_fraction", 0.05)


def rule_for(problem: Problem) -> DetectionRule:
    """The thesis' rule for ``problem`` (``DEFAULT_RULE`` where it gives none)."""
    return THESIS_RULES.get(problem.name, DEFAULT_RULE)


def parse_rule(text: str) -> DetectionRule:
    """``top_fraction:0.05`` | ``trajectory_mean_above:0.1`` (``[,max_centres:N]``), the CLI form."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        kind, _, value = parts[0].partition(":")
        cap = None
        for extra in parts[1:]:
            key, _, number = extra.partition(":")
            if key != "max_centres":
                raise ValueError(f"unknown option {key!r}")
            cap = int(number)
        return DetectionRule(kind, float(value), cap)
    except (ValueError, IndexError) as error:
        raise ValueError(f"bad detection rule {text!r} ({error}): use 'top_fraction:0.05' or "
                         "'trajectory_mean_above:0.1', optionally ',max_centres:N'") from None


class PlateauStop:
    """A convergence test for ``train(..., stop=...)``: stop once the validation mean error has not
    improved by ``min_rel_improvement`` (relative) over ``patience`` validations in a row."""

    def __init__(self, patience: int = 5, min_rel_improvement: float = 0.01) -> None:
        if patience < 1 or not 0 <= min_rel_improvement < 1:
            raise ValueError(f"need patience >= 1 and 0 <= min_rel_improvement < 1, got {patience}, "
                             f"{min_rel_improvement}")
        self.patience, self.min_rel_improvement = patience, min_rel_improvement
        self.best = math.inf
        self.since_best = 0

    def __call__(self, metrics: Mapping[str, Any]) -> bool:
        error = float(metrics.get("val_mean_err", math.inf))
        if error < self.best * (1.0 - self.min_rel_improvement):
            self.best, self.since_best = error, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


def _errors(model: nn.Module, points: training_data.PointArrays) -> np.ndarray:
    with torch.no_grad():
        return point_errors(model, torch.as_tensor(points.x), torch.as_tensor(points.y)).numpy()


def high_error_centres(model: nn.Module, problem: Problem, columns: Mapping[str, np.ndarray],
                       rule: DetectionRule) -> tuple[np.ndarray, dict[str, Any]]:
    """The places ``rule`` selects on the split ``columns`` (as read from its Parquet file), worst
    first, shape ``(m, d)`` with the columns of ``problem.initial_state_ranges()``, and a report.

    Raises ``HighErrorDetectionError`` when the rule selects nothing (a threshold no trajectory
    exceeds: by the rule there is no high-error region).
    """
    points = training_data.point_arrays(dict(columns), problem.inputs, problem.outputs)
    errors = _errors(model, points)
    names = list(problem.initial_state_ranges())
    if problem.kind == "iterator":
        places = points.x[:, [problem.inputs.index(name) for name in names]].astype(np.float64)
        place_of_row = np.arange(len(errors))
    else:  # a trajectory's place is its initial state, one per ``traj``
        traj = np.asarray(columns["traj"])
        ids, place_of_row = np.unique(traj, return_inverse=True)
        first_row = np.full(len(ids), len(traj), dtype=np.int64)
        np.minimum.at(first_row, place_of_row, np.arange(len(traj)))
        places = np.stack([np.asarray(columns[name], dtype=np.float64)[first_row] for name in names], axis=1)
    if rule.kind == "top_fraction":
        n_worst = max(1, int(round(rule.value * len(errors))))
        worst_rows = np.argsort(-errors, kind="stable")[:n_worst]  # ties: in row order
        # distinct places in the order their worst point appears
        _, first = np.unique(place_of_row[worst_rows], return_index=True)
        chosen = place_of_row[worst_rows][np.sort(first)]
        score = errors[worst_rows][np.sort(first)]
        selected_units = n_worst
    else:
        mean_err = np.bincount(place_of_row, weights=errors) / np.bincount(place_of_row)
        above = np.flatnonzero(mean_err > rule.value)
        if len(above) == 0:
            raise HighErrorDetectionError(
                f"{problem.name}: no trajectory has a mean error above {rule.value:g} (the worst is "
                f"{mean_err.max():.3g}): by the rule {rule.describe()!r} the base model has no high-error region")
        chosen = above[np.argsort(-mean_err[above], kind="stable")]  # ties: in trajectory order
        score = mean_err[chosen]
        selected_units = len(above)
    if rule.max_centres is not None:
        chosen, score = chosen[:rule.max_centres], score[:rule.max_centres]
    report = {"rule": rule.describe(), "rule_kind": rule.kind, "rule_value": rule.value,
              "max_centres": rule.max_centres, "selected": int(selected_units), "centres": int(len(chosen)),
              "units": int(len(places)), "worst_error": float(score[0]), "least_selected_error": float(score[-1])}
    return places[chosen], report


def detect_high_error_set(model: nn.Module, problem: Problem, dataset_dir: str | os.PathLike,
                          out_path: str | os.PathLike, *, rule: DetectionRule | None = None, split: str = "train",
                          radius: float = RADIUS, n_per_centre: int | None = None,
                          set_fraction: float = SET_FRACTION, seed: int = 0,
                          device: str = "auto") -> tuple[Path, dict[str, Any]]:
    """Find the places with ``model`` on ``split`` by ``rule`` (default: the thesis' for the problem),
    sample and solve around them, write the set to ``out_path``; returns (path, report).

    ``n_per_centre`` None spreads ``set_fraction`` of the split's trajectories (pairs) over the centres.
    """
    rule = rule or rule_for(problem)
    columns = training_data.read_columns(dataset_dir, split)
    centres, report = high_error_centres(model.cpu().eval(), problem, columns, rule)
    if n_per_centre is None:
        n_per_centre = max(2, int(round(set_fraction * report["units"] / len(centres))))
    path = build_high_error_set(problem, centres, out_path, radius=radius, n_per_centre=n_per_centre, seed=seed,
                                device=device)
    return path, {**report, "n_per_centre": int(n_per_centre), "radius": radius, "split": split}


def train_base_and_detect(config: Mapping[str, Any], out_path: str | os.PathLike, *,
                          rule: DetectionRule | None = None, plateau: PlateauStop | None = None,
                          report=None, seed: int = 0, device: str = "auto") -> tuple[Path, dict[str, Any]]:
    """The whole detection step: train the base model on the homogeneous set as ``config`` says
    (its ``steps`` are the budget), stopped at a plateau (default ``PlateauStop()``), then
    :func:`detect_high_error_set` with it. Returns (set path, report with the base model's figures).
    """
    base_config = {key: value for key, value in config.items() if key != "extra_region"}
    final = train(base_config, report, stop=plateau or PlateauStop())
    if final["status"] != "finished" or not final.get("model_dir"):
        raise HighErrorDetectionError(f"the base model for {config['problem']}'s high-error set ended "
                                      f"{final['status']}: no set built")
    problem = TrainConfig.from_mapping(base_config).resolved_problem
    path, detection = detect_high_error_set(load_model(final["model_dir"]), problem,
                                            final["dataset_dir"], out_path, rule=rule, seed=seed, device=device)
    base = {"base_steps": final["step"], "base_stopped_at_step": final.get("stopped_at_step"),
            "base_val_mean_err": final.get("final_full_val_mean_err", final.get("val_mean_err")),
            "base_model_dir": final["model_dir"], "dataset_dir": final["dataset_dir"]}
    return path, {**detection, **base}
