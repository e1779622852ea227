"""The verdict's matched-accuracy rule (issue 22): interpolated inside the solver's sweep, first order below
its finest dt, and never extended past its coarsest stable dt."""

from __future__ import annotations

import math

import pytest

from fhn_automl.post.beat_benchmark import BeatRow, _add_verdict, matched_time

CURVE = [(0.01, 0.1, 100.0), (0.1, 1.0, 10.0), (0.2, 2.0, 5.0)]   # (dt, error, time per beat)


def test_inside_the_sweep_the_time_is_interpolated_log_log():
    time, note = matched_time(math.sqrt(0.1 * 1.0), CURVE)
    assert note == "interpolated"
    assert time == pytest.approx(math.sqrt(100.0 * 10.0))


def test_below_the_finest_error_the_solver_is_first_order():
    time, note = matched_time(0.05, CURVE)
    assert note.startswith("extrapolated")
    assert time == pytest.approx(200.0)


def test_above_the_coarsest_stable_error_the_coarsest_time_is_used_not_extended():
    time, note = matched_time(10.0, CURVE)
    assert note.startswith("capped") and "0.2" in note
    assert time == 5.0
    assert math.isnan(matched_time(1.0, [])[0])


def test_count_b_adds_the_pacing_beats_to_the_solver_only():
    solver = [BeatRow("solver", f"rl dt={dt:g}", "numba", f"dt={dt:g}", t, t, e, e, e, e) for dt, e, t in CURVE]
    surrogate = BeatRow("surrogate", "net", "eager", "batch=1", 2.0, 2.0, 1.0, 1.0, 1.0, 1.0)
    _add_verdict([*solver, surrogate], n_prepace=100, pace_time=10.0)
    assert surrogate.speedup_a_v == pytest.approx(10.0 / 2.0)
    assert surrogate.speedup_b_v == pytest.approx((100 * 10.0 + 10.0) / 2.0)
