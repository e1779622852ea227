"""Single steps of ``runner._run_search`` and the typed ``TrialPlan`` (issue 15 items 2 and 6), each run
alone on the CPU, without starting Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhn_automl.search.options import SearchOptions
from fhn_automl.search.resources import ResourcePlan
from fhn_automl.search.runner import (NothingToResumeError, prepare_tune_folder, search_site, trial_plan,
                                      tune_experiment)
from fhn_automl.search.space import load_search_space
from fhn_automl.search.trial import TrialPlan, build_loop_config, loop_config

#: The plan exactly as a search started before ``TrialPlan`` stored it in its Tune config (no
#: ``latency_ms`` key: it was written only when measured); ``--resume`` hands such a dict back.
OLD_PLAN = {"data_dirs": {"problem_b_s": "/data/b_s"}, "extra_sets": {}, "train_fn": "x:y", "device": "cpu",
            "workers": 2, "per_worker": {"CPU": 1.0}, "use_gpu": False, "train_storage": "/runs/ray/e-train",
            "max_failures": 3, "threads": 1, "data_root": "/data"}


def _options(tmp_path: Path, make_search_file, executor: str = "function", **fields) -> SearchOptions:
    path = make_search_file(tmp_path, ["silu-8", "tanh-8,silu-8"], name="steps",
                            resources=f"{{workers: 1, cpus_per_worker: 1, executor: {executor}}}", **fields)
    space = load_search_space(path)
    return SearchOptions(space=space, budget=space.budget("paper"), storage=str(tmp_path / "ray"),
                         data_root=str(tmp_path / "data"), quiet=True)


def test_the_plan_crosses_tune_as_json_and_reads_back_the_same():
    plan = TrialPlan(train_fn="x:y", device="cpu", threads=2, data_root="/data", data_dirs={"problem_b_s": "/d"},
                     extra_sets={"problem_b_s:data:high_error": "data:/d/high_error.parquet"},
                     latency_ms={"silu-8": 0.5})
    carried = json.loads(json.dumps(plan.as_config()))  # params.json
    assert TrialPlan.from_config(carried) == plan


def test_a_plan_stored_by_an_older_search_still_reads():
    plan = TrialPlan.from_config(OLD_PLAN)
    assert plan.workers == 2 and plan.train_storage == "/runs/ray/e-train" and plan.latency_ms == {}


def test_a_plan_with_an_unknown_or_missing_key_names_it():
    with pytest.raises(ValueError, match="unknown key.*devise"):
        TrialPlan.from_config({**OLD_PLAN, "devise": "cpu"})
    with pytest.raises(ValueError, match="missing key.*train_fn"):
        TrialPlan.from_config({k: v for k, v in OLD_PLAN.items() if k != "train_fn"})


def test_loop_config_takes_data_extra_set_and_latency_from_the_plan(tmp_path, make_search_file):
    trials = _options(tmp_path, make_search_file).space.trials("paper")
    plan = TrialPlan(train_fn="x:y", device="cpu", threads=3, data_root="/data", data_dirs={"problem_b_s": "/d"},
                     latency_ms={trials[0].layers: 0.25})
    first = loop_config(trials[0], plan)
    assert first["train_fn"] == "x:y" and first["train_config"]["data_dir"] == "/d"
    assert first["train_config"]["threads"] == 3 and first["static_metrics"]["latency_ms"] == 0.25
    assert "latency_ms" not in loop_config(trials[1], plan)["static_metrics"]
    # the Tune config's dict gives the same
    assert build_loop_config({"trial": trials[0].as_dict(), "plan": plan.as_config()}) == first


def test_search_site_knows_a_remote_storage_from_a_local_folder(tmp_path, make_search_file):
    options = _options(tmp_path, make_search_file)
    site = search_site(options)
    assert site.experiment == "steps-paper" and site.local
    assert site.tune_path == f"{tmp_path / 'ray'}/steps-paper"
    remote = search_site(SearchOptions(space=options.space, budget=options.budget, storage="s3://bucket/runs"))
    assert not remote.local and remote.tune_path == "s3://bucket/runs/steps-paper"


def test_a_fresh_start_removes_the_previous_tune_state_and_resume_needs_one(tmp_path, make_search_file):
    options = _options(tmp_path, make_search_file)
    site = search_site(options)
    (Path(site.tune_path) / "old").mkdir(parents=True)
    assert prepare_tune_folder(options, site) == (False, None)
    assert not Path(site.tune_path).exists()
    resume = SearchOptions(space=options.space, budget=options.budget, storage=options.storage, resume=True)
    with pytest.raises(NothingToResumeError, match="no interrupted search"):
        prepare_tune_folder(resume, site)


def test_trial_plan_holds_the_resources_and_the_train_runs_storage(tmp_path, make_search_file):
    options = _options(tmp_path, make_search_file)
    site = search_site(options)
    trials = options.space.trials("paper")
    resources = ResourcePlan(workers=2, per_worker={"CPU": 2.0}, use_gpu=False, concurrent_trials=1,
                             cluster={"CPU": 4.0})
    timings: dict[str, float] = {}
    plan = trial_plan(options, site, trials, resources, {"problem_b_s": "/d"}, {}, timings)
    assert plan.threads == 2 and plan.workers == 2 and plan.device == "cpu"
    assert plan.train_storage == f"{site.storage}/steps-paper-train"
    assert Path(plan.data_root).is_absolute() and plan.latency_ms == {} and timings == {}


@pytest.mark.parametrize("executor", ["function", "train", "packed"])
def test_tune_experiment_per_executor(tmp_path, make_search_file, executor):
    options = _options(tmp_path, make_search_file, executor=executor)
    trials = options.space.trials("paper")
    plan = TrialPlan(train_fn="x:y", device="cpu", threads=1, data_root="/data", data_dirs={})
    experiment = tune_experiment(options, search_site(options), trials, plan, concurrent=1)
    assert experiment.total == len(trials) and experiment.packed == (executor == "packed")
    assert experiment.param_space["plan"] == plan.as_config()  # a plain dict in Tune's config
    if executor == "packed":  # a grid point per pack, every trial in one of them
        packs = experiment.param_space["pack"]["grid_search"]
        assert sorted(spec["name"] for pack in packs for spec in pack["trials"]) == sorted(t.name for t in trials)
    else:
        assert len(experiment.param_space["trial"]["grid_search"]) == len(trials)
