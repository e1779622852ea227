"""What runs on a trial's worker: the learning layer's ``train(config, report)`` with Ray's reports.

Ray Train workers (``executor: train``) enter through ``train_worker_loop``; a plain Tune function trial
(``executor: function``) calls ``train_and_report`` itself. Both report the same metrics and the same
checkpoints, and both end with a *final* checkpoint (``FINAL_FILE`` + the best model) that a restored
trial reports again instead of training. Nothing here imports Ray at module level.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Marks the last checkpoint of a trial: it holds the final metrics and the best model, not a
#: training state, so a trial restored from it reports it again instead of training.
FINAL_FILE = "fhn_automl_final.json"
#: The validation record reported with a checkpoint, kept in it: a trial restored from that checkpoint
#: reports it again first, since the driver that was stopped may have lost it (killed between Train
#: taking the report and Tune or MLflow recording it); MLflow keeps a step once (``log_result``).
LAST_REPORT_FILE = "fhn_automl_last_report.json"


def restore_checkpoint(checkpoint: Any, scratch: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """Copy a restored Ray checkpoint (or ``None``) to ``scratch/resume``; returns that folder and,
    when it is the trial's final checkpoint, the final record it holds (else ``None``).

    A trial restored from its final checkpoint must report that record again *with* the checkpoint:
    a driver that restored the trial (``--resume`` after the previous driver was killed as the trial
    ended) has not seen it, and it holds the model(s).
    """
    if checkpoint is None:
        return None, None
    resume_dir = scratch / "resume"
    checkpoint.to_directory(str(resume_dir))
    final_file = resume_dir / FINAL_FILE
    return resume_dir, (json.loads(final_file.read_text()) if final_file.exists() else None)


def _load_function(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def train_worker_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: ``train(config, report)`` with Ray's report and checkpoints.

    Restored from a checkpoint, it hands that folder to ``train`` (which resumes from it), unless
    the checkpoint is the trial's final one: then the trial is already done and only says so again.
    """
    loop_started = time.time()
    import ray.train

    context = ray.train.get_context()
    train_and_report(loop_config, rank=context.get_world_rank(),
                     checkpoint=ray.train.get_checkpoint(), report_fn=ray.train.report,
                     checkpoint_cls=ray.train.Checkpoint, loop_started=loop_started)


def _process_created() -> float:
    """When this worker process started (wall clock), so start-up can be split into spawn and init."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil comes with ray[default]; without it the figure is just missing
        return float("nan")


def train_and_report(loop_config: dict[str, Any], *, rank: int, checkpoint: Any,
                     report_fn: Callable[..., None], checkpoint_cls: Any,
                     loop_started: float) -> None:
    """Train one trial on this process and report each validation and the final result.

    ``report_fn`` / ``checkpoint_cls`` are Ray Train's or Tune's (the two executors); only rank 0
    attaches checkpoints, every rank reports.
    """
    # worker_session tells the driver when a trial's workers were restarted (lost node, --resume)
    timing = {**loop_config.get("timing", {}), "ts_worker_process": _process_created(),
              "ts_loop_start": loop_started}
    static = {**loop_config["static_metrics"], "worker_session": time.time()}
    config = dict(loop_config["train_config"])
    ensure_data_on_this_node(config)

    scratch = Path(tempfile.mkdtemp(prefix="fhn_automl_trial_"))
    config["out_dir"] = str(scratch / "out")
    resume_dir, final = restore_checkpoint(checkpoint, scratch)
    if final is not None:
        again = checkpoint_cls.from_directory(str(resume_dir)) if rank == 0 else None
        report_fn({**final, **static, "final": 1}, checkpoint=again)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    if resume_dir is not None and (resume_dir / LAST_REPORT_FILE).is_file():
        last = json.loads((resume_dir / LAST_REPORT_FILE).read_text())
        report_fn({**last, **static, "resumed": 1, "repeated": 1}, checkpoint=None)
    report_counter = {"n": 0, "seconds": 0.0}

    def report(metrics: Mapping[str, Any], checkpoint_dir: str | os.PathLike | None) -> None:
        started = time.perf_counter()
        if report_counter["n"] == 0:
            timing["ts_first_report"] = time.time()
        payload = {**scalar_metrics(metrics), **static, "resumed": int(resume_dir is not None),
                   "report_seconds_total": report_counter["seconds"]}
        ray_checkpoint = None
        if checkpoint_dir is not None and rank == 0:
            (Path(checkpoint_dir) / LAST_REPORT_FILE).write_text(json.dumps(payload, default=str))
            ray_checkpoint = checkpoint_cls.from_directory(str(checkpoint_dir))
        report_fn(payload, checkpoint=ray_checkpoint)
        report_counter["n"] += 1
        report_counter["seconds"] += time.perf_counter() - started

    train = _load_function(loop_config["train_fn"])  # imports torch and the learning layer
    timing["ts_imports_done"] = time.time()
    started = time.perf_counter()
    timing["ts_train_start"] = time.time()
    final = train(config, report, checkpoint=str(resume_dir) if resume_dir else None)
    train_seconds = time.perf_counter() - started
    timing["ts_train_end"] = time.time()

    # The final report carries the best model; every rank must report (it is a barrier).
    final_metrics = {**scalar_metrics(final), "train_call_seconds": train_seconds,
                     "report_seconds_total": report_counter["seconds"],
                     "reports": report_counter["n"], **timing}
    final_checkpoint = None
    if rank == 0:
        final_dir = scratch / "final"
        final_dir.mkdir()
        model_dir = final.get("model_dir")
        if model_dir and Path(model_dir).is_dir():
            shutil.copytree(model_dir, final_dir / "model")
        (final_dir / FINAL_FILE).write_text(json.dumps(final_metrics, default=str))
        final_checkpoint = checkpoint_cls.from_directory(str(final_dir))
    report_fn({**final_metrics, **static, "final": 1}, checkpoint=final_checkpoint)
    shutil.rmtree(scratch, ignore_errors=True)


def ensure_data_on_this_node(config: dict[str, Any]) -> None:
    """On a cluster without a shared file system the driver's dataset folder is not on this node:
    let the trainer build it locally (the folder name is deterministic and so is the data)."""
    data_dir = config.get("data_dir")
    if data_dir and not Path(data_dir).exists():
        config["data_dir"] = None
        config["data_root"] = str(Path(tempfile.gettempdir()) / "fhn_automl_data")


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Numbers, booleans and short strings (``status``); paths and arrays stay on the worker."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, str) and key in ("status",):
            out[key] = value
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            out[key] = value.item()
    return out
