"""Marching models see the states the dynamics visit, which leave the thesis' sampled box: the input
ranges contain them (re-measured here with the solver), the iterator's pairs cover its rollouts, and
a chained-window model trains from the states it restarts from."""

from __future__ import annotations

import numpy as np
import pytest

from fhn_automl.learning.training_data import chained_window_points, read_columns
from fhn_automl.physics.datasets import ensure_dataset, read_split
from fhn_automl.physics.euler import euler_trajectories
from fhn_automl.physics.problems import PROBLEMS, get_problem
from fhn_automl.physics.sampling import latin_hypercube, sample_iterator_states


def _box_edges(u_box=(0.0, 1.0), w_box=(0.0, 0.18), n: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Initial states on the edges of the sampled box (Table 1's U0 in [0, 1], W0 in [0, 0.18], or a
    problem's own domain): where the extremes start."""
    (u_lo, u_hi), (w_lo, w_hi) = u_box, w_box
    g = np.linspace(0.0, 1.0, n)
    u = u_lo + (u_hi - u_lo) * g
    w = w_lo + (w_hi - w_lo) * g
    u0 = np.concatenate([u, u, np.full(n, u_lo), np.full(n, u_hi)])
    w0 = np.concatenate([np.full(n, w_lo), np.full(n, w_hi), w, w])
    return u0, w0


MARCHING = [name for name, p in PROBLEMS.items() if {"u0", "w0"} <= set(p.inputs) or p.kind == "iterator"]


@pytest.mark.parametrize("name", MARCHING)
def test_input_ranges_contain_the_domain_and_every_visited_state(name):
    problem = get_problem(name)
    state = ("u0", "w0") if problem.kind == "trajectory" else ("u", "w")
    for key, (low, high) in problem.initial_state_ranges().items():
        assert problem.ranges[key][0] <= low and high <= problem.ranges[key][1]
    box = problem.initial_state_ranges()
    u_box, w_box = box[state[0]], box[state[1]]
    edges_u, edges_w = _box_edges(u_box, w_box)
    sampled = latin_hypercube({"u0": u_box, "w0": w_box}, 400, 0)
    u0 = np.concatenate([sampled["u0"], edges_u, edges_u])
    w0 = np.concatenate([sampled["w0"], edges_w, edges_w])
    # problem C: both ends of K (I = 0.08 and 0.12) on the edges
    i_app = problem.i_app(np.concatenate([np.full(400, 0.5), np.zeros(len(edges_u)), np.ones(len(edges_u))])
                          if problem.has_k else 0.0)
    horizon = problem.rollout_t_end or problem.t_end
    U, W = euler_trajectories(problem.model, u0, w0, i_app, dt=problem.solver_dt,
                              n_steps=round(horizon / problem.solver_dt), save_every=5, backend="cpu",
                              dtype=np.float64)
    assert problem.ranges[state[0]][0] <= U.min() and U.max() <= problem.ranges[state[0]][1]
    assert problem.ranges[state[1]][0] <= W.min() and W.max() <= problem.ranges[state[1]][1]
    if problem.i_base > 0:  # autopacing leaves the sampled box: the reason the ranges are wider
        assert U.min() < 0 and U.max() > 1


def test_iterator_rollout_states_lie_inside_the_training_pairs_box(tmp_path):
    problem = get_problem("problem_b_c_iter")
    folder = ensure_dataset(problem, root=tmp_path, n_trajectories=6_000, seed=0, device="cpu")
    train, rollout = read_split(folder, "train"), read_split(folder, "rollout")
    low = np.array([train["u"].min(), train["w"].min()])
    high = np.array([train["u"].max(), train["w"].max()])
    states = np.stack([rollout["u"], rollout["w"]], axis=1)[rollout["t"] > 0]
    outside = np.any((states < low) | (states > high), axis=1)
    # homogeneous pairs alone (the thesis' box) leave 22 % of these states outside
    assert outside.mean() < 0.005, f"{outside.mean():.2%} of rollout states outside the training box"
    for key, column in (("u", 0), ("w", 1)):
        assert problem.ranges[key][0] <= states[:, column].min() and states[:, column].max() <= problem.ranges[key][1]
    # half of the pairs are still the thesis' homogeneous box
    inside_domain = (train["u"] >= 0) & (train["u"] <= 1) & (train["w"] >= 0) & (train["w"] <= 0.18)
    assert 0.5 <= inside_domain.mean() < 0.95


def test_iterator_state_mixture_is_deterministic_and_has_its_share_of_visited_states():
    problem = get_problem("problem_b_c_iter")
    a, b = sample_iterator_states(problem, 2_000, 5), sample_iterator_states(problem, 2_000, 5)
    np.testing.assert_array_equal(a["u"], b["u"])
    outside = (a["u"] < 0) | (a["u"] > 1)
    assert 0.05 < outside.mean() < problem.visited_fraction  # only visited states leave the box


def test_chained_windows_start_from_the_states_marching_visits(tmp_path):
    problem = get_problem("problem_b_c")
    folder = ensure_dataset(problem, root=tmp_path, n_trajectories=60, seed=0, device="cpu")
    columns = read_columns(folder, "train")
    points = chained_window_points(columns, problem, 5.0)
    n_traj = len(np.unique(columns["traj"]))
    assert len(points) == n_traj * 10 * 51  # ten complete windows of 51 stored states each
    t, u0, w0 = (points.x[:, problem.inputs.index(name)] for name in ("t", "u0", "w0"))
    assert t.min() == 0 and np.isclose(t.max(), 5.0)
    starts = t == 0
    np.testing.assert_array_equal(points.y[starts, 0], u0[starts])  # a window starts at its own state
    assert ((u0 < 0) | (u0 > 1)).mean() > 0.05  # restarts from outside the sampled box are trained on
    # every row is exact: the solver from the window's start state reaches the row's target
    pick = np.flatnonzero(np.isclose(t, 3.0))[:50]
    U, W = euler_trajectories(problem.model, u0[pick].astype(np.float64), w0[pick].astype(np.float64),
                              problem.i_app(), dt=problem.solver_dt, n_steps=300, backend="cpu", dtype=np.float64)
    np.testing.assert_allclose(points.y[pick, 0], U[:, -1], atol=2e-4)
    np.testing.assert_allclose(points.y[pick, 1], W[:, -1], atol=2e-4)
    # the validation trajectories' window-end states (where the model restarts) are inside the
    # training rows' start-state box
    val = read_split(folder, "val")
    ends = (np.isclose(val["t"] % 5.0, 0.0, atol=1e-4) | np.isclose(val["t"] % 5.0, 5.0, atol=1e-4)) & (val["t"] > 0)
    for name, column in (("u", u0), ("w", w0)):
        inside = (val[name][ends] >= column.min() - 0.02) & (val[name][ends] <= column.max() + 0.02)
        assert inside.mean() > 0.99
