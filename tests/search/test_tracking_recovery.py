"""Nothing a search trained is lost to MLflow: outages are replayed from the Tune folder, a finished
trial without its model is tagged and repaired (issue 8, items 2 and 3). No Ray needed here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from fhn_automl.search.tracking_tags import MODEL_ARTIFACT_PATH, MODEL_MISSING_TAG, STATUS_TAG, STOPPED_EARLY_TAG


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from fhn_automl.learning.model_io import save_model
    from fhn_automl.learning.untrained import untrained_model
    from fhn_automl.physics.problems import get_problem

    model = untrained_model(get_problem("problem_b_s"), "silu-8", seed=0)
    return save_model(model, tmp_path_factory.mktemp("m") / "model")


def _spec(make_search_file, folder: Path, sequences=("silu-8",)):
    from fhn_automl.search.space import load_search_space

    space = load_search_space(make_search_file(folder, list(sequences), name="recover"))
    return space, space.trials("paper")


def _tracker(uri: str):
    from fhn_automl.search.tracking import SearchTracker

    tracker = SearchTracker(uri, "recover-paper")
    tracker.start_search(search_name="recover", budget="paper", params={}, tags={}, search_file=None)
    return tracker


def test_monitor_tags_a_finished_trial_whose_model_it_cannot_find(make_search_file, tracking_uri, tmp_path,
                                                                   model_dir):
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.monitor import SearchMonitor
    from fhn_automl.search.trial import trial_from_config

    _, (lost, restored) = _spec(make_search_file, tmp_path, ("silu-8", "tanh-8"))
    tracker = _tracker(tracking_uri)
    monitor = SearchMonitor(tracker, key="recover", total=2, metric="val_mean_err", quiet=True,
                            trial_lookup=trial_from_config)
    checkpoint = tmp_path / "checkpoint_000003"
    shutil.copytree(model_dir, checkpoint / "model")
    # the final result arrives without a checkpoint: the first trial has none anywhere, the second
    # was restored by --resume and Tune still knows its checkpoint
    for spec, tune_checkpoint in ((lost, None), (restored, SimpleNamespace(path=str(checkpoint)))):
        trial = SimpleNamespace(config={"trial": spec.as_dict()}, trial_id=spec.name, last_result={},
                                checkpoint=tune_checkpoint)
        monitor.on_trial_start(0, [], trial)
        monitor.on_trial_result(0, [], trial, {"step": 600, "val_mean_err": 0.1, "status": "finished", "final": 1})
        monitor.on_trial_complete(0, [], trial)
    monitor.detach()
    assert monitor.missing_models == [lost.name]
    client = MlflowClient(tracking_uri)
    runs = {name: client.get_run(run_id) for name, run_id in tracker.child_runs.items()}
    assert runs[lost.name].data.tags[MODEL_MISSING_TAG] == "true"
    assert not client.list_artifacts(runs[lost.name].info.run_id, MODEL_ARTIFACT_PATH)
    assert MODEL_MISSING_TAG not in runs[restored.name].data.tags
    assert {a.path for a in client.list_artifacts(runs[restored.name].info.run_id, MODEL_ARTIFACT_PATH)} >= {
        "model/spec.json", "model/weights.pt"}


def test_a_restored_final_checkpoint_is_reported_again_with_its_model(tmp_path, model_dir):
    from fhn_automl.search.worker import FINAL_FILE, train_and_report

    final = tmp_path / "final"
    shutil.copytree(model_dir, final / "model")
    (final / FINAL_FILE).write_text(json.dumps({"status": "finished", "step": 600, "val_mean_err": 0.1}))

    class Restored:  # what Ray hands a trial restored from its last checkpoint
        def to_directory(self, path: str) -> None:
            shutil.copytree(final, path)

    reported = []

    def report(metrics, checkpoint=None):
        reported.append((metrics, checkpoint, checkpoint is not None and (Path(checkpoint) / "model" / "spec.json").is_file()))

    train_and_report({"train_config": {}, "static_metrics": {}, "train_fn": "nowhere:to_be_called"}, rank=0,
                     checkpoint=Restored(), report_fn=report,
                     checkpoint_cls=SimpleNamespace(from_directory=lambda path: path), loop_started=0.0)
    ((metrics, checkpoint, had_model),) = reported
    assert metrics["final"] == 1 and metrics["status"] == "finished" and had_model


def test_a_restored_finished_pack_is_reported_again_with_its_members_models(tmp_path, model_dir, make_search_file,
                                                                           monkeypatch):
    from ray import tune

    from fhn_automl.search.packed_trial import MEMBERS_FOLDER, packed_trial
    from fhn_automl.search.worker import FINAL_FILE

    _, trials = _spec(make_search_file, tmp_path, sequences=("silu-8", "tanh-8"))
    final = tmp_path / "final"
    members = {}
    for spec in trials:
        shutil.copytree(model_dir, final / MEMBERS_FOLDER / spec.name / "model")
        members[spec.name] = {"status": "finished", "step": 600, "val_mean_err": 0.1, "final": 1}
    (final / FINAL_FILE).write_text(json.dumps({"members": members, "final": 1, "step": 600}))

    class Restored:  # what Tune hands a pack trial restored from its last checkpoint
        def to_directory(self, path: str) -> None:
            shutil.copytree(final, path)

    reported = []

    def report(metrics, checkpoint=None):
        models = [checkpoint is not None and (Path(checkpoint) / MEMBERS_FOLDER / name / "model" / "spec.json").is_file()
                  for name in metrics["members"]]
        reported.append((metrics, models))

    monkeypatch.setattr(tune, "get_checkpoint", lambda: Restored())
    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune.Checkpoint, "from_directory", staticmethod(lambda path: path))
    plan = {"data_dirs": {}, "device": "cpu", "threads": 1, "data_root": str(tmp_path / "data"),
            "train_fn": "nowhere:to_be_called"}
    packed_trial({"pack": {"trials": [spec.as_dict() for spec in trials]}, "plan": plan})
    ((metrics, models),) = reported
    assert metrics["final"] == 1 and set(metrics["members"]) == {spec.name for spec in trials}
    assert models == [True, True]


def _tune_folder(root: Path, trials, model_dir: Path) -> None:
    """A Tune experiment folder as a finished search leaves it (executor: function)."""
    for position, spec in enumerate(trials):
        folder = root / spec.name
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps({"trial": spec.as_dict(), "plan": {}}))
        lines = [{"step": step, "val_mean_err": 0.3 / step, "loss": 1.0 / step, "training_iteration": i}
                 for i, step in enumerate((200, 400, 600), start=1)]
        lines.append({"step": 600, "val_mean_err": 0.0005, "status": "finished", "final": 1})
        (folder / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
        shutil.copytree(model_dir, folder / "checkpoint_000003" / "model")


def test_sync_tracking_fills_an_empty_store_from_the_tune_folder(make_search_file, tmp_path, model_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.replay import sync_tracking
    from fhn_automl.search.tracking import iter_child_runs

    monkeypatch.chdir(tmp_path)
    space, trials = _spec(make_search_file, tmp_path, ("silu-8", "tanh-8"))
    _tune_folder(tmp_path / "ray" / "recover-paper", trials, model_dir)
    uri = f"sqlite:///{tmp_path / 'replaced' / 'mlflow.db'}"  # a new store: the old one was lost
    options = SearchOptions(space=space, budget=space.budget("paper"), storage=str(tmp_path / "ray"),
                            tracking_uri=uri, quiet=True)
    summary = sync_tracking(options)
    assert summary.tracking_problem is None and not summary.models_missing
    assert summary.statuses == {t.name: "finished" for t in trials}
    client = MlflowClient(uri)
    for _ in range(2):  # idempotent: a second sync adds nothing
        children = {r.data.tags["fhn_automl.trial_name"]: r for r in iter_child_runs(uri, "recover-paper")}
        assert sorted(children) == sorted(t.name for t in trials)
        for run in children.values():
            assert run.data.tags[STATUS_TAG] == "finished"
            assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")] == [200, 400, 600]
            assert run.data.metrics["final_val_mean_err"] == 0.0005
            assert {a.path for a in client.list_artifacts(run.info.run_id, MODEL_ARTIFACT_PATH)} >= {
                "model/spec.json", "model/weights.pt"}
        sync_tracking(options)
    parents = client.search_runs([client.get_experiment_by_name("recover-paper").experiment_id],
                                 "tags.`fhn_automl.role` = 'search'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def _unfinished_trial(root: Path, spec, model_dir: Path, *, stopped: bool) -> None:
    """A trial folder without a final result: ASHA stopped it at its first rung (Tune marks that result
    ``done``, as ``JsonLoggerCallback`` writes it), or it was still running when the driver stopped."""
    folder = root / spec.name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"trial": spec.as_dict(), "plan": {}}))
    line = {"step": 200, "val_mean_err": 0.9, "loss": 2.0, "training_iteration": 1, "done": stopped}
    (folder / "result.json").write_text(json.dumps(line) + "\n")
    shutil.copytree(model_dir, folder / "checkpoint_000000" / "best_model")  # a validation checkpoint


def test_sync_tracking_closes_trials_asha_stopped_and_leaves_only_running_ones_open(make_search_file, tmp_path,
                                                                                    model_dir, monkeypatch):
    """After an outage a trial that ASHA stopped gets what a live search gives it (finished, tagged
    stopped_early, its best model) and does not make the search count as interrupted; a trial that was
    still running stays open and does."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.replay import sync_tracking
    from fhn_automl.search.tracking import iter_child_runs

    monkeypatch.chdir(tmp_path)
    space, (kept, stopped, running) = _spec(make_search_file, tmp_path, ("silu-8", "tanh-8", "silu-4"))
    tune = tmp_path / "ray" / "recover-paper"
    _tune_folder(tune, [kept], model_dir)
    _unfinished_trial(tune, stopped, model_dir, stopped=True)
    uri = f"sqlite:///{tmp_path / 'replaced' / 'mlflow.db'}"
    options = SearchOptions(space=space, budget=space.budget("paper"), storage=str(tmp_path / "ray"),
                            tracking_uri=uri, quiet=True)
    summary = sync_tracking(options)
    assert not summary.interrupted and summary.statuses == {kept.name: "finished", stopped.name: "finished"}
    client = MlflowClient(uri)
    children = {r.data.tags["fhn_automl.trial_name"]: r for r in iter_child_runs(uri, "recover-paper")}
    run = children[stopped.name]
    assert run.info.status == "FINISHED" and run.data.tags[STATUS_TAG] == "finished"
    assert run.data.tags[STOPPED_EARLY_TAG] == "true" and STOPPED_EARLY_TAG not in children[kept.name].data.tags
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")] == [200]
    assert run.data.metrics["final_val_mean_err"] == 0.9  # its last result, as the live monitor logs it
    assert {a.path for a in client.list_artifacts(run.info.run_id, MODEL_ARTIFACT_PATH)} >= {
        "model/spec.json", "model/weights.pt"}

    _unfinished_trial(tune, running, model_dir, stopped=False)  # now one was cut off mid-run
    summary = sync_tracking(options)
    assert summary.interrupted and running.name not in summary.statuses
    children = {r.data.tags["fhn_automl.trial_name"]: r for r in iter_child_runs(uri, "recover-paper")}
    assert children[running.name].info.status == "RUNNING" and STATUS_TAG not in children[running.name].data.tags
    assert children[stopped.name].data.tags[STOPPED_EARLY_TAG] == "true"


@pytest.mark.slow
def test_store_deleted_mid_search_is_reported_and_replayed(local_ray, tmp_path, data_root, make_search_file):
    """The SQLite store vanishes right after the parent run is made: the search says so (exit 3) and
    ``--sync-tracking`` puts the trial, its curves and its model into the store made in its place.
    Slow (two subprocesses on the session's Ray, ~1-2 min on two busy cores): the real outage path."""
    import os
    import sqlite3
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    from fhn_automl.search.tracking import iter_child_runs

    path = make_search_file(tmp_path, ["silu-8"], name="outage",
                            resources="{workers: 1, cpus_per_worker: 1, executor: function}")
    db = tmp_path / "mlruns" / "mlflow.db"
    command = [sys.executable, "-m", "fhn_automl.search", str(path), "--budget", "paper",
               "--address", local_ray.get_runtime_context().gcs_address, "--storage", str(tmp_path / "ray"),
               "--tracking-uri", f"sqlite:///{db}", "--data-root", str(data_root), "--no-post", "--quiet"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    deleted = False
    while time.monotonic() < deadline and process.poll() is None and not deleted:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:  # read-only: creates nothing
                deleted = connection.execute("select count(*) from runs").fetchone()[0] > 0
        except sqlite3.Error:
            pass
        if deleted:
            os.remove(db)  # the parent run exists: the store is lost from here on
        time.sleep(0.1)
    output = process.communicate(timeout=300)[0]
    assert deleted, output[-3000:]
    assert process.returncode == 3, output[-3000:]
    assert "tracking failed" in output and "--sync-tracking" in output

    synced = subprocess.run([*command, "--sync-tracking"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    children = list(iter_child_runs(uri, "outage-paper"))
    assert len(children) == 1
    for run in children:
        assert run.data.tags[STATUS_TAG] == "finished"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")] == [200, 400, 600]
        assert "final_val_mean_err" in run.data.metrics
        assert {a.path for a in client.list_artifacts(run.info.run_id, MODEL_ARTIFACT_PATH)} >= {
            "model/spec.json", "model/weights.pt", "model/model.ts"}


def test_sync_tracking_refills_points_lost_below_the_last_logged_step(make_search_file, tmp_path, model_dir,
                                                                      monkeypatch):
    """Issue 21 item 6: a short outage lost step 400 of a trial that then logged 600 and closed; the
    replay skipped closed trials and steps at or below the last logged, so the gap stayed for good."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.replay import sync_tracking, write_search_state

    monkeypatch.chdir(tmp_path)
    space, trials = _spec(make_search_file, tmp_path, ("silu-8",))
    tune_path = tmp_path / "ray" / "recover-paper"
    _tune_folder(tune_path, trials, model_dir)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = _tracker(uri)  # the live search: step 400's call failed, 600 and the end went through
    [spec] = trials
    run_id = tracker.start_trial(spec.name, {"layers": "silu-8"})
    for step in (200, 600):
        tracker.log_result(spec.name, {"step": step, "val_mean_err": 0.3 / step, "loss": 1.0 / step})
    tracker.finish_trial(spec.name, "finished", final={"step": 600, "val_mean_err": 0.0005})
    shutil.rmtree(tune_path / spec.name / "checkpoint_000003")  # no model to attach: only the curve matters here
    write_search_state(str(tune_path), {"parent_run_id": tracker.parent_run_id})
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run_id, "val_mean_err")] == [200, 600]
    sync_tracking(SearchOptions(space=space, budget=space.budget("paper"), storage=str(tmp_path / "ray"),
                                tracking_uri=uri, quiet=True))
    for key, values in (("val_mean_err", [0.3 / s for s in (200, 400, 600)]), ("loss", [1.0 / s for s in (200, 400, 600)])):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == list(zip((200, 400, 600), values))


def test_a_trial_restored_from_a_checkpoint_reports_its_last_validation_again_first(tmp_path, monkeypatch):
    """A driver stopped between Train taking a report and Tune / MLflow recording it lost that point;
    the restored trial reports the checkpoint's record again (MLflow keeps a step once), then trains on."""
    from fhn_automl.search import worker
    from fhn_automl.search.worker import LAST_REPORT_FILE, train_and_report

    def first_run(config, report, checkpoint=None):  # reports step 200 with its checkpoint, then is killed
        folder = tmp_path / "ckpt"
        folder.mkdir()
        report({"step": 200, "val_mean_err": 0.5}, str(folder))
        return {"step": 200, "status": "finished"}

    def resumed_run(config, report, checkpoint=None):
        assert checkpoint is not None
        report({"step": 400, "val_mean_err": 0.25}, None)
        return {"step": 400, "status": "finished"}

    loop = {"train_config": {}, "static_metrics": {"depth": 2}, "train_fn": "x:y"}
    sink = SimpleNamespace(from_directory=lambda path: path)
    monkeypatch.setattr(worker, "_load_function", lambda path: first_run)
    train_and_report(loop, rank=0, checkpoint=None, report_fn=lambda m, checkpoint=None: None, checkpoint_cls=sink,
                     loop_started=0.0)
    assert json.loads((tmp_path / "ckpt" / LAST_REPORT_FILE).read_text())["step"] == 200

    class Restored:
        def to_directory(self, path: str) -> None:
            shutil.copytree(tmp_path / "ckpt", path)

    reported = []
    monkeypatch.setattr(worker, "_load_function", lambda path: resumed_run)
    train_and_report(loop, rank=0, checkpoint=Restored(), report_fn=lambda m, checkpoint=None: reported.append(m),
                     checkpoint_cls=sink, loop_started=0.0)
    assert [(m["step"], m.get("repeated"), m.get("final")) for m in reported] == [(200, 1, None), (400, None, None),
                                                                                 (400, None, 1)]
    assert reported[0]["val_mean_err"] == 0.5 and reported[0]["resumed"] == 1 and reported[0]["depth"] == 2


def test_resume_closes_a_trial_run_left_running_after_its_status_tag(tracking_uri):
    """A driver stopped between ``finish_trial``'s status tag and closing the run: --resume closes it."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.tracking import SearchTracker

    tracker = _tracker(tracking_uri)
    run_id = tracker.start_trial("t0000", {})
    client = MlflowClient(tracking_uri)
    client.set_tag(run_id, STATUS_TAG, "finished")  # the tag, then the stop: no set_terminated
    assert client.get_run(run_id).info.status == "RUNNING"

    resumed = SearchTracker(tracking_uri, "recover-paper")
    resumed.start_search(search_name="recover", budget="paper", params={}, tags={}, search_file=None,
                         resume_parent_run_id=tracker.parent_run_id)
    assert resumed.closed == {"t0000": "finished"}
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
