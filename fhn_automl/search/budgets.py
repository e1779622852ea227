"""Budgets: one search file, three scales.

``paper`` runs a file as written (the thesis: 1M Adam steps per model, full datasets, the whole grid).
``small`` and ``smoke`` shrink steps, validation interval, dataset size and the number of trials so the
same file runs on a laptop (``small``: minutes per trial) or in CI (``smoke``: the whole search in about
three minutes on two CPUs). A file may override any budget field under ``budgets:``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

BUDGET_NAMES = ("smoke", "small", "paper")


@dataclass(frozen=True)
class Budget:
    """How far one budget scales a search file; ``None`` keeps the file's own value."""

    name: str
    #: training steps per trial
    steps: int | None = None
    #: steps between validations (= reports, checkpoints and MLflow points)
    val_every: int | None = None
    #: dataset size handed to ``ensure_dataset`` (None: the problem's thesis size)
    n_trajectories: int | None = None
    #: at most this many trials, spread evenly over the grid (None: all of them)
    max_trials: int | None = None
    #: trial count of model-based searches (Optuna)
    num_samples: int | None = None
    #: training recipe of the learning layer (``fast``: scaled inputs, large batch; ``paper``: thesis)
    recipe: str | None = None


#: Defaults; the smoke numbers come from FACTS.md: 2k steps of the fast recipe reach ~3e-3 on B_S in
#: about 3 s of training, so a trial is dominated by Ray Train start-up (9-23 s) on two cores.
DEFAULT_BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", steps=2_000, val_every=500, n_trajectories=400, max_trials=3,
                    num_samples=3, recipe="fast"),
    "small": Budget("small", steps=20_000, val_every=2_000, n_trajectories=2_000, max_trials=12,
                    num_samples=12, recipe="fast"),
    "paper": Budget("paper"),
}

BUDGET_FIELDS = tuple(f.name for f in fields(Budget) if f.name != "name")


def resolve_budget(name: str, overrides: dict[str, Any] | None = None) -> Budget:
    """The named budget with a search file's overrides applied (already validated by the loader)."""
    if name not in DEFAULT_BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose one of {', '.join(BUDGET_NAMES)}")
    budget = DEFAULT_BUDGETS[name]
    return replace(budget, **(overrides or {}))
