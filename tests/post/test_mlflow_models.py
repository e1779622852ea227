"""MLflow-native trial models, dataset inputs, the experiment kind, and a registry that never gets worse.

The tracker's part runs the search layer's ``SearchTracker`` without Ray on the tiny experiment's
trained models; the registry's part merges hand-made fronts (figures as tags) over real runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fhn_automl.post.registry import RegistrationRequest, front_versions, register_front
from fhn_automl.search.tracking import SearchTracker
from fhn_automl.search.tracking_tags import EXPERIMENT_KIND_TAG, MLFLOW_MODEL_FILES, TRAINING_EXPERIMENT_KIND

from .conftest import ARCHITECTURES, _params, log_trial


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One SQLite store for this module (a new store costs seconds of schema migrations)."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow_models")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return {"uri": uri, "root": root, "client": MlflowClient(tracking_uri=uri)}


def _validation_inputs(dataset_dir: str, n: int = 200) -> np.ndarray:
    from fhn_automl.physics.datasets import read_split

    columns = read_split(dataset_dir, "val")
    rows = np.random.default_rng(0).choice(len(columns["t"]), n, replace=False)
    return np.stack([columns[name][rows] for name in ("t", "u0", "w0")], axis=1).astype(np.float32)


def _pyfunc_matches_torchscript(model_uri: str, model_ts: Path, x: np.ndarray) -> None:
    """pyfunc on DataFrames (columns shuffled; float32 and pandas' default float64) == the TorchScript
    file on the raw float32 array."""
    import mlflow.pyfunc
    import pandas as pd

    loaded = mlflow.pyfunc.load_model(model_uri)
    expected = torch.jit.load(str(model_ts))(torch.from_numpy(x)).detach().numpy()
    for dtype in (np.float32, np.float64):
        # the signature puts the columns back in the spec's order
        frame = pd.DataFrame(x.astype(dtype), columns=["t", "u0", "w0"])[["w0", "t", "u0"]]
        answer = loaded.predict(frame)
        assert list(answer.columns) == ["u", "w"]  # named as the signature says, not 0, 1
        predicted = np.asarray(answer)
        assert predicted.shape == (len(x), 2)
        np.testing.assert_array_equal(predicted, expected)


def test_tracker_logs_an_mlflow_model_the_datasets_and_the_training_view(tiny_experiment, store, tmp_path,
                                                                         monkeypatch):
    from mlflow.entities import LoggedModelStatus
    from mlflow.tracking import MlflowClient

    from fhn_automl.physics.datasets import read_manifest

    uri = store["uri"]
    dataset_dir = tiny_experiment["dataset_dir"]
    tracker = SearchTracker(uri, "tracked-smoke", strict=True)
    from fhn_automl.search.tracking import environment_tags

    environment = environment_tags("cpu")
    parent = tracker.start_search(search_name="tracked", budget="smoke", params={"n_trials": 1}, tags=environment,
                                  search_file=None, datasets={"problem_b_s": dataset_dir})
    run_id = tracker.start_trial("trial_0", _params(ARCHITECTURES[0]))
    model_dir = Path(tiny_experiment["root"]) / "train0" / "model"
    # what a trial reports (issue 17 item 4: ~40 numbers, of which the run page shows a few)
    internals = {"best_val_mean_err": 0.01, "best_step": 200, "ts_worker_process": 1.7e9, "report_seconds_total": 0.2,
                 "n_neurons": 8, "train_call_seconds": 3.0}
    tracker.log_result("trial_0", {"step": 200, "val_mean_err": 0.02, "val_max_err": 0.3, "loss": 1e-3,
                                   "loss_data": 1e-3, "lr": 1e-2, "step_time_ms": 0.5, **internals})
    final = {"step": 300, "val_mean_err": 0.018, "val_max_err": 0.25, "final_full_val_mean_err": 0.017,
             "final_full_val_max_err": 0.4, "best_subset_val_mean_err": 0.01, "best_subset_val_max_err": 0.2,
             "train_seconds": 2.5, "status": "finished", **internals}
    tracker.finish_trial("trial_0", "finished", final=final, model_dir=model_dir)

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked-smoke")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND == "custom_model_development"
    run = client.get_run(run_id)
    # the metric vocabulary: curves and the end-of-trial figures, the rest in one JSON artifact
    assert set(run.data.metrics) == {"val_mean_err", "val_max_err", "loss", "loss_data", "lr", "step_time_ms",
                                     "final_full_val_mean_err", "final_full_val_max_err", "final_val_mean_err",
                                     "final_val_max_err", "best_subset_val_mean_err", "best_subset_val_max_err",
                                     "train_seconds"}
    assert run.data.metrics["final_full_val_mean_err"] == 0.017 and run.data.metrics["final_val_mean_err"] == 0.018
    result = json.loads(Path(client.download_artifacts(run_id, "trial_result.json", str(tmp_path / "result"))).read_text())
    assert result["ts_worker_process"] == 1.7e9 and result["best_step"] == 200 and result["status"] == "finished"
    # the child carries the parent's source, user and commit tags
    parent_tags = client.get_run(parent).data.tags
    for key in ("mlflow.user", "mlflow.source.name", "fhn_automl.host"):
        assert run.data.tags[key] == parent_tags[key] == environment[key]
    if "mlflow.source.git.commit" in environment:
        assert run.data.tags["mlflow.source.git.commit"] == environment["mlflow.source.git.commit"]
    # the model: linked to the run (the UI's Models column), READY, with fhn_automl's files inside
    [output] = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.status == LoggedModelStatus.READY and logged.source_run_id == run_id and logged.name == "trial_0"
    assert logged.params["layers"] == ARCHITECTURES[0]
    local = Path(client.download_artifacts(run_id, "model", str(tmp_path / "run_files"))).parent
    mlflow_model = Path(logged.artifact_location.removeprefix("file://"))
    mlmodel = (mlflow_model / "MLmodel").read_text()
    assert "python_function" in mlmodel and "mlflow_surrogate_model.py" in mlmodel
    assert '"name": "t"' in mlmodel and '"name": "u"' in mlmodel and "fhn_automl_spec" in mlmodel
    example = json.loads((mlflow_model / "input_example.json").read_text())
    assert example["columns"] == ["t", "u0", "w0"] and len(example["data"]) == 3
    for name in ("spec.json", "weights.pt", "model.ts"):  # the run's model/ folder is kept, and copied inside
        assert (mlflow_model / MLFLOW_MODEL_FILES / name).read_bytes() == (local / "model" / name).read_bytes()
    # the files' digests recorded on the run when logged: what pull / post / bench check (issue 21)
    from fhn_automl.learning.digests import file_digests

    recorded = json.loads(run.data.tags["fhn_automl.model_sha256"])
    assert recorded == file_digests(local / "model") and set(recorded) == {"spec.json", "weights.pt", "model.ts"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _pyfunc_matches_torchscript(f"models:/{logged.model_id}", model_dir / "model.ts",
                                _validation_inputs(dataset_dir))
    # the dataset: train and validation inputs of the trial and of the parent, digests from the manifest
    files = read_manifest(dataset_dir)["files"]
    for some_run in (run, client.get_run(parent)):
        inputs = {tag.value: item.dataset for item in some_run.inputs.dataset_inputs for tag in item.tags
                  if tag.key == "mlflow.data.context"}
        assert set(inputs) == {"training", "validation"}
        assert inputs["training"].digest == files["train.parquet"]["sha256"][:16]
        assert inputs["validation"].digest == files["val.parquet"]["sha256"][:16]
        assert json.loads(inputs["training"].profile)["num_rows"] == files["train.parquet"]["rows"]
        assert json.loads(inputs["training"].source)["uri"].endswith("train.parquet")
        assert [c["name"] for c in json.loads(inputs["training"].schema)["mlflow_colspec"]][:4] == [
            "traj", "t", "u0", "w0"]


def test_the_registered_front_loads_by_name_and_alias(post_result, tiny_experiment, tmp_path, monkeypatch):
    from fhn_automl.post.runs import download_model

    [(alias, version), *_] = front_versions(tiny_experiment["uri"], "problem_b_s")
    assert alias == "pareto" and version.name == "fhn_automl.problem_b_s" and "/models/m-" in version.source
    model_dir = download_model(tiny_experiment["uri"], version.run_id, tmp_path / "trial")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tiny_experiment["uri"])
    _pyfunc_matches_torchscript("models:/fhn_automl.problem_b_s@pareto", model_dir / "model.ts",
                                _validation_inputs(tiny_experiment["dataset_dir"]))


def _figures(err: float, seconds: float, macs: int, device: str = "cpu-A") -> dict[str, str]:
    return {"fhn_automl.val_mean_err": str(err), "fhn_automl.val_max_err": str(10 * err),
            "fhn_automl.latency_s_per_point": str(seconds), "fhn_automl.macs": str(macs),
            "fhn_automl.device": device, "fhn_automl.backend": "eager-fp32@cpu"}


def test_a_worse_search_does_not_displace_the_registered_front(tiny_experiment, store, tmp_path):
    """Issue 8 item 5: a later, worse post-stage must not move ``pareto`` off a better model."""
    uri, client = store["uri"], store["client"]
    experiment_id = client.create_experiment("searches", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id).info.run_id
    model_dirs = [Path(tiny_experiment["root"]) / f"train{i}" / "model" for i in range(len(ARCHITECTURES))]
    runs = {}
    for position, name in enumerate("ABCDEF"):
        runs[name] = log_trial(client, experiment_id, parent, name, ARCHITECTURES[position % 3], "finished",
                               model_dir=model_dirs[position % 3])

    def register(**figures):
        requests = [RegistrationRequest(run_id=runs[name], tags=tags,
                                        model_source=f"{client.get_run(runs[name]).info.artifact_uri}/model")
                    for name, tags in figures.items()]
        merged = register_front(uri, "problem_b_s", requests)
        by_run = {run_id: name for name, run_id in runs.items()}
        return [(r["alias"], by_run[r["run_id"]], r["new"]) for r in merged]

    # the good first search: A accurate, B cheap
    assert register(A=_figures(1e-3, 1.0e-7, 300), B=_figures(4e-3, 5e-8, 100)) == [
        ("pareto", "A", True), ("pareto-2", "B", True)]
    # a worse second search (fewer steps): C is dominated by A, D by B -> nothing moves, no new versions
    assert register(C=_figures(2e-3, 1.02e-7, 300), D=_figures(6e-3, 5.5e-8, 100)) == [
        ("pareto", "A", False), ("pareto-2", "B", False)]
    assert not client.search_model_versions(f"name='fhn_automl.problem_b_s' and run_id='{runs['C']}'")
    # a better search: E dominates A and takes 'pareto'; A keeps its version, without an alias
    assert register(E=_figures(5e-4, 0.99e-7, 300)) == [("pareto", "E", True), ("pareto-2", "B", False)]
    [version_a] = client.search_model_versions(f"name='fhn_automl.problem_b_s' and run_id='{runs['A']}'")
    assert not client.get_model_version("fhn_automl.problem_b_s", version_a.version).aliases
    # timed on another machine (much faster, more multiply-adds than B): its latency is not compared
    # with this machine's, so B, cheaper in multiply-adds, stays on the front beside it
    assert register(F=_figures(3e-3, 1e-9, 200, device="gpu-B")) == [
        ("pareto", "E", False), ("pareto-2", "F", True), ("pareto-3", "B", False)]
    pareto = client.get_model_version_by_alias("fhn_automl.problem_b_s", "pareto-2")
    assert pareto.tags["fhn_automl.merge_cost_basis"] == "macs" and "/models/m-" in pareto.source


def test_a_failed_registration_puts_the_aliases_back(store, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    # its own registered model (problem_c) in the module's store
    uri, client = store["uri"], store["client"]
    experiment_id = client.create_experiment("s", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id).info.run_id
    first, cheap, second = (log_trial(client, experiment_id, parent, n, ARCHITECTURES[0], "finished")
                            for n in ("first", "cheap", "second"))
    register_front(uri, "problem_c", [RegistrationRequest(first, "unused", _figures(1e-3, 1e-7, 300)),
                                      RegistrationRequest(cheap, "unused", _figures(4e-3, 5e-8, 100))])

    def fail(*args, **kwargs):
        raise RuntimeError("registry went away")

    # 'second' dominates both: 'pareto' moves to it, then dropping the stale 'pareto-2' fails
    monkeypatch.setattr(MlflowClient, "delete_registered_model_alias", fail)
    with pytest.raises(RuntimeError, match="went away"):
        register_front(uri, "problem_c", [RegistrationRequest(second, "unused", _figures(1e-4, 1e-8, 30))])
    monkeypatch.undo()
    assert client.get_model_version_by_alias("fhn_automl.problem_c", "pareto").run_id == first
    assert client.get_model_version_by_alias("fhn_automl.problem_c", "pareto-2").run_id == cheap
    assert not client.search_model_versions(f"name='fhn_automl.problem_c' and run_id='{second}'")


def test_bench_reads_the_registered_models(post_result, tiny_experiment, tmp_path, capsys):
    """``bench --registered`` finds the model files inside the registered MLflow models."""
    from fhn_automl.bench import main as bench_main

    assert bench_main(["--registered", "--tracking-uri", tiny_experiment["uri"], "--n", "200", "--n-ref", "8",
                       "--backend", "eager", "--device", "cpu", "--repeats", "1", "--warmup", "0", "--dts", "0.1",
                       "--tune-points", "4096", "--out", str(tmp_path / "bench")]) == 0
    assert "[bench] pareto " in capsys.readouterr().out


def test_ctrl_c_during_registration_leaves_nothing_half_registered(store, tmp_path, monkeypatch):
    """Issue 21 item 7: an interrupt (KeyboardInterrupt, not an Exception) rolls back as a failure does."""
    from mlflow.tracking import MlflowClient

    uri, client = store["uri"], store["client"]
    experiment_id = client.create_experiment("ctrl-c", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id).info.run_id
    first, second = (log_trial(client, experiment_id, parent, n, ARCHITECTURES[0], "finished")
                     for n in ("first", "second"))
    register_front(uri, "problem_a", [RegistrationRequest(first, "unused", _figures(1e-3, 1e-7, 300))])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", interrupted)
    with pytest.raises(KeyboardInterrupt):
        register_front(uri, "problem_a", [RegistrationRequest(second, "unused", _figures(1e-4, 1e-8, 30))])
    monkeypatch.undo()
    assert client.get_model_version_by_alias("fhn_automl.problem_a", "pareto").run_id == first
    assert not client.search_model_versions(f"name='fhn_automl.problem_a' and run_id='{second}'")


def test_ctrl_c_in_the_post_stage_exits_130(monkeypatch, capsys):
    import fhn_automl.pipeline as pipeline
    import fhn_automl.post as post
    import fhn_automl.post.stage as stage
    from fhn_automl.post.__main__ import main as post_main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run_post_stage", interrupted)
    monkeypatch.setattr(post, "run_post_stage", interrupted)
    assert post_main(["some-smoke"]) == 130
    assert pipeline.run_post_stage("some-smoke", "sqlite:///x.db", "smoke") == 130
    assert capsys.readouterr().err.count("post-stage interrupted") == 2
