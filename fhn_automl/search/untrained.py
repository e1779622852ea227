"""Untrained sweeps (``kind: untrained``, the thesis' inference study 4.4).

The post-stage times thousands of untrained SiLU networks to fit inference cost against neurons and
depth (Tables 12-13). There is nothing to train, so Ray would only add 10-20 s of start-up per model:
the driver builds each network with the learning layer, saves it in the usual model layout and logs
it as a child run with the same params and ``model/`` artifacts as a trained trial.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fhn_automl.learning.untrained import untrained_model
from fhn_automl.search.options import SearchOptions, SearchSummary
from fhn_automl.search.tracking import SearchTracker, environment_tags, trial_params
from fhn_automl.search.trial import trial_figures

if TYPE_CHECKING:
    from fhn_automl.search.space import TrialSpec


def run_untrained_sweep(options: SearchOptions, trials: list[TrialSpec], experiment: str,
                        tracking_uri: str) -> SearchSummary:
    """Build, save and log every network of the sweep; returns the same summary as a search."""
    from fhn_automl.learning.model_io import save_model

    started = time.perf_counter()
    space = options.space
    tracker = SearchTracker(tracking_uri, experiment, strict=options.strict_tracking)
    tracker.start_search(search_name=space.name, budget=options.budget.name,
                         params={"search_file": str(space.path), "budget": options.budget.name,
                                 "algorithm": "grid", "n_trials": len(trials), "kind": "untrained"},
                         tags=environment_tags("cpu"), search_file=space.path)
    statuses: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fhn_automl_untrained_") as scratch:
        for done, trial in enumerate(trials, start=1):
            model = untrained_model(trial.resolved_problem, trial.layers, seed=trial.seed)
            model_dir = save_model(model, Path(scratch) / trial.name)
            params = trial_params(trial.as_dict(), trial_figures(trial))
            tracker.start_trial(trial.name, params)
            tracker.finish_trial(trial.name, "finished", model_dir=model_dir)
            statuses[trial.name] = "finished"
            if not options.quiet and (done % 50 == 0 or done == len(trials)):
                print(f"[search {time.perf_counter() - started:6.0f}s] done {done} / running 0 / "
                      f"left {len(trials) - done} | untrained models saved", flush=True)
    tracker.end_search({"n_finished": len(statuses)}, interrupted=False)
    return SearchSummary(experiment=experiment, tracking_uri=tracking_uri,
                         parent_run_id=tracker.parent_run_id, n_trials=len(trials),
                         statuses=statuses, best_trial=None, best_value=None,
                         wall_seconds=time.perf_counter() - started, interrupted=False,
                         tune_path=None, timings={"mlflow_seconds": tracker.logging_seconds})
