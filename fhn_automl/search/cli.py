"""The search's command line: its options, ``--dry-run``, and running the search from parsed options.

``python -m fhn_automl.search`` is ``fhn_automl.pipeline.main``: it adds ``--no-post`` to this parser
and runs the post-stage after the search. This module stays inside the search layer.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections import Counter

from fhn_automl._cli import non_negative_int, positive_int
from fhn_automl.search.budgets import BUDGET_NAMES
from fhn_automl.search.cost import estimate_cost
from fhn_automl.search.endpoints import EndpointUnreachableError
from fhn_automl.search.grid import evenly_spaced
from fhn_automl.search.job_records import JobRecordsNotKeptError, check_job_records, job_data_root
from fhn_automl.search.lock import SearchLockedError, StorageNotWritableError
from fhn_automl.search.options import SearchOptions, SearchSummary
from fhn_automl.search.replay import NoSearchRecordError, sync_tracking
from fhn_automl.search.resources import UnsatisfiableResourcesError
from fhn_automl.search.space import EXECUTORS, SearchSpaceError, load_search_space
from fhn_automl.search.tune_state import UntrustedTuneStateError

#: The command's help: what it does, then examples (``python -m fhn_automl.search --help``).
HELP = """Run an architecture search: ``python -m fhn_automl.search SEARCH [--budget smoke|small|paper]``.

SEARCH is a file of search_spaces/ by name (problem_b_s) or a path to a YAML search file. Every trial
is trained by Ray Train workers inside a Ray Tune trial and recorded in MLflow (experiment
<search>-<budget>: a parent run and one child run per trial, with the model files as artifacts).
Without --address / RAY_ADDRESS a local Ray starts on this machine's CPUs and GPUs. After the search
the post-stage (Pareto front, compile, benchmark) runs on the experiment unless --no-post is given.

Examples:
  python -m fhn_automl.search problem_b_s --budget smoke          # the README's main job
  python -m fhn_automl.search problem_b_s --budget smoke --executor packed  # trials trained in packs
  python -m fhn_automl.search problem_c --dry-run                 # trial count, first trials
  python -m fhn_automl.search tp06_beat --problem 'beat:my_model.mmt?vary=gKr,gKs'  # your own cell model
  python -m fhn_automl.search problem_c --budget paper --address auto --storage /shared/runs
  python -m fhn_automl.search problem_b_s --budget smoke --resume # continue an interrupted search
  python -m fhn_automl.search problem_b_s --budget smoke --sync-tracking  # MLflow was down: fill it in
"""


def build_parser() -> argparse.ArgumentParser:
    """The search's options (``pipeline`` adds ``--no-post``)."""
    parser = argparse.ArgumentParser(
        prog="python -m fhn_automl.search", description=HELP.split("\n\n")[1],
        epilog="\n\n".join(HELP.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("search", help="search file: a name in search_spaces/ (problem_b_s) or a "
                        "path to a .yaml file")
    parser.add_argument("--problem", metavar="PROBLEM",
                        help="run the file's grid on this problem instead of the file's own: a registered name or "
                        "'beat:MODEL_FILE?vary=P1,P2' (your own cell model; README \"Your own cell model\"); the "
                        "search (MLflow experiment) is then named SEARCH-<problem name>-BUDGET")
    parser.add_argument("--budget", choices=BUDGET_NAMES, default="smoke",
                        help="scale of the run: smoke (CI, ~3 min on 2 CPUs), small (laptop), "
                        "paper (the thesis: 1M steps per model, whole grids). Default: smoke")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the number of trials, the first few and the cost (model-steps, and a time "
                        "estimated from steps/s measured on this machine in ~1 s), start nothing")
    parser.add_argument("--show", type=non_negative_int, default=5, metavar="N",
                        help="trials listed by --dry-run (default 5)")
    parser.add_argument("--study", metavar="NAME",
                        help="run only this study of a file with several (default: all)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted search of this file and budget: finished "
                        "trials are kept, unfinished ones restart from their last checkpoint, "
                        "MLflow runs are reused")
    parser.add_argument("--address", metavar="ADDR",
                        help="Ray cluster to join ('auto', 'HOST:6379'); default RAY_ADDRESS, else a "
                        "local Ray with this machine's resources")
    parser.add_argument("--storage", metavar="PATH_OR_URI",
                        help="where Tune state and checkpoints go (default ./runs/ray); on a "
                        "multi-node cluster a path every node sees, or s3://...; required (absolute) under "
                        "`ray job submit --working-dir`, whose copy of the folder Ray deletes")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking store (default MLFLOW_TRACKING_URI, else "
                        "sqlite:///<cwd>/mlruns/mlflow.db with artifacts in mlruns/artifacts); under "
                        "`ray job submit --working-dir` one of the two is required: a server or an absolute "
                        "sqlite:////path")
    parser.add_argument("--data-root", default="data", metavar="DIR",
                        help="folder of the generated datasets (default ./data; under `ray job submit` a "
                        "relative one is taken under --storage)")
    parser.add_argument("--max-concurrent", type=positive_int, metavar="N",
                        help="at most N trials at once (default: as many as the cluster fits)")
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="override the file's resources.executor: train (Ray Train per trial), function "
                        "(a Tune function per trial), packed (resources.pack_size trials per Tune trial)")
    parser.add_argument("--max-failures", type=non_negative_int, default=3, metavar="N",
                        help="restarts of a trial after a lost worker or node (default 3)")
    parser.add_argument("--sync-tracking", action="store_true",
                        help="train nothing: replay the search's local record (Tune folder under --storage) "
                        "into MLflow, e.g. after an MLflow outage (then the post-stage, unless --no-post); "
                        "also done by every --resume")
    parser.add_argument("--strict-tracking", action="store_true",
                        help="stop on an MLflow error instead of logging it and going on")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def dry_run(space, budget, trials, show: int, *, measure: bool = True) -> None:
    """Print the trial count per study, the first ``show`` trials and the cost (model-steps and a time
    from steps/s measured here, ``fhn_automl.search.cost``); starts no Ray."""
    per_study = Counter(t.study for t in trials)
    algorithm = space.search.algorithm
    print(f"{space.path.name} at budget {budget.name}: {len(trials)} trial(s) in the grid"
          + ("" if algorithm == "grid" else f"; {algorithm} samples {space.search.num_samples}"
             " of them at the paper budget"))
    for study, count in per_study.items():
        print(f"  study {study}: {count}")
    for trial in trials[:show]:
        print(f"  {trial.name}: layers={trial.layers} kind={trial.kind} "
              f"batch_size={trial.batch_size} steps={trial.steps}")
    if len(trials) > show:
        print(f"  ... {len(trials) - show} more")
    if not measure:
        return

    run = trials
    if algorithm != "grid":
        # a model-based search runs num_samples of the grid: estimate with an even spread of them
        run = evenly_spaced(trials, min(len(trials), budget.num_samples or space.search.num_samples))
        print(f"  ({algorithm}: {len(run)} of them run; the cost below is for an even spread of {len(run)})")
    for line in estimate_cost(run, space.resources).lines():
        print(line)


def _same_search(args: argparse.Namespace) -> str:
    """The arguments that name this search again (file, --problem, budget), for the hints printed."""
    import shlex

    return shlex.join([args.search, *(["--problem", args.problem] if args.problem else []), "--budget", args.budget])


def run_search_command(args: argparse.Namespace) -> tuple[int, SearchSummary | None]:
    """Run the search the parsed options ask for: (exit code, its summary, None when none ran).

    Exit codes: 0 done (or ``--dry-run``), 2 bad input (named on stderr), 3 done but MLflow does not
    hold all of it (``--sync-tracking`` fills it in), 4 no trial finished (every one errored or
    diverged; one error is quoted), 130 interrupted.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        space = load_search_space(args.search, problem=args.problem)
        if args.executor:
            space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, executor=args.executor))
        budget = space.budget(args.budget)
    except SearchSpaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    if args.dry_run:
        try:
            trials = space.select_trials(budget, args.study)
        except SearchSpaceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2, None
        dry_run(space, budget, trials, args.show)
        return 0, None

    from fhn_automl.search.runner import NothingToResumeError, run_search

    try:  # under `ray job submit`, records must not stay in Ray's temporary copy of the working dir
        job_copy = check_job_records(args.tracking_uri, args.storage)
    except JobRecordsNotKeptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    options = SearchOptions(space=space, budget=budget, address=args.address, storage=args.storage,
                            tracking_uri=args.tracking_uri, resume=args.resume,
                            data_root=job_data_root(args.data_root, args.storage, job_copy), study=args.study,
                            max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                            strict_tracking=args.strict_tracking, quiet=args.quiet)
    try:
        summary = (sync_tracking if args.sync_tracking else run_search)(options)
    except (UnsatisfiableResourcesError, NothingToResumeError, NoSearchRecordError, EndpointUnreachableError,
            SearchLockedError, StorageNotWritableError, UntrustedTuneStateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    if summary.tracking_problem or summary.models_missing:
        missing = (f"; finished without a model anywhere: {', '.join(summary.models_missing)}"
                   if summary.models_missing else "")
        print(f"error: tracking failed: {summary.tracking_problem or 'models missing'}{missing}. Every trial's "
              f"results are kept in {summary.tune_path}; once MLflow works, fill it in with: python -m "
              f"fhn_automl.search {_same_search(args)} --sync-tracking"
              + (f" --storage {args.storage}" if args.storage else "")
              + (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else ""), file=sys.stderr)
    if summary.interrupted:
        print(f"search interrupted; continue it with: python -m fhn_automl.search {_same_search(args)} --resume",
              file=sys.stderr)
        return 130, summary
    if summary.tracking_problem or summary.models_missing:
        return 3, summary
    if summary.nothing_finished():  # nothing to hand to the post-stage: not a success
        counts = ", ".join(f"{sum(1 for s in summary.statuses.values() if s == k)} {k}" for k in ("error", "diverged"))
        reason = next(iter(sorted(summary.trial_errors.items())), None)
        print(f"error: no trial of {summary.experiment} finished ({counts} of {len(summary.statuses)})"
              + (f"; e.g. {reason[0]}: {reason[1]}" if reason else "")
              + f". Each trial's error is in MLflow (tag fhn_automl.error) and in {summary.tune_path}", file=sys.stderr)
        return 4, summary
    return 0, summary
