"""Training recipes: optimiser, learning-rate schedule, default batch size and input/output scaling.

``paper`` is the thesis protocol (3.2): raw inputs and outputs, Adam lr 1e-3, batch 128,
ReduceLROnPlateau(factor=0.999999, patience=1000, threshold=1e-3, min_lr=1e-5, eps=1e-8) stepped on
the training loss every iteration (with that factor it barely moves the lr: that is the thesis).

``fast`` (the default) is what FACTS.md measured to reach the thesis' best B_S error in 5 CPU minutes
instead of 1M steps: inputs scaled to [-1, 1], outputs standardised, batch 1024, lr 2e-2 with a
linear warm-up then cosine decay, fused Adam where the device supports it. lr 2e-2 rather than
FACTS.md's 1e-2: three seeds each on C, B_C small and B_S gave a lower error at 2e-2 beyond the seed
spread on all three (benchmarks/RESULTS.md, accuracy section, session 2); 3e-2 was not better than 2e-2
beyond the spread.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch is imported where an optimiser is built, so the recipe names validate training configs and
# search files on a machine without torch (``config`` and ``search.space`` read them).


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float
    batch_size: int
    scale_inputs: bool
    standardise_outputs: bool
    schedule: str  # "plateau" | "cosine"
    warmup_fraction: float = 0.0
    final_lr_fraction: float = 1e-3
    fused_adam: bool = False
    plateau_factor: float = 0.999999
    plateau_patience: int = 1000
    plateau_threshold: float = 1e-3
    plateau_min_lr: float = 1e-5
    plateau_eps: float = 1e-8

    @property
    def steps_on_loss(self) -> bool:
        """Whether the scheduler needs the loss value each step (a host sync on GPUs)."""
        return self.schedule == "plateau"

    def make_optimizer(self, parameters, lr: float, device: torch.device) -> torch.optim.Optimizer:
        import torch

        params = list(parameters)
        if self.fused_adam:
            try:
                return torch.optim.Adam(params, lr=lr, fused=True)
            except (RuntimeError, TypeError) as error:  # device without fused kernels
                warnings.warn(f"fused Adam unavailable on {device} ({error}); using the default Adam",
                              stacklevel=2)
        return torch.optim.Adam(params, lr=lr)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps: int, warmup_steps: int | None = None):
        import torch

        if self.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=self.plateau_factor, patience=self.plateau_patience,
                threshold=self.plateau_threshold, min_lr=self.plateau_min_lr, eps=self.plateau_eps)
        if self.schedule == "cosine":
            warmup = int(round(self.warmup_fraction * steps)) if warmup_steps is None else int(warmup_steps)
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: warmup_cosine_factor(step, steps, warmup, self.final_lr_fraction))
        raise ValueError(f"unknown schedule {self.schedule!r}")


def warmup_cosine_factor(step: int, total: int, warmup: int, final_fraction: float) -> float:
    """lr multiplier: linear ramp over ``warmup`` steps, then cosine from 1 down to ``final_fraction``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


RECIPES: dict[str, Recipe] = {
    "paper": Recipe(name="paper", lr=1e-3, batch_size=128, scale_inputs=False, standardise_outputs=False,
                    schedule="plateau"),
    "fast": Recipe(name="fast", lr=2e-2, batch_size=1024, scale_inputs=True, standardise_outputs=True,
                   schedule="cosine", warmup_fraction=0.02, final_lr_fraction=1e-3, fused_adam=True),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
