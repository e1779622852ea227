"""The smoke of issue 19: a tiny multi-objective search (error vs measured latency) that Optuna drives a
pack at a time on the packed executor, with Pareto halving inside the packs, its front and constraint
query at the end, then the post-stage on it (registry included)."""

from __future__ import annotations

import math

import pytest

from fhn_automl.search.space import load_search_space

CHOICES = ["silu-8", "tanh-8", "silu-16"]


@pytest.mark.slow
def test_mo_search_with_pareto_halving_on_packs_then_registry(local_ray, tmp_path, tracking_uri, data_root,
                                                              make_search_file, capsys):
    from mlflow.tracking import MlflowClient

    from fhn_automl.post import run_post_stage
    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search
    from fhn_automl.search.tracking import TRIAL_NAME_TAG, iter_child_runs
    from fhn_automl.search.tracking_tags import STOPPED_EARLY_TAG

    path = make_search_file(
        tmp_path, ["silu-8"],
        search="{algorithm: multi_objective, num_samples: 6, seed: 3, objectives: [error, latency], "
               "constraints: ['error <= 1.0'], sampler: tpe, latency: {batch: 256, repeats: 3, warmup: 1}}",
        scheduler="{type: moasha, grace_fraction: 0.3334, reduction_factor: 3}",
        resources="{workers: 1, cpus_per_worker: 1, executor: packed, pack_size: 3}")
    text = path.read_text().replace('  sequences: ["silu-8"]',
                                    f"  {{choices: {CHOICES}, depths: [1, 2], shape_classes: [rectangle, funnel]}}")
    path.write_text(text.replace("layers:\n  {", "layers: {"))
    space = load_search_space(path)
    options = SearchOptions(space=space, budget=space.budget("paper"), tracking_uri=tracking_uri,
                            storage=str(tmp_path / "ray"), data_root=str(data_root), quiet=False,
                            max_concurrent=1)
    summary = run_search(options)
    assert not summary.interrupted and len(summary.statuses) == 6

    children = {run.data.tags[TRIAL_NAME_TAG]: run for run in iter_child_runs(tracking_uri, "tiny_b_s-paper")}
    assert len(children) == 6
    layers = [run.data.params["layers"] for run in children.values()]
    assert len(set(layers)) == 6  # never an architecture twice
    for value in layers:  # inside the grid: the choices, and the shape classes asked for
        tokens = value.split(",")
        assert all(t in CHOICES for t in tokens)
        widths = [int(t.rsplit("-", 1)[1]) for t in tokens]
        assert widths == sorted(widths, reverse=True)
    for run in children.values():  # measured latency beside the proxies
        assert run.data.metrics["latency_ms"] > 0 and int(run.data.params["macs"]) > 0
    # packs hold one depth each; at the rung of step 200 each pack of n keeps ceil(n / 3) members
    client = MlflowClient(tracking_uri)
    sizes = [int(client.get_metric_history(run.info.run_id, "pack_members")[0].value) for run in children.values()]
    expected = sum((sizes.count(n) / n) * (n - math.ceil(n / 3)) for n in set(sizes))
    stopped = sum(run.data.tags.get(STOPPED_EARLY_TAG) == "true" for run in children.values())
    assert stopped == expected and stopped >= 2, (sizes, stopped)
    cache = tmp_path / "ray" / "latency" / "latency_ms.json"
    assert cache.exists()

    out = capsys.readouterr().out
    assert "Pareto front (val_mean_err vs latency_ms)" in out
    assert "fastest model with error <= 1: t0" in out
    parent = MlflowClient(tracking_uri).get_run(summary.parent_run_id)
    assert parent.data.tags["fhn.query.0"].startswith("fastest model with error <= 1: t0")
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(summary.parent_run_id, "front")}
    assert artifacts == {"front/front.txt", "front/front.png"}

    post = run_post_stage("tiny_b_s-paper", tracking_uri, tmp_path / "post", backend="eager", device="cpu",
                          bench_n=2_000, n_ref=32, repeats=1, tune_points=8_192, quiet=True)
    assert post.registered, "the post-stage registered no model of the multi-objective search"


@pytest.mark.slow
def test_moasha_scheduler_inside_tune_stops_dominated_trials(local_ray, tmp_path):
    from ray import tune

    from fhn_automl.search.moasha import ParetoASHAScheduler

    def _curve_trial(config):  # defined here so Ray pickles it by value (tests/ is not importable)
        from ray import tune

        for step in range(10, 100, 10):  # error falls with the steps; latency is fixed per trial
            tune.report({"step": step, "val_mean_err": config["err"] * 100 / step, "latency_ms": config["lat"]})

    # (error scale, latency): b is dominated by a, d by c; a, c, e are each best somewhere
    points = {"a": (1.0, 1.0), "b": (2.0, 2.0), "c": (0.5, 3.0), "d": (0.6, 4.0), "e": (3.0, 0.2)}
    scheduler = ParetoASHAScheduler(metric="val_mean_err", cost_attr="latency_ms", max_t=90, grace_period=30,
                                    reduction_factor=2)
    tuner = tune.Tuner(_curve_trial, param_space={"name": tune.grid_search(list(points)),
                                                  "err": tune.sample_from(lambda spec: points[spec.config.name][0]),
                                                  "lat": tune.sample_from(lambda spec: points[spec.config.name][1])},
                       tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=1),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    results = {r.config["name"]: r.metrics["step"] for r in tuner.fit()}
    # one at a time, in grid order (rungs 30 and 60, keep ceil(n / 2)): b and d are dominated at rung 30;
    # at rung 60 {a, c, e} are one front, c and e its extremes: e goes on although its error is the worst
    # (a single-metric ASHA would stop it), a had passed rung 60 alone before
    assert results == {"a": 90, "b": 30, "c": 90, "d": 30, "e": 90}
    assert scheduler.num_stopped == 2


@pytest.mark.slow
def test_query_phase_end_to_end_in_a_ray_search(local_ray, tmp_path, tracking_uri, data_root, make_search_file,
                                                monkeypatch, capsys):
    """The query phase inside Tune: after half the proposals the searcher proposes the architectures most
    likely to give a smaller answer to 'error <= 1' (every model meets it, so: fewer neurons); the answer
    at the end is the smallest architecture of the space, which the sampler had not proposed. Packs of one,
    trained one at a time, so each proposal sees every earlier result (the same run as the offline searcher:
    TPE's first ten proposals are its seeded random start-up). Query packs without halving: unit-tested."""
    from mlflow.tracking import MlflowClient

    from fhn_automl.search import mo_packed
    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import run_search
    from fhn_automl.search.tracking import TRIAL_NAME_TAG, iter_child_runs

    monkeypatch.setattr(mo_packed, "MIN_OBSERVED", 2)  # the driver's searcher; 8 would need a larger search
    path = make_search_file(
        tmp_path, ["silu-8"], name="tiny_query", steps=300, val_every=100,
        search="{algorithm: multi_objective, num_samples: 8, seed: 5, objectives: [error, neurons], "
               "constraints: ['error <= 1.0'], sampler: tpe, query_fraction: 0.5}",
        scheduler="{type: fifo}", resources="{workers: 1, cpus_per_worker: 1, executor: packed, pack_size: 1}")
    path.write_text(path.read_text().replace('  sequences: ["silu-8"]',
                                             "  {choices: [silu-8, silu-16, silu-32], depths: [1, 2, 3]}")
                    .replace("layers:\n  {", "layers: {"))
    space = load_search_space(path)
    assert space.search.multi.query_fraction == 0.5
    options = SearchOptions(space=space, budget=space.budget("paper"), tracking_uri=tracking_uri,
                            storage=str(tmp_path / "ray"), data_root=str(data_root), quiet=False, max_concurrent=1)
    summary = run_search(options)
    assert not summary.interrupted and len(summary.statuses) == 8
    out = capsys.readouterr().out
    assert "[search] query phase from proposal" in out
    start = int(out.split("[search] query phase from proposal ", 1)[1].split(" ", 1)[0])
    assert start == 5  # the second half of the 8 proposals, from the first

    runs = {run.data.tags[TRIAL_NAME_TAG]: run for run in iter_child_runs(tracking_uri, "tiny_query-paper")}
    assert len(runs) == 8
    by_index = [runs[name] for name in sorted(runs)]  # t0000-..., t0001-...: the proposal order
    layers = [r.data.params["layers"] for r in by_index]
    assert len(set(layers)) == 8
    # every model meets 'error <= 1', so the answer is the fewest neurons seen: the space's smallest (8)
    parent = MlflowClient(tracking_uri).get_run(summary.parent_run_id)
    answer = parent.data.tags["fhn.query.0"]
    assert answer.startswith("least ") and "model with error <= 1: t0" in answer and "(silu-8)" in answer, answer
    assert "silu-8" not in layers[:start - 1] and layers[start - 1] == "silu-8"  # the query phase's first pick
