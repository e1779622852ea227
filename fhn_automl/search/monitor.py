"""The search driver's Tune callback: MLflow child runs for the trials and a progress line per event."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fhn_automl.search.space import TrialSpec
from fhn_automl.search.tracking import SearchTracker, TrackingQueue, trial_params
from fhn_automl.search.tracking_tags import MODEL_MISSING_TAG
from fhn_automl.search.trial import trial_figures

#: The monitors of the searches running in this process, by key (see ``SearchMonitor``); weak, so a
#: search that ended without ``detach()`` does not keep its MLflow client alive.
_LIVE_MONITORS: weakref.WeakValueDictionary[str, SearchMonitor] = weakref.WeakValueDictionary()
logger = logging.getLogger(__name__)
#: seconds between two live lines of the same trial (its first result is always shown)
PROGRESS_EVERY_S = 10.0


class SearchMonitor(Callback):
    """Tune callback on the search driver: MLflow child runs and a progress line per event.

    Tune pickles its callbacks with the experiment state and ``Tuner.restore`` takes them back from
    there (it accepts no new ones). So this one pickles to a reference, its ``key`` (the Tune
    experiment's name), and unpickles to the live monitor registered under that key: a restored
    search reattaches to the monitor the resuming driver just made, with its live MLflow client,
    instead of unpickling a dead one. ``detach()`` when the search ends.

    ``background``: the MLflow calls run on a ``TrackingQueue`` thread, so Tune's controller does not
    wait for them; ``drain()`` before the tracker is used directly again.
    """

    def __init__(self, tracker: SearchTracker, *, key: str, total: int, metric: str, quiet: bool,
                 trial_lookup: Callable[[Mapping[str, Any]], TrialSpec], background: bool = False,
                 progress_every_s: float = PROGRESS_EVERY_S) -> None:
        self.key = key
        self.tracker = tracker
        self.queue = TrackingQueue(tracker) if background else None
        self.total = total
        self.metric = metric
        self.quiet = quiet
        self.trial_lookup = trial_lookup
        self.finals: dict[str, dict[str, Any]] = {}
        self.last_checkpoint: dict[str, str] = {}
        self.running: set[str] = set()
        self.statuses: dict[str, str] = dict(tracker.closed)
        #: trial name -> last line of its error text (the search's exit message names one)
        self.errors: dict[str, str] = {}
        self.best: tuple[float, str] | None = None
        self.started = time.perf_counter()
        self.first_result_seconds: list[float] = []
        self.trial_started_at: dict[str, float] = {}
        #: trial name -> the distinct worker sessions that reported (more than one: restarted)
        self.worker_sessions: dict[str, set[float]] = {}
        #: finished trials whose model could not be found (tagged; the Tune folder still has it)
        self.missing_models: list[str] = []
        #: live per-trial lines: at most one per trial every ``progress_every_s`` seconds
        self.progress_every_s = progress_every_s
        self.last_line_at: dict[str, float] = {}
        #: trial name -> (driver time, step) of its previous result, for the step rate
        self.last_step: dict[str, tuple[float, int]] = {}
        _LIVE_MONITORS[key] = self

    def __reduce__(self):  # see the class docstring
        return (live_monitor, (self.key,))

    def drain(self) -> None:
        """Wait for the queued MLflow calls (``background``); a strict tracker's error is raised here."""
        if self.queue is not None:
            self.queue.drain()

    def _track(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.queue is None:
            getattr(self.tracker, method)(*args, **kwargs)
        else:
            self.queue.submit(method, *args, **kwargs)

    def detach(self) -> None:
        """The search is over: unpickling its key no longer finds this monitor."""
        if _LIVE_MONITORS.get(self.key) is self:
            del _LIVE_MONITORS[self.key]

    # -- Tune hooks
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.add(trial.trial_id)
        self.trial_started_at[trial.trial_id] = time.perf_counter()
        if spec.name in self.statuses:
            return
        self._track("start_trial", spec.name, trial_params(spec.as_dict(), trial_figures(spec)))
        self._progress(f"started {spec.name}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        if trial.trial_id in self.trial_started_at:
            self.first_result_seconds.append(time.perf_counter()
                                             - self.trial_started_at.pop(trial.trial_id))
        if result.get("checkpoint_path"):
            self.last_checkpoint[spec.name] = str(result["checkpoint_path"])
        if "worker_session" in result:
            self.worker_sessions.setdefault(spec.name, set()).add(result["worker_session"])
        if result.get("final"):
            self.finals[spec.name] = dict(result)
        else:
            self._track("log_result", spec.name, dict(result))
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if self.best is None or value < self.best[0]:
                self.best = (float(value), spec.name)
        if not result.get("final"):
            self._trial_progress(spec, result)

    def _trial_progress(self, spec: TrialSpec, result: Mapping[str, Any]) -> None:
        """One live line for a trial: step, its current validation error, steps/s and ETA.

        Results arrive at the trial's validation points; a line is printed for the first and then at
        most every ``progress_every_s`` seconds per trial, so many small trials do not flood the log
        (``ray job logs -f`` shows the same lines). The rate is measured here, between two results
        of the trial (validation and reporting included), so the ETA is wall time, not step time.
        """
        step = result.get("step")
        if not isinstance(step, (int, float)):
            return
        now = time.perf_counter()
        previous = self.last_step.get(spec.name)
        self.last_step[spec.name] = (now, int(step))
        rate = None
        if previous is not None and now > previous[0] and step > previous[1]:
            rate = (step - previous[1]) / (now - previous[0])
        elif isinstance(result.get("step_time_ms"), (int, float)) and result["step_time_ms"] > 0:
            rate = 1000.0 / result["step_time_ms"]  # first result: the trainer's own step time
        if self.quiet or now - self.last_line_at.get(spec.name, -math.inf) < self.progress_every_s:
            return
        self.last_line_at[spec.name] = now
        total = int(getattr(spec, "steps", 0) or 0)
        error = result.get("val_mean_err")
        parts = [f"step {int(step)}/{total}" if total else f"step {int(step)}",
                 f"val_mean_err {error:.3e}" if isinstance(error, (int, float)) else "val_mean_err n/a"]
        if rate:
            parts.append(f"{rate:,.0f} steps/s")
            if total > step:
                parts.append(f"ETA {_duration((total - step) / rate)}")
        elapsed = now - self.started
        print(f"[search {elapsed:6.0f}s]   {spec.name}: " + " | ".join(parts), flush=True)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any,
                      **info: Any) -> None:
        # executor: function reports checkpoints to Tune itself (no ``checkpoint_path`` metric)
        path = getattr(checkpoint, "path", None)
        if path:
            self.last_checkpoint[self.trial_lookup(trial.config).name] = str(path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.discard(trial.trial_id)
        if spec.name in self.statuses:
            return
        final = self.finals.get(spec.name)
        status = "diverged" if final and final.get("status") == "diverged" else "finished"
        model_dir = None
        checkpoint = self.last_checkpoint.get(spec.name)
        if checkpoint is None and getattr(trial, "checkpoint", None) is not None:
            # a trial that finished before this driver started (restored by --resume) reported its
            # checkpoint to the previous driver; Tune still knows its latest one
            checkpoint = getattr(trial.checkpoint, "path", None)
        if checkpoint:
            model_dir = local_model_dir(checkpoint)
        restarts = max(0, len(self.worker_sessions.get(spec.name, ())) - 1)
        self._track("finish_trial", spec.name, status, final=dict(final or trial.last_result or {}),
                    model_dir=model_dir if self.queue is None or model_dir is None else self.queue.snapshot(model_dir),
                    restarts=restarts)
        if status == "finished" and model_dir is None:
            # never handed to the post-stage as a model (it skips runs without model/); --resume
            # or --sync-tracking attach it from the Tune folder when it is there
            self.missing_models.append(spec.name)
            self._track("mark_model_missing", spec.name)
            logger.warning("trial %s finished but its model was not found (checkpoint %s); it is tagged "
                           "%s and skipped by the post-stage", spec.name, checkpoint, MODEL_MISSING_TAG)
        if final is None:
            # ASHA stopped it before its end; the model is the last validation's best model.
            self._track("mark_stopped_early", spec.name)
        self.statuses[spec.name] = status
        self._progress(f"{status} {spec.name}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self.trial_lookup(trial.config)
        self.running.discard(trial.trial_id)
        if spec.name in self.statuses:
            return
        message = _trial_error_text(trial)
        self._track("finish_trial", spec.name, "error", final=dict(trial.last_result or {}), error=message)
        self.statuses[spec.name] = "error"
        self.errors[spec.name] = message.strip().splitlines()[-1] if message and message.strip() else "no error text"
        self._progress(f"error {spec.name}: {message.strip().splitlines()[-1] if message else ''}")

    def _progress(self, event: str) -> None:
        if self.quiet:
            return
        done = len(self.statuses)
        running = len(self.running)
        left = max(0, self.total - done - running)
        best = "n/a" if self.best is None else f"{self.best[0]:.3e} ({self.best[1]})"
        elapsed = time.perf_counter() - self.started
        print(f"[search {elapsed:6.0f}s] done {done} / running {running} / left {left} | "
              f"best {self.metric} {best} | {event}", flush=True)


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``: an ETA a person reads at a glance."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def live_monitor(key: str) -> SearchMonitor | None:
    """The monitor of the running search ``key`` (what a pickled ``SearchMonitor`` turns into)."""
    return _LIVE_MONITORS.get(key)


def local_model_dir(checkpoint_path: str) -> Path | None:
    """The ``model/`` folder of a trial's checkpoint, fetched to local disk if storage is remote."""
    path = Path(checkpoint_path)
    if path.exists():
        model = path / "model"
        return model if model.is_dir() else _model_files_dir(path)
    from ray.train import Checkpoint

    local = Path(tempfile.mkdtemp(prefix="fhn_automl_model_"))
    Checkpoint(checkpoint_path).to_directory(str(local))
    model = local / "model"
    return model if model.is_dir() else _model_files_dir(local)


def _model_files_dir(folder: Path) -> Path | None:
    """A validation checkpoint of the learning layer keeps the best model somewhere inside."""
    for spec_file in sorted(folder.rglob("spec.json")):
        if (spec_file.parent / "weights.pt").exists():
            return spec_file.parent
    return None


def _trial_error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None) or ""
    try:
        if path and Path(path).exists():
            return Path(path).read_text()[-4000:]
    except OSError:
        pass
    return str(getattr(trial, "error_msg", "") or "trial failed")
