"""Where the dynamics go from the thesis' sampled box, per problem, and how much of it the training
distributions of the marching models (iterator pairs, chained windows) cover.

    python benchmarks/visited_states.py [--n 40000]

Prints, per problem, the (U, W) range visited by forward Euler (dt = 0.01, float64) from Latin-hypercube
initial states of the domain plus its edges within the problem's horizon (the figures behind
``physics.problems.VISITED_STATES`` and the input ``ranges``), then the share of the iterator's rollout
states and of the chained:5 restart states that lie outside (a) the thesis' box and (b) the box of the
training states that fhn_automl now samples.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fhn_automl.learning.training_data import chained_window_points, read_columns
from fhn_automl.physics.datasets import ensure_dataset, read_split
from fhn_automl.physics.euler import euler_trajectories
from fhn_automl.physics.problems import get_problem
from fhn_automl.physics.sampling import latin_hypercube


def visited(name: str, n: int) -> tuple[float, float, float, float]:
    problem = get_problem(name)
    box = problem.initial_state_ranges()
    sampled = latin_hypercube(box, n, 11)
    g = np.linspace(0.0, 1.0, 201)
    edges = np.array([(a, b * 0.18) for a in g for b in (0.0, 1.0)] + [(b, a * 0.18) for a in g for b in (0.0, 1.0)])
    ks = [0.0, 0.5, 1.0] if problem.has_k else [0.0]
    u0 = np.concatenate([sampled["u0"]] + [edges[:, 0]] * len(ks))
    w0 = np.concatenate([sampled["w0"]] + [edges[:, 1]] * len(ks))
    k = np.concatenate([sampled.get("k", np.zeros(n))] + [np.full(len(edges), v) for v in ks])
    U, W = euler_trajectories(problem.model, u0, w0, problem.i_app(k), dt=0.01, n_steps=round(problem.t_end / 0.01),
                              backend="cpu", dtype=np.float64)
    return float(U.min()), float(U.max()), float(W.min()), float(W.max())


def outside(states: np.ndarray, low, high) -> float:
    return float(np.any((states < np.asarray(low)) | (states > np.asarray(high)), axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--data-root", default="/tmp/fhn_visited_data")
    args = parser.parse_args()
    started = time.perf_counter()
    print("| problem | horizon | U visited | W visited | input ranges u0/u, w0/w |\n|---|---|---|---|---|")
    for name in ("problem_b_s", "problem_b_c", "problem_b_c_small", "problem_c"):
        u_lo, u_hi, w_lo, w_hi = visited(name, args.n)
        problem = get_problem(name)
        print(f"| {name} | {problem.t_end:g} | [{u_lo:.4f}, {u_hi:.4f}] | [{w_lo:.5f}, {w_hi:.4f}] | "
              f"{problem.ranges['u0']}, {problem.ranges['w0']} |")
    thesis = ((0.0, 0.0), (1.0, 0.18))
    iterator = ensure_dataset("problem_b_c_iter", root=args.data_root, n_trajectories=200_000, seed=0, device="cpu")
    train, rollout = read_split(iterator, "train"), read_split(iterator, "rollout")
    pairs = np.stack([train["u"], train["w"]], axis=1)
    states = np.stack([rollout["u"], rollout["w"]], axis=1)[rollout["t"] > 0]
    print(f"\niterator (200k-pair dataset, {len(np.unique(rollout['traj']))} rollouts): rollout states outside the "
          f"thesis box {outside(states, *thesis):.1%}, outside the training pairs' box "
          f"{outside(states, pairs.min(0), pairs.max(0)):.3%}")
    for name in ("problem_b_c", "problem_c"):
        problem = get_problem(name)
        folder = ensure_dataset(name, root=args.data_root, n_trajectories=2_000, seed=0, device="cpu")
        points = chained_window_points(read_columns(folder, "train"), problem, 5.0)
        starts = points.x[:, [problem.inputs.index("u0"), problem.inputs.index("w0")]]
        val = read_split(folder, "val")
        ends = np.isclose(np.mod(val["t"] + 1e-4, 5.0), 1e-4, atol=2e-4) & (val["t"] > 0) & (val["t"] < problem.t_end)
        restarts = np.stack([val["u"][ends], val["w"][ends]], axis=1)
        print(f"{name} chained:5 (2000 trajectories): restart states outside the thesis box "
              f"{outside(restarts, *thesis):.1%}, outside the training windows' start-state box "
              f"{outside(restarts, starts.min(0), starts.max(0)):.3%}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
