"""What a search is asked (``SearchOptions``) and what it answers (``SearchSummary``).

Apart from the runner so that the untrained sweep and the command line share them without importing
Ray or each other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fhn_automl.search.budgets import Budget
from fhn_automl.search.space import SearchSpace

#: The learning layer's entry point; a ``module:function`` string so Ray workers import it lazily.
DEFAULT_TRAIN_FN = "fhn_automl.learning.trainer:train"


@dataclasses.dataclass(frozen=True)
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
    #: why MLflow may lack part of this search (None: complete); the Tune folder keeps it all and
    #: ``--sync-tracking`` replays it (``search.replay``)
    tracking_problem: str | None = None
    #: finished trials whose model is in neither MLflow nor the Tune folder (tagged, never registered)
    models_missing: list[str] = dataclasses.field(default_factory=list)
    #: trial name -> the last line of its error (trials that failed in this driver), for the exit message
    trial_errors: dict[str, str] = dataclasses.field(default_factory=dict)

    def nothing_finished(self) -> bool:
        """True when trials ran (or were replayed) and none of them finished: a search without a model."""
        return bool(self.statuses) and not any(s == "finished" for s in self.statuses.values())


def tune_location(options: SearchOptions, experiment: str) -> tuple[str | Path, str, str]:
    """(storage, Tune experiment name, Tune experiment folder) of a search.

    The MLflow experiment is per file and budget (the post-stage's contract); Tune's state is per
    study too, so a --study run never overwrites the state of a whole-file run.
    """
    remote = bool(options.storage) and "://" in str(options.storage)
    storage = options.storage if remote else Path(options.storage or Path("runs") / "ray").resolve()
    tune_name = experiment if options.study is None else f"{experiment}-{options.study}"
    return storage, tune_name, f"{storage}/{tune_name}"
