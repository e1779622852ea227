"""Resource planning and the Tune set-up for each algorithm / scheduler, without starting Ray."""

from __future__ import annotations

import pytest

from fhn_automl.search.resources import UnsatisfiableResourcesError, plan_resources
from fhn_automl.search.runner import tune_setup
from fhn_automl.search.trial import TrialPlan, trial_from_config
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


PLAN = TrialPlan(data_dirs={}, train_fn="x:y", device="cpu", workers=1, per_worker={"CPU": 1}, use_gpu=False,
                 train_storage="/tmp/x", max_failures=1, threads=1, data_root="/tmp/d")


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
    assert config.scheduler._time_attr == "step"
    assert config.max_concurrent_trials == 2


def test_asha_cuts_at_rungs_before_the_last_step_and_never_at_it(tmp_path):
    """A trial reaching its last step is never stopped there: it must still send its final report (the
    model at training end). Before, max_t = steps stopped every trial at its last validation."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    space = _space(tmp_path, "{algorithm: grid}", "{type: asha, grace_fraction: 0.25, reduction_factor: 2}")
    trials = space.trials("paper")
    scheduler = tune_setup(space, space.budget("paper"), trials, PLAN, 2)[1].scheduler
    scheduler.set_search_properties("val_mean_err", "min")
    rungs = [milestone for milestone, _ in scheduler._brackets[0]._rungs]
    assert rungs == [5000, 2500]  # at or before 9,500, the last validation before step 10,000
    good, *worse = [SimpleNamespace(trial_id=str(i), config={}) for i in range(4)]
    for trial in (good, *worse):
        scheduler.on_trial_add(None, trial)

    def decide(trial, step, error):
        return scheduler.on_trial_result(None, trial, {"step": step, "val_mean_err": error})

    assert decide(good, 2500, 0.1) == TrialScheduler.CONTINUE
    assert decide(worse[0], 2500, 0.5) == TrialScheduler.STOP  # a rung still cuts the worse half
    for step in (5000, 7500, 10000):
        assert decide(good, step, 0.1) == TrialScheduler.CONTINUE
    assert decide(worse[1], 2500, 0.05) == TrialScheduler.CONTINUE
    assert decide(worse[1], 5000, 0.09) == TrialScheduler.CONTINUE
    assert decide(worse[1], 9500, 0.9) == TrialScheduler.CONTINUE  # past the last rung: never cut
    assert decide(worse[1], 10000, 0.9) == TrialScheduler.CONTINUE  # at its last step: never cut


def test_asha_without_a_rung_before_the_last_step_runs_every_trial_to_its_end(tmp_path):
    space = _space(tmp_path, "{algorithm: grid}", "{type: asha, grace_fraction: 1.0}")
    trials = space.trials("paper")
    assert tune_setup(space, space.budget("paper"), trials, PLAN, 2)[1].scheduler is None


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


def test_a_model_based_search_keeps_its_optuna_study_in_an_rdb_file_optuna_opens(tmp_path):
    """Issue 17 item 6: the study is in sqlite:///<search folder>/optuna.db, readable by Optuna's tools."""
    import optuna

    space = _space(tmp_path, "{algorithm: multi_objective, num_samples: 6, cost_metric: macs}")
    trials = space.trials("paper")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    param_space, config, _ = tune_setup(space, space.budget("paper"), trials, PLAN, 2, optuna_storage=url,
                                        optuna_study="tiny-paper")
    searcher = config.search_alg
    assert searcher.set_search_properties(None, None, {"sampled": param_space["sampled"]})
    for number in range(2):
        suggested = searcher.suggest(f"trial_{number}")
        assert set(suggested["sampled"]) == {"layers", "batch_size"}
        searcher.on_trial_complete(f"trial_{number}", {space.search.metric: 0.1 / (number + 1), "macs": 100 + number})
    study = optuna.load_study(study_name="tiny-paper", storage=url)  # what optuna-dashboard opens
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.values for t in study.trials] == [[0.1, 100.0], [0.05, 101.0]]
    assert {p for t in study.trials for p in t.params} == {"sampled/layers", "sampled/batch_size"}
    # Tune saves its searcher with the experiment state (--resume): the storage travels as its URL
    import pickle

    restored = pickle.loads(pickle.dumps(searcher))
    restored.suggest("trial_2")
    assert len(optuna.load_study(study_name="tiny-paper", storage=url).trials) == 3
