"""Multi-objective search: Pareto ranking, the MOASHA scheduler's promotions, in-pack Pareto halving's
ranking, the search file's objectives / constraints / sampler, constraint queries and the latency cache."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fhn_automl.learning.multi_objective import (crowding_distances, hypervolume_2d, non_dominated_fronts,
                                                 pareto_front, pareto_order)
from fhn_automl.learning.packed import Halving, ParetoHalving
from fhn_automl.physics.problems import get_problem
from fhn_automl.search.space import SearchSpaceError, parse_search_space

BASE = {"problem": "problem_b_s", "kind": "ddnn",
        "layers": {"choices": ["silu-8", "silu-32", "tanh-32"], "depths": [1, 2]}}


def test_fronts_and_crowding_on_planted_points():
    points = [(1, 5), (2, 2), (5, 1), (3, 3), (6, 6), (2, 2)]
    assert non_dominated_fronts(points) == [[0, 1, 2, 5], [3], [4]]
    assert pareto_front(points) == [0, 1, 5, 2]
    crowd = crowding_distances([(1, 5), (2, 2), (5, 1)])
    assert crowd[0] == math.inf and crowd[2] == math.inf
    assert crowd[1] == pytest.approx((5 - 1) / 4 + (5 - 1) / 4)
    # within front 0 the extremes come first (infinite crowding), then the middle; NaN counts as worst
    assert pareto_order([(1, 5), (2, 2), (5, 1), (3, 3), (float("nan"), 0.5)])[:2] == [0, 2]
    assert pareto_order([(1, 5), (2, 2), (5, 1), (3, 3)]) == [0, 2, 1, 3]
    assert hypervolume_2d([(1, 3), (2, 1)], (4, 4)) == pytest.approx(3 * 1 + 2 * 2)
    assert hypervolume_2d([(5, 5)], (4, 4)) == 0.0


def test_moasha_scheduler_promotes_by_non_dominated_sorting():
    pytest.importorskip("ray")
    from ray.tune.schedulers import TrialScheduler

    from fhn_automl.search.moasha import ParetoASHAScheduler

    scheduler = ParetoASHAScheduler(max_t=90, grace_period=10, reduction_factor=3)
    assert scheduler.milestones == [10, 30, 90]
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    # rung 10, asynchronous: the first arrival goes on; each later one goes on only if it is among the
    # first ceil(n/3) of the Pareto order of the n recorded so far
    assert scheduler.decide("a", 10, 0.10, 1.0) == go      # n=1, keep 1
    assert scheduler.decide("b", 10, 0.20, 2.0) == stop    # n=2, keep 1: dominated by a
    # n=3, keep 1: front 0 is {a, c}, both extremes (infinite crowding), the tie goes to the lower error
    assert scheduler.decide("c", 10, 0.05, 3.0) == go
    # n=4, keep 2: front 0 is {a, c, d}; c and d are its extremes, a is in the middle -> c, d go on.
    # A single-metric ASHA would stop d (the worst error so far); MOASHA keeps it for its latency.
    assert scheduler.decide("d", 10, 0.50, 0.5) == go
    assert scheduler.decide("e", 10, 0.30, 5.0) == stop    # n=5, keep 2: dominated by a and c
    assert scheduler.decide("a", 20, 0.09, 1.0) == go      # decided at rung 10 already, not at 30 yet
    assert scheduler.decide("a", 30, 0.08, 1.0) == go      # first at rung 30
    assert scheduler.decide("d", 30, 0.40, 0.5) == stop    # n=2, keep 1: a and d tie as extremes, a's error wins
    assert scheduler.decide("c", 30, 0.09, 3.0) == stop    # dominated by a at rung 30
    assert scheduler.recorded[30] == {"a": (0.08, 1.0), "d": (0.40, 0.5), "c": (0.09, 3.0)}
    assert scheduler.decide("f", 5, 9.0, 9.0) == go        # before the first rung nothing is decided
    assert scheduler.num_stopped == 4


def test_pareto_halving_ranks_by_error_and_cost():
    records = {"m0": {"val_mean_err": 0.1, "macs_per_eval": 900}, "m1": {"val_mean_err": 0.2, "macs_per_eval": 100},
               "m2": {"val_mean_err": 0.3, "macs_per_eval": 1000}, "m3": {"val_mean_err": 0.05, "macs_per_eval": 5000}}
    contenders = [(i, name, record) for i, (name, record) in enumerate(records.items())]
    assert Halving(grace_steps=10).rank(contenders) == [3, 0, 1, 2]
    # latency costs: m1 is slow, m2 fastest -> front {m3, m0, m2}; extremes m3 and m2 first
    halving = ParetoHalving(grace_steps=10, costs={"m0": 1.0, "m1": 4.0, "m2": 0.5, "m3": 3.0})
    ranked = halving.rank(contenders)
    assert ranked[:2] == [3, 2] and ranked[2] == 0 and ranked[3] == 1
    # without latency the records' MACs are the cost: front {m3, m0, m1}, m2 dominated by m0
    assert ParetoHalving(grace_steps=10).rank(contenders)[-1] == 2


def _search(**fields):
    return parse_search_space({**BASE, "search": {"algorithm": "multi_objective", "num_samples": 4, **fields}},
                              Path("mo.yaml"))


def test_search_file_objectives_and_named_errors():
    space = _search(objectives=["error", "latency"], constraints=["error <= 1e-3", "latency < 2"], sampler="nsga2",
                    latency={"batch": 256})
    multi = space.search.multi
    assert multi.keys == ("val_mean_err", "latency_ms") and multi.sampler == "nsga2"
    assert [str(c) for c in multi.constraints] == ["error <= 0.001", "latency < 2"]
    assert multi.latency.batch == 256 and multi.needs_latency
    assert multi.constraint_values({"val_mean_err": 2e-3, "latency_ms": 1.0}) == pytest.approx([1e-3, -1.0])
    cases = [({"objectives": ["error", "speed"]}, "search.objectives", "no trial reports"),
             ({"objectives": ["error"]}, "search.objectives", "at least two"),
             ({"objectives": ["error", "latency"], "constraints": ["error =< 1e-3"]}, "search.constraints", "'metric <="),
             ({"objectives": ["error", "latency"], "constraints": ["apd90 <= 3"]}, "search.constraints", "apd90"),
             ({"objectives": ["error", "latency"], "sampler": "cmaes-mo"}, "search.sampler", "tpe, nsga2"),
             ({"objectives": ["error", "latency"], "latency": {"backend": "tensorrt"}}, "search.latency.backend", ""),
             ({"constraints": ["error <= 1"]}, "search.constraints", "needs search.objectives")]
    for fields, field_name, text in cases:
        with pytest.raises(SearchSpaceError) as caught:
            _search(**fields)
        assert "mo.yaml" in str(caught.value) and f"'{field_name}'" in str(caught.value) and text in str(caught.value)
    with pytest.raises(SearchSpaceError, match="'scheduler.type' moasha"):
        parse_search_space({**BASE, "scheduler": "moasha"}, Path("mo.yaml"))


def test_physiology_metrics_are_objectives_and_constraints_of_beat_problems_only():
    """Issue 22: a beat problem's physiology metrics (short or full name) are objectives and constraints;
    on a problem that is not a beat, or as MOASHA's cost (reported only at the end), they are refused."""
    from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS
    from fhn_automl.search.objectives import BEAT_METRICS

    beat = {**BASE, "problem": "tp06_beat"}
    space = parse_search_space({**beat, "search": {
        "algorithm": "multi_objective", "num_samples": 4, "objectives": ["v_rmse", "latency", "final_full_val_rest_err"],
        "constraints": ["apd90_err_pct <= 1", "final_full_val_ap_mismatch_cells < 1"]}}, Path("beat.yaml"))
    multi = space.search.multi
    assert multi.keys == ("final_full_val_v_rmse", "latency_ms", "final_full_val_rest_err")
    assert [c.key for c in multi.constraints] == ["final_full_val_apd90_err_pct", "final_full_val_ap_mismatch_cells"]
    assert multi.constraint_values({"final_full_val_apd90_err_pct": 3.0, "final_full_val_ap_mismatch_cells": 0.0}) \
        == pytest.approx([2.0, -1.0])
    assert len(BEAT_METRICS) == len(PHYSIOLOGY_METRICS) == 9  # eight voltage figures and other_rmse_pct
    for name in PHYSIOLOGY_METRICS:  # every one by its short name, on a beat problem
        parse_search_space({**beat, "search": {"algorithm": "multi_objective", "num_samples": 4,
                                               "objectives": ["error", "latency"], "constraints": [f"{name} <= 5"]}},
                           Path("beat.yaml"))
    cases = [({"objectives": ["apd90_err_pct", "latency"]}, "search.objectives", "'apd90_err_pct'"),
             ({"objectives": ["error", "final_full_val_v_rmse"]}, "search.objectives", "'v_rmse'"),
             ({"objectives": ["error", "latency"], "constraints": ["rest_err < 2"]}, "search.constraints", "'rest_err'")]
    for fields, field_name, text in cases:
        with pytest.raises(SearchSpaceError) as caught:
            _search(**fields)  # problem_b_s: FitzHugh-Nagumo, no action potential metrics
        message = str(caught.value)
        assert "mo.yaml" in message and f"'{field_name}'" in message and text in message
        assert "problem 'problem_b_s' is not a beat" in message
    # a file with a beat and a non-beat study is refused too (the FHN trials would never report it)
    mixed = {**beat, "studies": {"beat": {}, "fhn": {"problem": "problem_b_s"}},
             "search": {"algorithm": "multi_objective", "num_samples": 4, "objectives": ["error", "v_rmse"]}}
    with pytest.raises(SearchSpaceError, match="problem 'problem_b_s' is not a beat"):
        parse_search_space(mixed, Path("mixed.yaml"))
    with pytest.raises(SearchSpaceError, match=r"'scheduler.type' moasha ranks rungs during training by \(error, "
                                               r"apd90_err_pct\)"):
        parse_search_space({**beat, "scheduler": "moasha", "search": {
            "algorithm": "multi_objective", "num_samples": 4, "objectives": ["error", "apd90_err_pct"]}}, Path("b.yaml"))


def test_a_constraint_on_a_metric_that_is_no_objective_is_answered():
    """``objectives: [v_rmse, macs]``, ``constraints: ["apd90_err_pct <= 1"]``: the query reads each
    model's APD90 error although the front does not rank by it; a NaN there fails the constraint only."""
    from types import SimpleNamespace

    from fhn_automl.search.objectives import answer_queries, front, models_from_results

    space = parse_search_space({**BASE, "problem": "tp06_beat", "search": {
        "algorithm": "multi_objective", "num_samples": 3, "objectives": ["v_rmse", "macs"],
        "constraints": ["apd90_err_pct <= 1"]}}, Path("beat.yaml"))
    multi = space.search.multi
    figures = {"a": (2.0, 300, 0.5), "b": (5.0, 100, 3.0), "c": (1.0, 900, float("nan"))}
    results = [SimpleNamespace(metrics={"final_full_val_v_rmse": rmse, "macs_per_eval": macs,
                                        "final_full_val_apd90_err_pct": apd, "status": "finished"},
                               config={"trial": {"layers": name}}, path=f"/tune/{name}")
               for name, (rmse, macs, apd) in figures.items()]
    models = models_from_results(results, multi.keys, lambda spec: "unused",
                                 extra=[c.key for c in multi.constraints])
    assert [m.name for m in models] == ["a", "b", "c"]  # c's NaN APD error does not drop it from the front
    assert [m.name for m in front(models, multi.keys)] == ["c", "a", "b"]
    (constraint, target, best), = answer_queries(models, multi)
    assert target == "final_full_val_v_rmse" and best.name == "a"  # c is more accurate but fails the constraint
    assert [m.name for m in models_from_results(results, multi.keys, lambda spec: "unused")] == ["a", "b", "c"]
    assert "final_full_val_apd90_err_pct" not in models_from_results(results, multi.keys, str)[0].values


def test_model_based_trials_are_numbered_by_their_creation_count():
    """Ray 2.60's trial ids are random hex: the count comes from the trial's experiment tag (older Ray:
    from the id's tail), 0-based, and a trial that carries neither is an error, not a made-up index."""
    from types import SimpleNamespace

    from fhn_automl.search.runner import trial_counter

    assert trial_counter(SimpleNamespace(trial_id="1a6b4010", experiment_tag="3_layers=silu-8")) == 2
    assert trial_counter(SimpleNamespace(trial_id="1a6b4_00004", experiment_tag="")) == 4
    with pytest.raises(ValueError, match="1a6b4010"):
        trial_counter(SimpleNamespace(trial_id="1a6b4010", experiment_tag=None))


def test_constraint_queries_and_front():
    from fhn_automl.search.objectives import Model, answer_queries, describe_answer, front

    space = _search(objectives=["error", "latency"], constraints=["error <= 1e-3"])
    models = [Model("a", "silu-8", {"val_mean_err": 5e-3, "latency_ms": 0.2}),
              Model("b", "silu-32", {"val_mean_err": 9e-4, "latency_ms": 0.9}),
              Model("c", "silu-64", {"val_mean_err": 4e-4, "latency_ms": 2.0}),
              Model("d", "tanh-64", {"val_mean_err": 8e-4, "latency_ms": 3.0})]
    assert [m.name for m in front(models, space.search.multi.keys)] == ["c", "b", "a"]
    (constraint, target, best), = answer_queries(models, space.search.multi)
    assert target == "latency_ms" and best.name == "b"
    assert describe_answer(constraint, target, best).startswith("fastest model with error <= 0.001: b (silu-32)")


def test_latency_is_measured_once_and_cached(tmp_path):
    from fhn_automl.search.latency import LatencyCache, LatencyTarget

    problem = get_problem("problem_b_s")
    target = LatencyTarget(batch=64, repeats=3, warmup=1)
    cache = LatencyCache(tmp_path / "latency" / "b_s.json", target)
    first = cache.get(problem, "silu-8,silu-8")
    assert first > 0 and cache.measured == 1
    assert cache.get(problem, "silu-8,silu-8") == first and cache.measured == 1
    again = LatencyCache(tmp_path / "latency" / "b_s.json", target)
    assert again.get(problem, "silu-8,silu-8") == first and again.measured == 0
    other = LatencyCache(tmp_path / "latency" / "b_s.json", LatencyTarget(batch=128, repeats=3, warmup=1))
    other.get(problem, "silu-8,silu-8")
    assert other.measured == 1  # another batch is another measurement


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_pack_searcher_asks_packs_of_one_depth_in_the_space_and_survives_a_restore(tmp_path, sampler):
    pytest.importorskip("ray")
    pytest.importorskip("optuna")
    from fhn_automl.search.mo_packed import PackSearcher, pack_halving, packed_mo_template

    raw = {**BASE, "layers": {"choices": ["silu-8", "tanh-8", "silu-16"], "depths": [1, 2],
                              "shape_classes": ["rectangle", "funnel"]},
           "steps": 600, "val_every": 200,
           "search": {"algorithm": "multi_objective", "num_samples": 9, "seed": 1, "objectives": ["error", "macs"],
                      "constraints": ["error <= 0.5"], "sampler": sampler},
           "scheduler": "moasha", "resources": {"executor": "packed", "pack_size": 3}}
    space = parse_search_space(raw, Path("mo.yaml"))
    template, grid, seeds = packed_mo_template(space, space.trials("paper"))
    searcher = PackSearcher(space=space, template=template, grid=grid, seeds=seeds, n_models=9, pack_size=3,
                            halving=pack_halving(space, template))
    first = searcher.suggest("a")["pack"]
    assert first["halving"] == {"grace_steps": 200, "reduction_factor": 3, "pareto": {"cost_metric": "macs_per_eval"}}
    searcher.on_trial_complete("a", {"members": {m["name"]: {"val_mean_err": 0.3 + 0.1 * i, "macs_per_eval": 10 * i}
                                                 for i, m in enumerate(first["trials"])}})
    pending = searcher.suggest("p")["pack"]  # in training when the search is interrupted
    saved = tmp_path / "searcher.pkl"
    searcher.save(str(saved))
    again = PackSearcher(space=space, template=template, grid=grid, seeds=seeds, n_models=9, pack_size=3, halving=None)
    again.restore(str(saved))
    assert again.asked >= 6 and again.halving == searcher.halving
    again.on_trial_complete("p", {"members": {m["name"]: {"val_mean_err": 0.9, "macs_per_eval": 5}
                                              for m in pending["trials"]}})
    told = [t for t in again.study.trials if t.state.name == "COMPLETE"]
    # six members told (a repeated proposal is told its architecture's known values and constraint too)
    violations = [t.system_attrs["constraints:error <= 0.5"] for t in told]
    assert len(violations) >= 6 and sorted(set(violations)) == pytest.approx([-0.2, -0.1, 0.0, 0.4])
    packs = [first["trials"], pending["trials"]]
    while isinstance(suggestion := again.suggest(f"b{len(packs)}"), dict):
        packs.append(suggestion["pack"]["trials"])
        again.on_trial_complete(f"b{len(packs) - 1}", {"members": {}}, error=True)
    layers = [m["layers"] for pack in packs for m in pack]
    assert len(layers) == 9 and len(set(layers)) == 9  # never an architecture twice
    for pack in packs:
        assert len({len(m["layers"].split(",")) for m in pack}) == 1  # one depth per pack
    allowed = set(grid.expand())  # 3 of depth 1, 7 rectangle / funnel of depth 2
    assert len(allowed) == 10 and set(layers) <= allowed


def test_packed_multi_objective_takes_one_value_per_shared_field():
    raw = {**BASE, "batch_size": [64, 128],
           "search": {"algorithm": "multi_objective", "num_samples": 4, "objectives": ["error", "macs"]},
           "resources": {"executor": "packed"}}
    with pytest.raises(SearchSpaceError, match="mo.yaml: field 'batch_size' has several values"):
        parse_search_space(raw, Path("mo.yaml"))
    raw["batch_size"], raw["seeds"] = 64, [0, 1]  # seeds are sampled with the layers
    assert parse_search_space(raw, Path("mo.yaml")).search.multi.keys == ("val_mean_err", "macs_per_eval")
