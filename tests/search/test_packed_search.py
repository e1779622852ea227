"""``resources.executor: packed`` on a local Ray: packs of trials in one Tune trial each, and still one
MLflow child run per trial with its curves and model; in-pack successive halving for ``scheduler: asha``."""

from __future__ import annotations

import dataclasses

import pytest

from fhn_automl.search.space import SearchSpaceError, load_search_space
from fhn_automl.search.tracking import MODEL_ARTIFACT_PATH, STATUS_TAG, TRIAL_NAME_TAG, iter_child_runs
from fhn_automl.search.tracking_tags import STOPPED_EARLY_TAG

SEQUENCES = ["silu-8,silu-8", "tanh-16,tanh-16", "silu-16,tanh-8", "tanh-8"]


@pytest.mark.slow
def test_packed_search_logs_one_child_run_per_member_with_its_model(local_ray, tmp_path, tracking_uri, data_root,
                                                                   make_search_file):
    from mlflow.tracking import MlflowClient

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search

    # three depth-2 trials share a pack; the depth-1 trial gets its own; ASHA -> halving inside the pack
    path = make_search_file(tmp_path, SEQUENCES, resources="{workers: 1, cpus_per_worker: 1, executor: packed, "
                                                           "pack_size: 3}",
                            scheduler="{type: asha, grace_fraction: 0.3334, reduction_factor: 3}")
    space = load_search_space(path)
    options = SearchOptions(space=space, budget=space.budget("paper"), tracking_uri=tracking_uri,
                            storage=str(tmp_path / "ray"), data_root=str(data_root), quiet=True)
    summary = run_search(options)
    assert not summary.interrupted and len(summary.statuses) == 4
    client = MlflowClient(tracking_uri)
    children = {run.data.tags[TRIAL_NAME_TAG]: run for run in iter_child_runs(tracking_uri, "tiny_b_s-paper")}
    assert sorted(run.data.params["layers"] for run in children.values()) == sorted(SEQUENCES)
    stopped = [run for run in children.values() if run.data.tags.get(STOPPED_EARLY_TAG) == "true"]
    assert len(stopped) == 2  # of the pack of three, one goes on past the rung at step 200
    for run in children.values():
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, MODEL_ARTIFACT_PATH)}
        assert {"model/spec.json", "model/weights.pt"} <= artifacts, run.data.params["layers"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_mean_err")]
        assert steps == ([200] if run in stopped else [200, 400, 600])
        assert run.data.tags[STATUS_TAG] == "finished"

    # MLflow lost everything: the Tune folder, pack trials split by member, fills a new store in again
    from fhn_automl.search.replay import sync_tracking

    fresh = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    (tmp_path / "fresh").mkdir()
    replayed = sync_tracking(dataclasses.replace(options, tracking_uri=fresh))
    assert replayed.n_trials == 4 and not replayed.interrupted
    again = {run.data.tags[TRIAL_NAME_TAG]: run for run in iter_child_runs(fresh, "tiny_b_s-paper")}
    assert sorted(again) == sorted(children)
    for name, run in children.items():  # the halved members closed with the tags the live search gave them
        assert again[name].data.tags[STATUS_TAG] == "finished"
        assert again[name].data.tags.get(STOPPED_EARLY_TAG) == run.data.tags.get(STOPPED_EARLY_TAG), name
    survivor = next(name for name, run in children.items() if run not in stopped and run.data.params["layers"] !=
                    "tanh-8")
    steps = [m.step for m in MlflowClient(fresh).get_metric_history(again[survivor].info.run_id, "val_mean_err")]
    assert steps == [200, 400, 600]
    assert again[survivor].data.tags[STATUS_TAG] == "finished"
    assert {a.path for a in MlflowClient(fresh).list_artifacts(again[survivor].info.run_id, MODEL_ARTIFACT_PATH)} >= {
        "model/spec.json", "model/weights.pt"}


def test_packed_executor_needs_a_grid_and_one_worker(tmp_path, make_search_file):
    path = make_search_file(tmp_path, SEQUENCES, resources="{executor: packed, pack_size: 0}")
    with pytest.raises(SearchSpaceError, match="pack_size"):
        load_search_space(path)
    path = make_search_file(tmp_path, SEQUENCES, resources="{executor: function, pack_size: 4}")
    with pytest.raises(SearchSpaceError, match="pack_size"):
        load_search_space(path)
    path = make_search_file(tmp_path, SEQUENCES, resources="{executor: packed}", search="{algorithm: tpe, num_samples: 2}")
    with pytest.raises(SearchSpaceError, match="grid"):
        load_search_space(path)
    assert load_search_space(make_search_file(tmp_path, SEQUENCES, resources="{executor: packed}")
                             ).resources.pack_size == 16

