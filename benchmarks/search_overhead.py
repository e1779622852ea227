"""How much of a search is training, and how much is Ray / MLflow orchestration.

Runs a search (default: problem_b_s at the smoke budget, the README's main job) on a local Ray and
splits every trial's wall time, read back from MLflow, into:

- optimiser steps (``train_seconds``, measured by the learning layer),
- the rest of ``train()``: loading data, validation, saving models (``train_call - train_seconds
  - report``),
- reporting + checkpointing (time inside ``ray.train.report``, measured on the worker),
- start-up and tear-down (the trial's wall time minus the whole ``train()`` call: Tune trial, Train
  controller, worker group, torch.distributed set-up, final report, MLflow artifacts).

Orchestration = reporting/checkpointing + start-up/tear-down. Driver-side MLflow time and Ray's own
start are reported per search. Usage:

    python benchmarks/search_overhead.py                      # smoke budget, 3 trials
    python benchmarks/search_overhead.py --budget small --max-trials 2
    python benchmarks/search_overhead.py --executor function  # Tune function trials, no Ray Train

Start-up is split further with the wall-clock stamps every trial reports (``ts_*``): Tune trial
process up (``driver``), Train controller + placement group + worker process spawn (``spawn``),
worker init up to the training loop incl. torch.distributed (``worker_init``), imports of torch and
the learning layer in the loop (``imports``), and everything after ``train()`` returned (``teardown``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("search", nargs="?", default="problem_b_s")
    parser.add_argument("--budget", default="smoke", choices=["smoke", "small", "paper"])
    parser.add_argument("--max-trials", type=int, help="fewer trials than the budget's")
    parser.add_argument("--workdir", help="where runs, data and MLflow go (default: a temp dir)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--executor", choices=["train", "function"],
                        help="override the file's resources.executor")
    args = parser.parse_args()

    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search
    from fhn_automl.search.space import load_search_space
    from fhn_automl.search.tracking import iter_child_runs

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fhn_overhead_"))
    space = load_search_space(args.search)
    budget = space.budget(args.budget)
    if args.max_trials:
        budget = dataclasses.replace(budget, max_trials=args.max_trials)
    if args.executor:
        space = dataclasses.replace(space, resources=dataclasses.replace(space.resources,
                                                                         executor=args.executor))
    tracking_uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    summary = run_search(SearchOptions(space=space, budget=budget, tracking_uri=tracking_uri,
                                       storage=str(workdir / "ray"),
                                       data_root=str(workdir / "data"), quiet=False))

    client = MlflowClient(tracking_uri)
    rows = []
    for run in iter_child_runs(tracking_uri, summary.experiment):
        m = _trial_result(client, run.info.run_id, workdir)
        wall = (run.info.end_time - run.info.start_time) / 1000
        call = m.get("train_call_seconds", float("nan"))
        steps = m.get("train_seconds", float("nan"))
        report = m.get("report_seconds_total", float("nan"))
        rows.append({"trial": run.info.run_name, "wall_s": wall, "steps_s": steps,
                     "rest_of_train_s": call - steps - report, "report_checkpoint_s": report,
                     "startup_teardown_s": wall - call,
                     "orchestration_fraction": (report + wall - call) / wall,
                     **_phases(run.info.start_time / 1000, run.info.end_time / 1000, m)})
    figures = {
        "search": args.search, "budget": budget.name, "trials": len(rows),
        "search_wall_s": summary.wall_seconds, **summary.timings,
        "executor": space.resources.executor,
        "mean": {key: statistics.fmean(r[key] for r in rows) for key in rows[0] if key != "trial"},
        "rows": rows, "load": os.getloadavg(),
        "lscpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
    }
    print(f"\n{'trial':60s} {'wall':>7s} {'steps':>7s} {'other':>7s} {'report':>7s} "
          f"{'start/end':>9s} {'orch.':>6s}")
    for r in rows:
        print(f"{r['trial'][:60]:60s} {r['wall_s']:7.1f} {r['steps_s']:7.1f} "
              f"{r['rest_of_train_s']:7.1f} {r['report_checkpoint_s']:7.2f} "
              f"{r['startup_teardown_s']:9.1f} {100 * r['orchestration_fraction']:5.0f}%")
    phases = [k for k in rows[0] if k.startswith("phase_")]
    print("start-up phases (s): " + "  ".join(
        f"{k.removeprefix('phase_')} {statistics.fmean(r[k] for r in rows):.1f}" for k in phases))
    print(json.dumps({k: v for k, v in figures.items() if k not in ("rows", "lscpu")}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    del client


def _trial_result(client, run_id: str, workdir: Path) -> dict:
    """A trial's whole final result: the run's ``trial_result.json`` (timings, stamps), else its
    metrics as runs logged before that artifact existed held them (``final_<key>``)."""
    from fhn_automl.search.tracking import RESULT_ARTIFACT

    try:
        local = client.download_artifacts(run_id, RESULT_ARTIFACT, str(workdir / "results" / run_id))
    except Exception:  # an older run: every number was a final_<key> metric
        metrics = client.get_run(run_id).data.metrics
        return {k.removeprefix("final_"): v for k, v in metrics.items() if k.startswith("final_")}
    return {k: (float(v) if isinstance(v, str) else v) for k, v in json.loads(Path(local).read_text()).items()
            if isinstance(v, (int, float)) or v in ("nan", "inf", "-inf")}


def _phases(run_start: float, run_end: float, m: dict) -> dict:
    """Seconds between the stamps a trial reports (NaN where a stamp is missing)."""
    def ts(key: str) -> float:
        return m.get(f"ts_{key}", float("nan"))

    driver, fit, process = ts("driver_start"), ts("trainer_fit"), ts("worker_process")
    loop, imports, t0, t1 = ts("loop_start"), ts("imports_done"), ts("train_start"), ts("train_end")
    return {"phase_driver": driver - run_start,
            "phase_spawn": (process - fit) if fit == fit else 0.0,
            "phase_worker_init": (loop - max(process, fit)) if fit == fit else 0.0,
            "phase_imports": imports - loop, "phase_before_train": t0 - imports,
            "phase_train_call": t1 - t0, "phase_teardown": run_end - t1}


if __name__ == "__main__":
    main()
