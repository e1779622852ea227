"""The search driver's MLflow calls on a background thread (``tracking.TrackingQueue``): in order, none
lost, a model whose checkpoint Tune deletes meanwhile still logged, a strict tracker's error raised.
No Ray needed here."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from fhn_automl.search.tracking_tags import MODEL_ARTIFACT_PATH, STATUS_TAG


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from fhn_automl.learning.model_io import save_model
    from fhn_automl.learning.untrained import untrained_model
    from fhn_automl.physics.problems import get_problem

    model = untrained_model(get_problem("problem_b_s"), "silu-8", seed=0)
    return save_model(model, tmp_path_factory.mktemp("m") / "model")


class _Recorder:
    """A tracker stand-in that records which thread ran each call, in what order."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, tuple, str]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()

    def slow(self, *args) -> None:
        self.gate.wait(timeout=10)  # holds the queue until the test lets it go
        self.calls.append(("slow", args, threading.current_thread().name))

    def note(self, *args) -> None:
        if args and args[0] == self.fail_on:
            raise RuntimeError(f"store refused {args[0]}")
        self.calls.append(("note", args, threading.current_thread().name))


def test_calls_run_in_submission_order_off_the_callers_thread_and_drain_waits_for_all():
    from fhn_automl.search.tracking import TrackingQueue

    recorder = _Recorder()
    queue = TrackingQueue(recorder)
    queue.submit("slow", 0)
    for number in range(1, 20):
        queue.submit("note", number)
    assert recorder.calls == []  # the caller did not wait for the slow call
    recorder.gate.set()
    queue.drain()
    assert [args[0] for _, args, _ in recorder.calls] == list(range(20))
    assert {thread for _, _, thread in recorder.calls} != {threading.current_thread().name}
    assert queue.drain_seconds > 0
    queue.submit("note", 20)  # usable again after a drain
    queue.drain()
    assert recorder.calls[-1][1] == (20,)


def test_an_error_of_a_strict_tracker_is_raised_by_drain_and_later_calls_still_run():
    from fhn_automl.search.tracking import TrackingQueue

    recorder = _Recorder(fail_on="bad")
    queue = TrackingQueue(recorder)
    queue.submit("slow")  # nothing has failed yet when the next two are submitted
    queue.submit("note", "bad")
    queue.submit("note", "after")
    recorder.gate.set()
    with pytest.raises(RuntimeError, match="store refused bad"):
        queue.drain()
    assert [args for _, args, _ in recorder.calls] == [(), ("after",)]
    queue.drain()  # raised once, not again
    queue.submit("note", "bad")
    recorder.calls.clear()
    queue._pool.shutdown(wait=True)  # the failed call has run: the next submit raises its error
    with pytest.raises(RuntimeError, match="store refused bad"):
        queue.submit("note", "never")
    queue.drain()
    assert recorder.calls == []


def test_a_model_whose_checkpoint_tune_deletes_before_the_queue_logs_it_still_reaches_mlflow(
        make_search_file, tracking_uri, tmp_path, model_dir):
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.monitor import SearchMonitor
    from fhn_automl.search.space import load_search_space
    from fhn_automl.search.tracking import SearchTracker
    from fhn_automl.search.trial import trial_from_config

    space = load_search_space(make_search_file(tmp_path, ["silu-8", "tanh-8"], name="queued"))
    specs = space.trials("paper")
    tracker = SearchTracker(tracking_uri, "queued-paper")
    tracker.start_search(search_name="queued", budget="paper", params={}, tags={}, search_file=None)
    monitor = SearchMonitor(tracker, key="queued", total=len(specs), metric="val_mean_err", quiet=True,
                            trial_lookup=trial_from_config, background=True)
    checkpoints = []
    for number, spec in enumerate(specs):
        checkpoint = tmp_path / f"checkpoint_{number:06d}"
        shutil.copytree(model_dir, checkpoint / "model")
        checkpoints.append(checkpoint)
        trial = SimpleNamespace(config={"trial": spec.as_dict()}, trial_id=spec.name, last_result={}, checkpoint=None)
        monitor.on_trial_start(0, [], trial)
        monitor.on_trial_result(0, [], trial, {"step": 100, "val_mean_err": 0.2})
        monitor.on_trial_result(0, [], trial, {"step": 200, "val_mean_err": 0.1, "status": "finished", "final": 1,
                                               "checkpoint_path": str(checkpoint)})
        monitor.on_trial_complete(0, [], trial)
        shutil.rmtree(checkpoint)  # Tune keeps two checkpoints per trial: older ones go
    monitor.drain()
    monitor.detach()
    assert monitor.statuses == {spec.name: "finished" for spec in specs}
    assert not any(path.exists() for path in checkpoints)
    client = MlflowClient(tracking_uri)
    for spec in specs:
        run = client.get_run(tracker.child_runs[spec.name])
        assert run.data.tags[STATUS_TAG] == "finished"
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")] == [100]
        assert run.data.metrics["final_val_mean_err"] == pytest.approx(0.1)
        assert {a.path for a in client.list_artifacts(run.info.run_id, MODEL_ARTIFACT_PATH)} >= {
            "model/spec.json", "model/weights.pt"}
    assert not monitor.queue._scratch  # the private copies went with the drain
