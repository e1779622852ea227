"""Validation metrics: the thesis' point error |U_pred - U_true| + |W_pred - W_true| (eq. 3.3).

A model's ``val_mean_err`` / ``val_max_err`` are the mean and max of that error over its validation
points. Iterators are validated twice (thesis 4.2.3): per step on the pair set
(``val_step_*``) and by rolling whole trajectories out to t = 50 (``val_rollout_*``); their
``val_mean_err`` / ``val_max_err`` are the rollout figures, the ones a simulator would see.
"""

from __future__ import annotations

import torch
from torch import nn

#: Points per forward pass during validation: bounds memory without slowing small models down.
VALIDATION_CHUNK = 65_536


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
