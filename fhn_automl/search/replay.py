"""Replaying a search's local record into MLflow: what an outage or a killed driver kept out of it.

Tune keeps every trial's results on disk whatever happens to MLflow: ``<Tune folder>/<trial>/``
holds ``params.json`` (its config) and ``result.json`` (one line per reported result: each
validation, then the final one with ``final: 1``), and the final checkpoint holds the model (for
``executor: train`` under the ``-train`` folder, named by the result's ``checkpoint_path``; for
``executor: function`` the trial folder's ``checkpoint_*``). ``replay_trials`` walks that record and
adds to MLflow, through the same ``SearchTracker`` a live search uses, whatever is missing there:
child runs, metric histories (every point MLflow lacks, so that it ends equal to the record point by
point), final metrics, status tags and the models. Idempotent, so it runs after every ``--resume``
and as ``--sync-tracking`` on its own.

A trial without a final result is either one that Tune ended early (its scheduler, ASHA, stopped it:
Tune marks that last result ``done`` and keeps the trial ``TERMINATED`` in its experiment state; in a
pack, halving marks the member ``stopped_early``) or one still running when the driver stopped. The
first is closed as a live search closes it (``finished``, tagged ``stopped_early``, its last
validation's best model); only the second is left open and makes the search count as interrupted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhn_automl.search.endpoints import check_tracking_store
from fhn_automl.search.lock import experiment_lock
from fhn_automl.search.options import SearchOptions, SearchSummary, tune_location
from fhn_automl.search.tracking import SearchTracker, experiment_name, resolve_tracking_uri, trial_params
from fhn_automl.search.trial import trial_figures, trial_from_config

logger = logging.getLogger(__name__)

#: Written beside Tune's state so ``--resume`` and ``--sync-tracking`` find the search's MLflow parent
#: run again (and can make a new one, with the same params and tags, in a store that lost it).
SEARCH_STATE_FILE = "fhn_automl_search.json"


class NoSearchRecordError(RuntimeError):
    """``--sync-tracking`` found no local record of the search (no Tune folder)."""


@dataclass
class ReplayReport:
    """What a replay found on disk and what it had to add to MLflow."""

    trials: int = 0
    statuses: dict[str, str] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)        # status, finals, model written now
    models_attached: list[str] = field(default_factory=list)
    models_missing: list[str] = field(default_factory=list)  # finished, but no model on disk either
    unfinished: list[str] = field(default_factory=list)


def read_search_state(tune_path: str) -> dict[str, Any]:
    path = Path(tune_path) / SEARCH_STATE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def existing_run(tracker: SearchTracker, run_id: str | None) -> str | None:
    """``run_id`` if the store still has that run (a replaced store does not), else None."""
    if not run_id:
        return None
    try:
        tracker.client.get_run(run_id)
    except Exception:  # not found, or the store does not answer: start a new parent
        return None
    return run_id


def replay_trials(tracker: SearchTracker, tune_path: str, *, quiet: bool = True) -> ReplayReport:
    """Bring the MLflow record of the search at ``tune_path`` up to its local record (see module doc).

    ``tracker`` has its parent run started (``start_search``), which also loads the child runs the
    store already holds.
    """
    from ray.air.constants import EXPR_PARAM_FILE, EXPR_RESULT_FILE  # Tune's file names

    report = ReplayReport()
    root = Path(tune_path)
    tune_statuses = _tune_trial_statuses(root)
    for trial_dir in sorted(p for p in root.iterdir() if (p / EXPR_PARAM_FILE).is_file()) if root.is_dir() else []:
        config = json.loads((trial_dir / EXPR_PARAM_FILE).read_text())
        if "template" in config and "index" not in config:
            continue  # an Optuna trial whose number Tune had not assigned yet: never ran
        if "pack" in config:  # executor: packed: the Tune trial of a pack holds several trials
            from fhn_automl.search.packed_trial import pack_member_records

            records = pack_member_records(config, _read_results(trial_dir / EXPR_RESULT_FILE), trial_dir)
        else:
            records = [(trial_from_config(config), _read_results(trial_dir / EXPR_RESULT_FILE), None)]
        tune_ended = tune_statuses.get(trial_dir.name) == "TERMINATED"
        for spec, results, member_checkpoint in records:
            _replay_trial(tracker, report, trial_dir, spec, results, member_checkpoint, tune_ended=tune_ended)
    if not quiet:
        print(f"[search] replayed {report.trials} trial(s) from {tune_path}: {len(report.closed)} closed, "
              f"{len(report.models_attached)} model(s) attached, {len(report.unfinished)} unfinished",
              flush=True)
    return report


def _replay_trial(tracker: SearchTracker, report: ReplayReport, trial_dir: Path, spec: Any,
                  results: list[dict[str, Any]], member_checkpoint: Path | None, *, tune_ended: bool = False) -> None:
    """One trial's record into MLflow (``member_checkpoint``: where a pack member's model is;
    ``tune_ended``: Tune's experiment state holds the trial as ``TERMINATED``)."""
    from ray.air.constants import EXPR_ERROR_FILE

    from fhn_automl.search.monitor import local_model_dir

    final = next((r for r in reversed(results) if r.get("final")), None)
    # as SearchMonitor.on_trial_complete: ended by the scheduler before its last step, no final report
    # (a pack's final report lists its halved members too, so for them the member status tells)
    stopped_early = any(r.get("status") == "stopped_early" for r in results) or (
        final is None and bool(results) and (bool(results[-1].get("done")) or tune_ended))
    report.trials += 1
    if (trial_dir / EXPR_ERROR_FILE).is_file():
        status = "error"
    elif final is not None:
        status = "diverged" if final.get("status") == "diverged" else "finished"
    elif stopped_early:
        status = "finished"
    else:
        status = None  # still running when the driver stopped
        report.unfinished.append(spec.name)
    tracker.start_trial(spec.name, trial_params(spec.as_dict(), trial_figures(spec)))
    # every point MLflow lacks, also below its last logged step and for trials already closed
    tracker.fill_history(spec.name, results)
    if status is None:
        return
    report.statuses[spec.name] = status
    model_dir = None
    if status != "error":
        # executor: train names its checkpoints in the results (a trial stopped early: its last one)
        reported = final if final is not None else next((r for r in reversed(results) if r.get("checkpoint_path")),
                                                        {})
        checkpoint = member_checkpoint or reported.get("checkpoint_path") or _latest_checkpoint(trial_dir)
        model_dir = local_model_dir(str(checkpoint)) if checkpoint else None
    if spec.name not in tracker.closed:
        error = (trial_dir / EXPR_ERROR_FILE).read_text()[-4000:] if status == "error" else None
        # how often its workers started again (lost node, --resume), as the live monitor counts them
        sessions = {r["worker_session"] for r in results if "worker_session" in r}
        tracker.finish_trial(spec.name, status, final=final or (results[-1] if results else None),
                             model_dir=model_dir, error=error, restarts=max(0, len(sessions) - 1))
        if stopped_early and status == "finished":
            tracker.mark_stopped_early(spec.name)
        report.closed.append(spec.name)
    elif tracker.closed[spec.name] == "finished" and not tracker.has_model(spec.name) and model_dir:
        tracker.attach_model(spec.name, model_dir, step=int((final or {}).get("step", 0)))
        report.models_attached.append(spec.name)
    if status == "finished" and model_dir is None and not tracker.has_model(spec.name):
        report.models_missing.append(spec.name)
        tracker.mark_model_missing(spec.name)


def _read_results(path: Path) -> list[dict[str, Any]]:
    results = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                results.append(json.loads(line))
            except ValueError:  # the line being written when the driver died
                continue
    return results


def _tune_trial_statuses(root: Path) -> dict[str, str]:
    """Tune's status of each trial (``TERMINATED``, ``ERROR``, ``PENDING`` ...) by trial folder name,
    from the newest experiment state, read as plain JSON; empty when there is none (a driver killed before
    the first one)."""
    if not root.is_dir():
        return {}
    # Plain JSON only: Tune's own reader (ExperimentAnalysis) unpickles the cloudpickle blobs the file
    # holds, which would run code planted in a shared --storage. The status and the folder name of each
    # trial are plain JSON fields of its state (a JSON document inside the file's ``trial_data``).
    states = sorted(root.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        document = json.loads(states[-1].read_text())
        statuses = {}
        for entry in document.get("trial_data", []):
            state = json.loads(entry[0] if isinstance(entry, (list, tuple)) else entry)
            folder = state.get("relative_logdir")
            if isinstance(folder, str) and isinstance(state.get("status"), str):
                statuses[Path(folder).name] = state["status"]
        return statuses
    except (OSError, ValueError, TypeError, AttributeError, IndexError) as error:
        # unreadable state: the results' own ``done`` flag still tells
        logger.info("no Tune experiment state read at %s (%s)", root, error)
        return {}


def _latest_checkpoint(trial_dir: Path) -> Path | None:
    """``executor: function``: Tune keeps the trial's checkpoints in its folder."""
    checkpoints = sorted(trial_dir.glob("checkpoint_*"))
    return checkpoints[-1] if checkpoints else None


def sync_tracking(options: SearchOptions) -> SearchSummary:
    """``--sync-tracking``: replay the search's local record into MLflow without training anything.

    Takes the search's lock (not while the search runs), reopens its parent run or, in a store that
    lost it, makes a new one with the params and tags the search recorded; returns a summary whose
    ``tracking_problem`` says whether MLflow now holds everything.
    """
    import time

    started = time.perf_counter()
    experiment = experiment_name(options.space.name, options.budget.name)
    _, _, tune_path = tune_location(options, experiment)
    if "://" in tune_path or not Path(tune_path).is_dir():
        raise NoSearchRecordError(f"--sync-tracking: no local record of {experiment} at {tune_path} (pass the "
                                  "--storage the search used; remote storage is not read back)")
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    check_tracking_store(tracking_uri)
    with experiment_lock(tune_path):
        state = read_search_state(tune_path)
        tracker = SearchTracker(tracking_uri, experiment)
        datasets = {p: d for p, d in (state.get("datasets") or {}).items() if Path(d, "manifest.json").is_file()}
        tracker.start_search(search_name=options.space.name, budget=options.budget.name,
                             params=state.get("params", {}), tags=state.get("tags", {}),
                             search_file=options.space.path if options.space.path.is_file() else None,
                             resume_parent_run_id=existing_run(tracker, state.get("parent_run_id")),
                             datasets=datasets)
        if tracker.parent_run_id:
            write_search_state(tune_path, {**state, "parent_run_id": tracker.parent_run_id})
        report = replay_trials(tracker, tune_path, quiet=options.quiet)
        counts = {status: sum(1 for s in report.statuses.values() if s == status)
                  for status in ("finished", "diverged", "error")}
        tracker.end_search({f"n_{k}": v for k, v in counts.items()}, interrupted=bool(report.unfinished))
    if not options.quiet:
        print(f"[search] {experiment}: MLflow synced from {tune_path}: {counts}, {len(report.unfinished)} "
              f"unfinished", flush=True)
    return SearchSummary(experiment=experiment, tracking_uri=tracking_uri, parent_run_id=tracker.parent_run_id,
                         n_trials=report.trials, statuses=report.statuses, best_trial=None, best_value=None,
                         wall_seconds=time.perf_counter() - started, interrupted=bool(report.unfinished),
                         tune_path=tune_path, timings={}, tracking_problem=tracker.store_problem(),
                         models_missing=report.models_missing)


def write_search_state(tune_path: str, state: dict[str, Any]) -> None:
    path = Path(tune_path) / SEARCH_STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, default=str))
