"""Resource planning and the Tune set-up for each algorithm / scheduler, without starting Ray."""

from __future__ import annotations

import pytest

from fhn_automl.search.resources import UnsatisfiableResourcesError, plan_resources
from fhn_automl.search.runner import tune_setup
from fhn_automl.search.trial import trial_from_config
from fhn_automl.search.space import Resources, load_search_space

TWO_CPU_NODES = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 2.0, "memory": 1e9}]


def test_cpu_plan_counts_slots_per_node():
    plan = plan_resources(Resources(workers=1, cpus_per_worker=1, gpus_per_worker=0.25),
                          TWO_CPU_NODES)
    assert not plan.use_gpu and plan.per_worker == {"CPU": 1} and plan.concurrent_trials == 4


def test_worker_larger_than_every_node_is_refused():
    with pytest.raises(UnsatisfiableResourcesError, match="fits only 0"):
        plan_resources(Resources(workers=1, cpus_per_worker=3), TWO_CPU_NODES)


def test_gpu_share_packs_trials_onto_one_gpu():
    plan = plan_resources(Resources(workers=1, cpus_per_worker=1, gpus_per_worker=0.25),
                          [{"CPU": 8.0, "GPU": 1.0}])
    assert plan.use_gpu and plan.per_worker == {"CPU": 1, "GPU": 0.25}
    assert plan.concurrent_trials == 4 and plan.device == "cuda"


def test_use_gpu_always_on_a_cpu_cluster_is_refused():
    with pytest.raises(UnsatisfiableResourcesError, match="no GPU"):
        plan_resources(Resources(gpus_per_worker=1, use_gpu="always"), TWO_CPU_NODES)


PLAN = {"data_dirs": {}, "train_fn": "x:y", "device": "cpu", "workers": 1,
        "per_worker": {"CPU": 1}, "use_gpu": False, "train_storage": "/tmp/x", "max_failures": 1,
        "threads": 1, "data_root": "/tmp/d"}


def _space(tmp_path, search: str, scheduler: str = "fifo"):
    path = tmp_path / "s.yaml"
    path.write_text("problem: problem_b_s\nkind: ddnn\nbatch_size: [128, 512]\n"
                    "layers: {choices: [silu-8, tanh-8], depths: [2]}\n"
                    f"search: {search}\nscheduler: {scheduler}\nsteps: 10000\nval_every: 500\n")
    return load_search_space(path)


def test_grid_with_asha(tmp_path):
    space = _space(tmp_path, "{algorithm: grid}", "{type: asha, grace_fraction: 0.2}")
    trials = space.trials("paper")
    param_space, config, total = tune_setup(space, space.budget("paper"), trials, PLAN, 2)
    assert total == 8 and len(param_space["trial"]["grid_search"]) == 8
    assert config.scheduler._time_attr == "step" and config.scheduler._max_t == 10000
    assert config.max_concurrent_trials == 2


def test_multi_objective_optuna_samples_dimensions(tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    space = _space(tmp_path, "{algorithm: multi_objective, num_samples: 6, cost_metric: macs}")
    trials = space.trials("paper")
    param_space, config, total = tune_setup(space, space.budget("paper"), trials, PLAN, 2)
    assert total == 6 and isinstance(config.search_alg, OptunaSearch)
    assert set(param_space["sampled"]) == {"layers", "batch_size"}
    spec = trial_from_config({"template": param_space["template"], "index": 3,
                              "sampled": {"layers": "tanh-8,silu-8", "batch_size": 512}})
    assert spec.name.startswith("t0003-") and spec.layers == "tanh-8,silu-8"
    assert spec.batch_size == 512
