"""A trial tagged finished but without model artifacts (driver killed at its end) is skipped, not fatal."""

import logging

import pytest

from fhn_automl.post.errors import NoFinishedTrialsError
from fhn_automl.post.runs import load_trials

from .conftest import log_trial


def test_the_post_stage_reads_only_trials_with_a_model(tiny_experiment, tmp_path, caplog):
    from mlflow.tracking import MlflowClient

    from fhn_automl.learning.model_io import save_model
    from fhn_automl.learning.untrained import untrained_model
    from fhn_automl.physics.problems import get_problem

    uri = tiny_experiment["uri"]  # the session's store (creating one costs seconds); experiments of our own
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("killed-smoke", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id, tags={"fhn_automl.role": "search"}).info.run_id
    model_dir = save_model(untrained_model(get_problem("problem_b_s"), "silu-8", seed=0), tmp_path / "model")
    metrics = {"val_mean_err": 0.1, "val_max_err": 0.5}
    with_model = log_trial(client, experiment_id, parent, "t0", "silu-8", "finished", metrics, model_dir)
    without = log_trial(client, experiment_id, parent, "t1", "tanh-8", "finished", metrics)
    with caplog.at_level(logging.WARNING, logger="fhn_automl.post.runs"):
        _, trials = load_trials("killed-smoke", uri)
    # run_post_stage times, benchmarks and registers exactly these (it crashed on the other one)
    assert [t.run_id for t in trials] == [with_model]
    assert without in caplog.text and "no model/spec.json" in caplog.text

    only_killed = client.create_experiment("only-killed-smoke", artifact_location=(tmp_path / "a2").as_uri())
    log_trial(client, only_killed, parent, "t2", "silu-8", "finished", metrics)
    with pytest.raises(NoFinishedTrialsError, match="1 without a model"):
        load_trials("only-killed-smoke", uri)
