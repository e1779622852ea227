"""A small search experiment in the search layer's MLflow layout, built without Ray.

Three tiny B_S models trained for a few hundred steps with the learning layer's ``train`` on a
40-trajectory dataset, logged as finished child runs (params, metrics, ``model/`` artifacts and an
MLflow model) under a parent run tagged ``fhn_automl.role=search``; plus one diverged and one
errored trial that the post-stage must ignore. Built once per session (~20 s on two busy cores,
mostly the dataset).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ARCHITECTURES = ("silu-8", "tanh-8,silu-8", "silu-16,tanh-16")
EXPERIMENT = "tiny_b_s-smoke"


def _params(layers: str) -> dict[str, str]:
    from fhn_automl.learning.architecture import (count_macs, count_neurons, count_parameters, parse_layers,
                                                  shape_class)

    parsed = parse_layers(layers)
    return {"problem": "problem_b_s", "kind": "ddnn", "layers": layers, "depth": str(len(parsed)),
            "shape_class": shape_class(parsed), "neurons": str(count_neurons(parsed)),
            "parameters": str(count_parameters(parsed, 3, 2)), "macs": str(count_macs(parsed, 3, 2)),
            "batch_size": "256", "pinn": "False"}


def log_trial(client, experiment_id: str, parent_id: str, name: str, layers: str, status: str,
              metrics: dict[str, float] | None = None, model_dir: Path | None = None) -> str:
    """One child run exactly as ``fhn_automl.search.tracking.SearchTracker`` writes it."""
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags={
        "fhn_automl.role": "trial", "fhn_automl.trial_name": name, "mlflow.parentRunId": parent_id})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in _params(layers).items()])
    for key, value in (metrics or {}).items():
        client.log_metric(run.info.run_id, key, value)
        client.log_metric(run.info.run_id, f"final_{key}", value)
    if model_dir is not None:
        import json

        from fhn_automl.learning.digests import file_digests
        from fhn_automl.search.tracking import log_mlflow_model

        client.set_tag(run.info.run_id, "fhn_automl.model_sha256", json.dumps(file_digests(model_dir)))
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
        log_mlflow_model(client, experiment_id, run.info.run_id, model_dir, name=name)
    client.set_tag(run.info.run_id, "fhn_automl.trial_status", status)
    client.set_terminated(run.info.run_id, "FAILED" if status == "error" else "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from mlflow.tracking import MlflowClient

    from fhn_automl.learning.trainer import train

    root = tmp_path_factory.mktemp("post_store")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    (root / "mlruns").mkdir()
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        EXPERIMENT, artifact_location=(root / "mlruns" / "artifacts" / EXPERIMENT).as_uri())
    parent = client.create_run(experiment_id, run_name=EXPERIMENT, tags={"fhn_automl.role": "search"})
    trials = {}
    dataset_dir = None
    for position, layers in enumerate(ARCHITECTURES):
        result = train({"problem": "problem_b_s", "layers": layers, "steps": 300, "val_every": 100,
                        "n_trajectories": 40, "data_root": str(root / "data"), "out_dir": str(root / f"train{position}"),
                        "device": "cpu", "threads": 1, "seed": position})
        dataset_dir = result["dataset_dir"]
        metrics = {key: result[key] for key in ("val_mean_err", "val_max_err", "best_val_mean_err", "best_val_max_err",
                                                "final_full_val_mean_err", "final_full_val_max_err",
                                                "final_full_val_code_mean_err", "final_full_val_code_max_err")}
        run_id = log_trial(client, experiment_id, parent.info.run_id, f"trial_{position}", layers, "finished",
                           metrics, Path(result["model_dir"]))
        trials[run_id] = {"layers": layers, **metrics}
    log_trial(client, experiment_id, parent.info.run_id, "trial_diverged", "silu-64", "diverged",
              {"val_mean_err": float("nan")})
    log_trial(client, experiment_id, parent.info.run_id, "trial_error", "silu-64", "error")
    client.set_terminated(parent.info.run_id, "FINISHED")
    empty = client.create_experiment("empty-smoke", artifact_location=(root / "mlruns" / "artifacts" / "e").as_uri())
    empty_parent = client.create_run(empty, tags={"fhn_automl.role": "search"})
    log_trial(client, empty, empty_parent.info.run_id, "only_diverged", "silu-8", "diverged")
    return {"uri": uri, "experiment": EXPERIMENT, "empty_experiment": "empty-smoke", "root": root,
            "trials": trials, "dataset_dir": dataset_dir}


#: Small everything: the post-stage on three models in seconds.
FAST_POST = {"backend": "eager", "device": "cpu", "bench_n": 2_000, "n_ref": 32, "repeats": 1, "tune_points": 8_192,
             "quiet": True}


@pytest.fixture(scope="session")
def post_result(tiny_experiment: dict, tmp_path_factory: pytest.TempPathFactory):
    """The post-stage run once on the tiny experiment (register included)."""
    from fhn_automl.post import run_post_stage

    out = tmp_path_factory.mktemp("post_out") / "report"
    return run_post_stage(tiny_experiment["experiment"], tiny_experiment["uri"], out, **FAST_POST)
