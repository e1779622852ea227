"""A worker node dies mid-trial on a multi-node cluster; the trial finishes from its checkpoint."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fhn_automl.search.space import load_search_space
from fhn_automl.search.tracking import STATUS_TAG, iter_child_runs


def _node_running_train_worker(cluster) -> object | None:
    from ray.util.state import list_actors

    actors = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    worker_nodes = {a.node_id for a in actors if "TrainWorker" in (a.class_name or "")}
    for node in cluster.worker_nodes:
        if node.node_id in worker_nodes:
            return node
    return None


@pytest.mark.slow
@pytest.mark.ray_cluster
def test_trial_survives_losing_the_node_that_trains_it(tmp_path, tracking_uri, data_root,
                                                       make_search_file):
    import ray
    from mlflow.tracking import MlflowClient
    from ray.cluster_utils import Cluster

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search

    ray.shutdown()  # the session's local Ray; this test needs its own cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True,
        "env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        path = make_search_file(tmp_path, ["silu-16,silu-16"], name="node_loss",
                                steps=6000, val_every=300)
        space = load_search_space(path)
        options = SearchOptions(space=space, budget=space.budget("paper"),
                                tracking_uri=tracking_uri, storage=str(tmp_path / "ray"),
                                data_root=str(data_root), quiet=True, max_failures=3)
        checkpoints = Path(tmp_path / "ray" / "node_loss-paper-train")
        removed: list[str] = []

        def remove_node_once_checkpointed() -> None:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                if len(list(checkpoints.glob("*/checkpoint_*"))) >= 2:
                    node = _node_running_train_worker(cluster)
                    if node is not None:
                        cluster.remove_node(node, allow_graceful=False)
                        removed.append(node.node_id)
                        return
                time.sleep(0.2)

        killer = threading.Thread(target=remove_node_once_checkpointed, daemon=True)
        killer.start()
        summary = run_search(options)
        killer.join(timeout=5)

        assert removed, "the training node was never found and removed"
        assert not set(removed) & {n.node_id for n in cluster.worker_nodes}
        assert list(summary.statuses.values()) == ["finished"]
        (run,) = iter_child_runs(tracking_uri, "node_loss-paper")
        assert run.data.tags[STATUS_TAG] == "finished"
        assert int(run.data.tags["fhn_automl.worker_restarts"]) >= 1
        steps = [m.step for m in MlflowClient(tracking_uri).get_metric_history(run.info.run_id,
                                                                              "val_mean_err")]
        assert steps[-1] == 6000 and steps == sorted(set(steps))
    finally:
        ray.shutdown()
        cluster.shutdown()
