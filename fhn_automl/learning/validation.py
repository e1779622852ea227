"""Validation metrics: the thesis' point error |U_pred - U_true| + |W_pred - W_true| (eq. 3.3).

A model's ``val_mean_err`` / ``val_max_err`` are the mean and max of that error over its validation
points. Iterators are validated twice (thesis 4.2.3): per step on the pair set
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

#: Points per forward pass during validation: bounds memory without slowing small models down.
VALIDATION_CHUNK = 65_536
#: Prefix of the after-training, whole-set metrics.
FINAL_FULL_PREFIX = "final_full_"
#: The error that ranks trials, picks Pareto models and goes on the model card: the thesis' figure.
REPORTED_ERROR_METRIC = FINAL_FULL_PREFIX + "val_mean_err"
REPORTED_MAX_ERROR_METRIC = FINAL_FULL_PREFIX + "val_max_err"


@torch.no_grad()
def point_errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """|dU| + |dW| per row of raw inputs ``x`` against raw targets ``y``."""
    parts = [(model(x[i:i + chunk]) - y[i:i + chunk]).abs().sum(dim=1) for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts) if parts else x.new_zeros(0)


@torch.no_grad()
def rollout_errors(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, chunk: int = VALIDATION_CHUNK) -> torch.Tensor:
    """|dU| + |dW| of an iterator rolled out from ``x0``: shape (n_traj, n_steps), step 0 excluded."""
    n_steps = y.shape[1]
    parts = [(model.rollout(x0[i:i + chunk], n_steps)[:, 1:] - y[i:i + chunk]).abs().sum(dim=2)
             for i in range(0, x0.shape[0], chunk)]
    return torch.cat(parts)


def validation_metrics(model: nn.Module, val_x: torch.Tensor, val_y: torch.Tensor,
                       rollout: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    errors = point_errors(model, val_x, val_y)
    metrics = {"val_mean_err": float(errors.mean()), "val_max_err": float(errors.max())}
    if rollout is not None:
        along = rollout_errors(model, *rollout)
        metrics = {"val_step_mean_err": metrics["val_mean_err"], "val_step_max_err": metrics["val_max_err"],
                   "val_rollout_mean_err": float(along.mean()), "val_rollout_max_err": float(along.max())}
        metrics["val_mean_err"] = metrics["val_rollout_mean_err"]
        metrics["val_max_err"] = metrics["val_rollout_max_err"]
    return metrics


@torch.no_grad()
def streamed_error_summary(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                           device: torch.device) -> tuple[float, float, int]:
    """(mean, max, count) of the point error over host batches of raw (x, y): a whole validation set
    (25M points for problem C at the thesis' size) never has to sit on the device at once."""
    total, worst, count = 0.0, 0.0, 0
    for x, y in batches:
        if len(x) == 0:
            continue
        errors = point_errors(model, torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))
        total += float(errors.double().sum())
        worst = max(worst, float(errors.max()))
        count += len(x)
    return (total / count if count else float("nan")), (worst if count else float("nan")), count


def final_full_metrics(model: nn.Module, batches: Iterable[tuple[np.ndarray, np.ndarray]], device: torch.device,
                       rollout: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
    """The ``final_full_*`` metrics of :func:`validation_metrics`'s shape, over the whole set.

    ``batches``: the whole validation split in host chunks; ``rollout``: every rollout trajectory
    (iterators). Also records how many points (and rollouts) the figure covers.
    """
    mean, worst, count = streamed_error_summary(model, batches, device)
    metrics = {"val_mean_err": mean, "val_max_err": worst, "val_points": float(count)}
    if rollout is not None:
        along = rollout_errors(model, *rollout)
        metrics = {"val_step_mean_err": mean, "val_step_max_err": worst, "val_points": float(count),
                   "val_rollout_mean_err": float(along.mean()), "val_rollout_max_err": float(along.max()),
                   "val_rollouts": float(along.shape[0])}
        metrics["val_mean_err"] = metrics["val_rollout_mean_err"]
        metrics["val_max_err"] = metrics["val_rollout_max_err"]
    return {FINAL_FULL_PREFIX + key: value for key, value in metrics.items()}
