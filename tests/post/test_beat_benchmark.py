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


def test_a_small_verdict_runs_end_to_end_and_writes_its_report(tmp_path):
    """Mitchell-Schaeffer, 3 cells, an untrained network: every row is there, the solver converges at first
    order against BDF, the report files are written and the verdict says which side is faster."""
    from dataclasses import replace

    from fhn_automl.learning.untrained import untrained_model
    from fhn_automl.physics.problems import get_problem
    from fhn_automl.post.beat_benchmark import run_beat_benchmark, write_beat_report
    from fhn_automl.post.benchmark import SurrogateEntry
    from fhn_automl.post.compile import compile_surrogate

    problem = get_problem("ms_beat")
    problem = replace(problem, beat=replace(problem.beat, n_prepace=2))
    model = untrained_model(get_problem("ms_beat"), "tanh-8", seed=0)
    entry = SurrogateEntry(name="tanh-8", surrogate=compile_surrogate(model, 5, backend="eager", device="cpu"),
                           inputs=problem.inputs, kind="ddnn", batch_size=1024, untrained=True)
    report = run_beat_benchmark(problem, [entry], n=3, n_ref=1, dts=(0.05, 0.1), repeats=1, warmup=0)
    solver = [r for r in report.rows if r.side == "solver"]
    assert [r.setting for r in solver] == ["dt=0.05", "dt=0.1"]
    assert solver[1].v_rmse == pytest.approx(2 * solver[0].v_rmse, rel=0.2)  # first order
    surrogate = next(r for r in report.rows if r.side == "surrogate")
    assert surrogate.untrained and surrogate.v_rmse > solver[1].v_rmse
    assert surrogate.matched_v_note.startswith("capped at the coarsest stable dt 0.1")  # worse than every dt
    assert surrogate.speedup_a_v is not None and surrogate.speedup_b_v > surrogate.speedup_a_v
    files = write_beat_report(report, tmp_path / "verdict")
    text = files["markdown"].read_text()
    assert "## Verdict" in text and "tanh-8 (untrained)" in text and "Matched point capped" in text
    assert files["plot"].stat().st_size > 0 and files["json"].is_file()


def test_an_initial_state_verdict_has_count_a_only_and_no_apd(tmp_path):
    """ms_state (the thesis' initial-state problem on Mitchell-Schaeffer): fresh initial states, the solver's
    sweep converges at first order against BDF, the surrogate gets count (a) only, the report says why."""
    from dataclasses import replace

    from fhn_automl.learning.untrained import untrained_model
    from fhn_automl.physics.problems import get_problem
    from fhn_automl.post.beat_benchmark import run_beat_benchmark, write_beat_report
    from fhn_automl.post.benchmark import SurrogateEntry
    from fhn_automl.post.compile import compile_surrogate

    problem = replace(get_problem("ms_state"), t_span=(0.0, 100.0), ranges={**get_problem("ms_state").ranges,
                                                                            "t": (0.0, 100.0)})
    model = untrained_model(get_problem("ms_state"), "tanh-8", seed=0)
    entry = SurrogateEntry(name="tanh-8", surrogate=compile_surrogate(model, 3, backend="eager", device="cpu"),
                           inputs=problem.inputs, kind="ddnn", batch_size=1024, untrained=True)
    report = run_beat_benchmark(problem, [entry], n=4, n_ref=2, dts=(0.05, 0.1), repeats=1, warmup=0)
    assert report.kind == "cell_state" and report.n_prepace == 0 and report.voltage_output == "u"
    assert report.n_t == 51  # 0..100 every 2
    solver = [r for r in report.rows if r.side == "solver"]
    assert [r.setting for r in solver] == ["dt=0.05", "dt=0.1"]
    assert solver[1].v_rmse == pytest.approx(2 * solver[0].v_rmse, rel=0.25)  # first order against BDF
    assert all(math.isnan(r.apd90_err_pct) for r in report.rows)
    surrogate = next(r for r in report.rows if r.side == "surrogate")
    assert surrogate.speedup_a_v is not None and surrogate.speedup_b_v is None  # no pacing, no count (b)
    files = write_beat_report(report, tmp_path / "verdict")
    text = files["markdown"].read_text()
    assert "initial-state surrogates" in text and "no pacing to skip" in text
    assert "APD90" not in text.split("## Verdict")[0].split("|", 1)[1]  # no APD column in the table
    assert files["plot"].stat().st_size > 0
