"""Pareto front on hand-made points: dominated, ties, duplicates, untimed models."""

import math

import pytest

from fhn_automl.post.pareto import Candidate, pareto_front


def front_keys(candidates, **kwargs):
    result = pareto_front(candidates, **kwargs)
    return [candidates[i].key for i in result.front], result


def test_dominated_points_leave_the_front():
    points = [Candidate("a", 1e-3, 100, 1.0), Candidate("b", 2e-3, 50, 0.5), Candidate("c", 3e-3, 200, 2.0),
              Candidate("d", 5e-4, 400, 4.0), Candidate("e", 2e-3, 60, 0.6)]
    keys, result = front_keys(points)
    assert keys == ["d", "a", "b"]  # sorted by error; c and e are dominated
    assert result.cost_basis == "time"


def test_equal_error_cheaper_wins_and_equal_cost_more_accurate_wins():
    points = [Candidate("slow", 1e-3, 100, 2.0), Candidate("fast", 1e-3, 100, 1.0),
              Candidate("worse", 2e-3, 100, 1.0)]
    assert front_keys(points)[0] == ["fast"]


def test_time_ties_within_tolerance_are_broken_by_macs():
    points = [Candidate("big", 1e-3, 1000, 1.00), Candidate("small", 1e-3, 100, 1.02)]
    assert front_keys(points, time_rtol=0.05)[0] == ["small"]
    assert front_keys(points, time_rtol=0.0)[0] == ["big"]  # exact comparison: big is faster


def test_duplicates_stay_on_the_front_and_are_marked():
    points = [Candidate("first", 1e-3, 100, 1.0), Candidate("copy", 1e-3, 100, 1.0),
              Candidate("other", 5e-4, 300, 3.0), Candidate("copy2", 1e-3, 100, 1.0)]
    keys, result = front_keys(points)
    assert set(keys) == {"first", "copy", "other", "copy2"}
    assert result.duplicate_of == {1: 0, 3: 0}
    assert [points[i].key for i in result.unique_front()] == ["other", "first"]


def test_untimed_models_use_macs_for_everyone():
    points = [Candidate("a", 1e-3, 100, None), Candidate("b", 2e-3, 50, 0.1), Candidate("c", 2e-3, 150, 0.01)]
    keys, result = front_keys(points)
    assert result.cost_basis == "macs"
    assert keys == ["a", "b"]  # c: same error as b, more multiply-adds (its time is not used)


def test_non_finite_errors_never_enter_and_single_point_is_a_front():
    points = [Candidate("nan", math.nan, 1, 0.1), Candidate("only", 1.0, 10, 1.0)]
    assert front_keys(points)[0] == ["only"]
    assert pareto_front([]).front == ()
    with pytest.raises(ValueError):
        pareto_front(points, time_rtol=-1)


def test_times_whose_spreads_overlap_tie_and_multiply_adds_decide():
    """Issue 17 item 2: a difference inside the measurement's own spread is not a difference."""
    # the bigger model (more multiply-adds) measured faster by 40 %, far beyond time_rtol
    small = Candidate("small", mean_err=2e-3, macs=100, time_per_point_s=1.4e-7, time_range=(0.9e-7, 2.0e-7))
    big = Candidate("big", mean_err=1e-3, macs=400, time_per_point_s=1.0e-7, time_range=(0.8e-7, 1.5e-7))
    # spreads overlap: tied in time, the small model is cheaper by multiply-adds, so both stay
    assert pareto_front([small, big], time_rtol=0.05).front == (1, 0)
    # the same medians with narrow, separate spreads: the big model is really faster and dominates
    small_narrow = Candidate("small", 2e-3, 100, 1.4e-7, time_range=(1.35e-7, 1.45e-7))
    big_narrow = Candidate("big", 1e-3, 400, 1.0e-7, time_range=(0.98e-7, 1.02e-7))
    assert pareto_front([small_narrow, big_narrow], time_rtol=0.05).front == (1,)
    # without spreads only time_rtol ties, as before
    assert pareto_front([Candidate("small", 2e-3, 100, 1.4e-7), Candidate("big", 1e-3, 400, 1.0e-7)],
                        time_rtol=0.05).front == (1,)


def test_interleaved_timings_time_every_key_in_every_round():
    from fhn_automl.post.timing import interleaved_timings

    calls: list[str] = []
    timings = interleaved_timings({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                                  rounds=3, warmup=1)
    # warm-up a, b; then rounds a b | b a | a b (each round starts one model later)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert {k: t.repeats for k, t in timings.items()} == {"a": 3, "b": 3}
    assert all(t.min_s <= t.median_s <= t.max_s for t in timings.values())
