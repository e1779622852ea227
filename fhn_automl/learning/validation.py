"""Validation metrics: the thesis' point error |U_pred - U_true| + |W_pred - W_true| (eq. 3.3).

A model's ``val_mean_err`` / ``val_max_err`` are the mean and max of that error over its validation
points; ``val_code_mean_err`` / ``val_code_max_err`` are the same model's errors in the thesis code's
measure (half-sum mean, largest component; ``physics.error_measures`` defines both). Iterators are validated twice (thesis 4.2.3): per step on the pair set
(``val_step_*``) and by rolling whole trajectories out to t = 50 (``val_rollout_*``); their
``val_mean_err`` / ``val_max_err`` are the rollout figures, the ones a simulator would see.

Two figures of one run, named apart:

* during training, every ``val_every`` steps, on a fixed *subset* (``val_max_points`` points,
  ``rollout_max_trajectories`` rollouts) so validation stays cheap: ``val_*`` and the best of them,
  ``best_subset_val_*`` (also spelled ``best_val_*``, the older name);
* once, after the last step, the model *at the end of training* on the *whole* validation set and
  every rollout: ``final_full_val_*``. That is the thesis' figure (3.2: validation of every sample in
  the set; Figs. 26, 30, 34: "after training end") and the one that ranks and registers a trial
  (:data:`REPORTED_ERROR_METRIC`); the saved model is the one it describes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from fhn_automl.physics.error_measures import ErrorSummary, error_metrics

#: Points per forward pass during validation: bounds memory without slowing small models down.
VALIDATION_CHUNK = 65_536
#: Prefix of the after-training, whole-set metrics.
FINAL_FULL_PREFIX = "final_full_"
#: The error that ranks trials, picks Pareto models and goes on the model card: the thesis' figure.
REPORTED_ERROR_METRIC = FINAL_FULL_PREFIX + "val_mean_err"
REPORTED_MAX_ERROR_METRIC = FINAL_FULL_PREFIX + "val_max_err"
#: The same figure in the thesis code's measure (physics.error_measures): reported beside it, never ranked by.
REPORTED_CODE_ERROR_METRIC = FINAL_FULL_PREFIX + "val_code_mean_err"
REPORTED_CODE_MAX_ERROR_METRIC = FINAL_FULL_PREFIX + "val_code_max_err"


@torch.no_grad()
def point_abs_diffs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """``|out - y|`` per row and output of raw inputs ``x`` against raw targets ``y``: ``(N, n_out)``."""
    parts = [(model(x[i:i + chunk]) - y[i:i + chunk]).abs() for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts) if parts else x.new_zeros(0, y.shape[1] if y.ndim == 2 else 1)


@torch.no_grad()
def point_errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """|dU| + |dW| per row of raw inputs ``x`` against raw targets ``y`` (eq. 3.3)."""
    return point_abs_diffs(model, x, y, chunk).sum(dim=1)


@torch.no_grad()
def rollout_abs_diffs(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """``|out - y|`` of an iterator rolled out from ``x0``: ``(n_traj, n_steps, n_out)``, step 0 excluded."""
    n_steps = y.shape[1]
    parts = [(model.rollout(x0[i:i + chunk], n_steps)[:, 1:] - y[i:i + chunk]).abs()
             for i in range(0, x0.shape[0], chunk)]
    return torch.cat(parts)


@torch.no_grad()
def rollout_errors(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """|dU| + |dW| of an iterator rolled out from ``x0``: shape (n_traj, n_steps), step 0 excluded."""
    return rollout_abs_diffs(model, x0, y, chunk).sum(dim=2)


def _named(prefix: str, summary: dict[str, float]) -> dict[str, float]:
    """``mean_err`` -> ``<prefix>mean_err``, ``code_mean_err`` -> ``<prefix>code_mean_err``, ..."""
    return {f"{prefix}{key}": value for key, value in summary.items()}


def _with_rollout(points: dict[str, float], along: torch.Tensor) -> dict[str, float]:
    """An iterator's metrics: per step (``val_step_*``) and by rollout (``val_rollout_*``, which are
    also its ``val_*``, the figures a simulator would see)."""
    rollout = error_metrics(along.reshape(-1, along.shape[-1]))
    return _named("val_step_", points) | _named("val_rollout_", rollout) | _named("val_", rollout)


def validation_metrics(model: nn.Module, val_x: torch.Tensor, val_y: torch.Tensor,
                       rollout: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """``val_mean_err`` / ``val_max_err`` (eq. 3.3) and ``val_code_mean_err`` / ``val_code_max_err``
    (the thesis code's measure, ``physics.error_measures``) of ``model`` on the validation subset."""
    points = error_metrics(point_abs_diffs(model, val_x, val_y))
    if rollout is None:
        return _named("val_", points)
    return _with_rollout(points, rollout_abs_diffs(model, *rollout))


@torch.no_grad()
def streamed_errors(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                    device: torch.device) -> ErrorSummary:
    """Both error measures over host batches of raw (x, y): a whole validation set (25M points for
    problem C at the thesis' size) never has to sit on the device at once."""
    summary = ErrorSummary()
    for x, y in batches:
        if len(x) == 0:
            continue
        summary.add(point_abs_diffs(model, torch.as_tensor(x, device=device), torch.as_tensor(y, device=device)))
    return summary


def streamed_error_summary(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                           device: torch.device) -> tuple[float, float, int]:
    """(mean, max, count) of the point error (eq. 3.3) over host batches of raw (x, y)."""
    summary = streamed_errors(model, batches, device)
    metrics = summary.metrics()
    return metrics["mean_err"], metrics["max_err"], summary.points


def final_full_metrics(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]], device: torch.device,
                       rollout: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """The ``final_full_*`` metrics of :func:`validation_metrics`'s shape, over the whole set.

    ``batches``: the whole validation split in host chunks; ``rollout``: every rollout trajectory
    (iterators). Also records how many points (and rollouts) the figure covers.
    """
    summary = streamed_errors(model, batches, device)
    points = summary.metrics()
    if rollout is None:
        metrics = _named("val_", points)
    else:
        along = rollout_abs_diffs(model, *rollout)
        metrics = _with_rollout(points, along)
        metrics["val_rollouts"] = float(along.shape[0])
    metrics["val_points"] = float(summary.points)
    return {FINAL_FULL_PREFIX + key: value for key, value in metrics.items()}
