"""The benchmark's smoke size runs and reports both sides; the reference and the matched-accuracy rule."""

import math

import numpy as np
import pytest

from fhn_automl.post.benchmark import (SurrogateEntry, make_workload, matched_euler_time, reference_states,
                                       report_markdown, run_benchmark, write_report)
from fhn_automl.post.compile import compile_surrogate
from fhn_automl.learning.untrained import untrained_model
from fhn_automl.physics.problems import get_problem


def test_smoke_benchmark_reports_both_sides(tmp_path):
    model = untrained_model(get_problem("problem_b_s"), "silu-8", seed=0)
    entry = SurrogateEntry("silu-8", compile_surrogate(model, 3, backend="eager", device="cpu"),
                           model.spec.inputs, "ddnn", batch_size=1_024, untrained=True)
    report = run_benchmark(get_problem("problem_b_s"), [entry], n=2_000, n_ref=32, euler_dts=(0.1, 0.05, 0.01),
                           repeats=2)
    sides = [row.side for row in report.rows]
    assert sides == ["euler", "euler", "euler", "surrogate"]
    for row in report.rows:
        assert row.time_s > 0 and math.isfinite(row.mean_err) and row.timing["repeats"] == 2
    euler = {row.setting: row for row in report.rows if row.side == "euler"}
    # first order: ten times smaller dt, about ten times smaller error
    assert 5 < euler["dt=0.1"].mean_err / euler["dt=0.01"].mean_err < 20
    surrogate = report.rows[-1]
    assert surrogate.backend == "eager-fp32@cpu" and surrogate.speedup_matched is not None
    assert "transfers" in report_markdown(report) and report.transfers.startswith("none")
    files = write_report(report, tmp_path)
    assert all(path.exists() for path in files.values())


def test_reference_agrees_with_fine_float64_euler():
    from fhn_automl.physics.euler import euler_trajectories

    workload = make_workload(get_problem("problem_c"), 16, seed=3)
    U_ref, W_ref = reference_states(workload)
    U, W = euler_trajectories(get_problem("problem_c").model, workload.u0, workload.w0, workload.i_app, dt=1e-4,
                              n_steps=100_000, save_every=10_000, backend="numpy", dtype=np.float64)
    assert np.abs(U[:, 1:] - U_ref).max() < 1e-3 and np.abs(W[:, 1:] - W_ref).max() < 1e-3


def test_matched_accuracy_interpolates_and_extrapolates_first_order():
    curve = [(1e-2, 1.0), (1e-3, 10.0)]
    time, note = matched_euler_time(math.sqrt(1e-5), curve)
    assert time == pytest.approx(math.sqrt(10.0)) and note == "interpolated"
    time, note = matched_euler_time(1e-4, curve)
    assert time == pytest.approx(100.0) and note.startswith("extrapolated")


def test_workload_follows_the_problem():
    assert make_workload(get_problem("problem_b_c_small"), 4).t_end == 5.0  # its networks only know t <= 5
    iterator = make_workload(get_problem("problem_b_c_iter"), 4)
    assert iterator.eval_every == 2.0 and list(iterator.eval_times) == [2.0, 4.0, 6.0, 8.0, 10.0]
    fixed = make_workload(get_problem("problem_a"), 3)
    assert np.all(fixed.u0 == 0.5) and np.all(fixed.w0 == 0.0)
