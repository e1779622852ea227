"""Surrogate accuracy against an independent DOP853 reference on fresh initial conditions (issue 9 item 7).

The trainer's validation error compares a network with the Euler (dt = 0.01) data it was trained on.
This script asks the question a simulator cares about: how far is the network from the true solution?
It trains a model (``fhn_automl.learning.train``; or loads one with ``--model-dir``) and measures the
thesis' point error |dU| + |dW| (eq. 3.3) against ``scipy`` DOP853 (rtol 1e-10, atol 1e-12, float64)
on ``--n-ref`` initial conditions drawn fresh (a Latin hypercube over the problem's (U0, W0[, K]) box,
seeded apart from every dataset seed), at the thesis' output times t = 0, 0.1, ..., t_end. It reports

- the final model (after the last step) and the best-validation checkpoint, each against DOP853;
- the floor: the training data's own error (Euler dt = 0.01, float64) against DOP853 on the same ICs;
- where the error sits: by time slice and by bins of U0, W0 (and K), and the 5 % worst trajectories.

Usage (run from a scratch folder; every training run niced and on one thread):

    nice -n 19 python benchmarks/accuracy.py problem_c --layers elu-16,tanh-16,sin-16 --steps 60000 \\
        --data-root /tmp/acc/data --out /tmp/acc/runs/c48 [--set recipe=paper --set batch_size=4096 ...]
    python benchmarks/accuracy.py problem_c --model-dir /tmp/acc/runs/c48/model      # evaluate only

``--json PATH`` writes every figure (and the learning curve) for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fhn_automl.learning import build_model, load_model
from fhn_automl.learning.trainer import CHECKPOINT_FOLDER, METRICS_FILE, STATE_FILE
from fhn_automl.physics.euler import euler_trajectories
from fhn_automl.physics.problems import Problem, get_problem
from fhn_automl.physics.sampling import latin_hypercube
from fhn_automl.post.benchmark import Workload, reference_states

#: Seed of the fresh initial conditions: no dataset is built with it (datasets use small seeds).
FRESH_SEED = 987_654_321
OUTPUT_DT = 0.1
EULER_DT = 0.01


def fresh_initial_conditions(problem: Problem, n: int, seed: int = FRESH_SEED) -> dict[str, np.ndarray]:
    """``n`` Latin-hypercube (U0, W0[, K]) in the problem's box, float32-representable like the network's inputs."""
    if problem.kind != "trajectory" or problem.sampling != "lhs":
        raise ValueError(f"{problem.name}: only LHS-sampled trajectory problems are measured here")
    states = latin_hypercube(problem.initial_state_ranges(), n, np.random.SeedSequence(seed))
    out = {name: values.astype(np.float32) for name, values in states.items()}
    out.setdefault("k", np.zeros(n, dtype=np.float32))
    return out


def output_times(problem: Problem) -> np.ndarray:
    count = int(round(problem.t_end / OUTPUT_DT))
    return OUTPUT_DT * np.arange(count + 1, dtype=np.float64)


def dop853_reference(problem: Problem, ics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(U, W) of shape (n, n_times) at t = 0, 0.1, ..., t_end (column 0: the initial state)."""
    n = len(ics["u0"])
    i_app = np.asarray(problem.i_app(ics["k"].astype(np.float64)), dtype=np.float64)
    workload = Workload(problem.name, n, problem.t_end, OUTPUT_DT, ics["u0"], ics["w0"], ics["k"],
                        np.broadcast_to(i_app, (n,)).copy())
    u_ref, w_ref = reference_states(workload, rtol=1e-10, atol=1e-12)
    u0 = ics["u0"].astype(np.float64)[:, None]
    w0 = ics["w0"].astype(np.float64)[:, None]
    return np.hstack([u0, u_ref]), np.hstack([w0, w_ref])


def euler_floor(problem: Problem, ics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The training data's own solver (Euler dt = 0.01, float64) on the same ICs at the output times."""
    save_every = int(round(OUTPUT_DT / EULER_DT))
    n_steps = int(round(problem.t_end / EULER_DT))
    u, w = euler_trajectories(problem.model, ics["u0"].astype(np.float64), ics["w0"].astype(np.float64),
                              problem.i_app(ics["k"].astype(np.float64)), dt=EULER_DT, n_steps=n_steps,
                              save_every=save_every, backend="cpu", dtype=np.float64)
    return np.ascontiguousarray(u), np.ascontiguousarray(w)


@torch.no_grad()
def network_states(model: torch.nn.Module, problem: Problem, ics: dict[str, np.ndarray],
                   times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, m = len(ics["u0"]), len(times)
    columns = {"t": np.tile(times.astype(np.float32), n)}
    for name in ("u0", "w0", "k"):
        columns[name] = np.repeat(ics[name], m)
    x = torch.as_tensor(np.stack([columns[name] for name in problem.inputs], axis=1))
    y = torch.cat([model(x[i:i + 262_144]) for i in range(0, len(x), 262_144)]).double().numpy()
    return y[:, 0].reshape(n, m), y[:, 1].reshape(n, m)


def error_report(err: np.ndarray, ics: dict[str, np.ndarray], problem: Problem, times: np.ndarray) -> dict[str, Any]:
    """Mean / max, and where the error sits: by time slice, by IC bins, the worst 5 % of trajectories."""
    per_traj = err.mean(axis=1)
    n_slices = 10
    edges_t = np.linspace(0.0, problem.t_end, n_slices + 1)
    by_t = []
    for lo, hi in zip(edges_t[:-1], edges_t[1:]):
        cols = (times >= lo) & ((times < hi) | (hi == problem.t_end))
        by_t.append({"t": f"{lo:g}-{hi:g}", "mean": float(err[:, cols].mean())})
    by_ic = {}
    for name, (lo, hi) in problem.initial_state_ranges().items():
        edges = np.linspace(lo, hi, 6)
        which = np.clip(np.digitize(ics[name], edges[1:-1]), 0, 4)
        by_ic[name] = [{"bin": f"{edges[b]:.3g}-{edges[b + 1]:.3g}", "mean": float(per_traj[which == b].mean())}
                       for b in range(5) if np.any(which == b)]
    worst = np.argsort(per_traj)[::-1][: max(1, len(per_traj) // 20)]
    share = float(per_traj[worst].sum() / per_traj.sum())
    return {"mean": float(err.mean()), "max": float(err.max()), "median": float(np.median(err)),
            "p99": float(np.quantile(err, 0.99)), "by_t": by_t, "by_ic": by_ic,
            "worst5pct_share_of_total": share,
            "worst5pct_ics": {name: [float(v) for v in ics[name][worst[:10]]] for name in ("u0", "w0", "k")}}


def point_error(u: np.ndarray, w: np.ndarray, u_ref: np.ndarray, w_ref: np.ndarray) -> np.ndarray:
    return np.abs(u - u_ref) + np.abs(w - w_ref)


def final_model(run_dir: Path) -> torch.nn.Module | None:
    """The model after the last step: the best model's spec with the last checkpoint's weights."""
    state_path = run_dir / CHECKPOINT_FOLDER / STATE_FILE
    model_dir = run_dir / "model"
    if not state_path.exists() or not (model_dir / "spec.json").exists():
        return None
    model = load_model(model_dir)
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    fresh = build_model(model.spec)
    fresh.load_state_dict(state["model"])
    return fresh.eval()


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("problem")
    parser.add_argument("--layers", default="elu-16,tanh-16,sin-16")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--n-trajectories", type=int, default=None, help="dataset size (None: the thesis')")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default=None, help="run folder (training) ")
    parser.add_argument("--model-dir", default=None, help="evaluate this saved model instead of training")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra train config keys (JSON values), e.g. batch_size=4096, lr=0.003")
    parser.add_argument("--n-ref", type=int, default=1000)
    parser.add_argument("--ref-seed", type=int, default=FRESH_SEED)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    problem = get_problem(args.problem)
    result: dict[str, Any] = {"problem": problem.name}
    models: dict[str, torch.nn.Module] = {}
    if args.model_dir:
        models["given"] = load_model(args.model_dir)
        result["model_dir"] = args.model_dir
    else:
        from fhn_automl.learning import train

        config = {"problem": problem.name, "layers": args.layers, "recipe": args.recipe, "steps": args.steps,
                  "threads": 1, "device": "cpu", "data_root": args.data_root,
                  "n_trajectories": args.n_trajectories, "out_dir": args.out, "write_torchscript": False,
                  "val_every": max(1, args.steps // 20)}
        for item in args.set:
            key, _, value = item.partition("=")
            config[key] = parse_value(value)

        def report(metrics: dict[str, Any], _checkpoint: str | None) -> None:
            print(f"step {metrics['step']:>8}  loss {metrics['loss']:.3e}  val {metrics['val_mean_err']:.3e}  "
                  f"lr {metrics['lr']:.2e}  {metrics['train_seconds']:.0f} s", file=sys.stderr, flush=True)

        start = time.perf_counter()
        out = train(config, report)
        result.update({"config": {k: v for k, v in config.items() if k != "data_root"},
                       "wall_s": time.perf_counter() - start, "train_seconds": out.get("train_seconds"),
                       "val_final": out.get("val_mean_err"), "val_best": out.get("best_val_mean_err"),
                       "best_step": out.get("best_step"), "status": out["status"],
                       "dataset": out.get("dataset_dir")})
        run_dir = Path(out["out_dir"])
        history = json.loads((run_dir / METRICS_FILE).read_text())["history"]
        result["curve"] = [(h.get("step"), h.get("val_mean_err"), h.get("train_seconds")) for h in history]
        last = final_model(run_dir)
        if last is not None:
            models["final"] = last
        if out.get("model_dir"):
            models["best"] = load_model(out["model_dir"])

    ics = fresh_initial_conditions(problem, args.n_ref, args.ref_seed)
    times = output_times(problem)
    start = time.perf_counter()
    u_ref, w_ref = dop853_reference(problem, ics)
    result["reference_seconds"] = time.perf_counter() - start
    u_e, w_e = euler_floor(problem, ics)
    result["n_ref"] = args.n_ref
    result["euler_dt0.01_vs_dop853"] = error_report(point_error(u_e, w_e, u_ref, w_ref), ics, problem, times)
    for label, model in models.items():
        u_n, w_n = network_states(model, problem, ics, times)
        result[f"{label}_vs_dop853"] = error_report(point_error(u_n, w_n, u_ref, w_ref), ics, problem, times)
        result[f"{label}_vs_euler"] = float(point_error(u_n, w_n, u_e, w_e).mean())

    print(f"{problem.name}: {args.n_ref} fresh ICs, t = 0..{problem.t_end:g} every {OUTPUT_DT:g}")
    print(f"  Euler dt=0.01 vs DOP853: mean {result['euler_dt0.01_vs_dop853']['mean']:.3e} "
          f"max {result['euler_dt0.01_vs_dop853']['max']:.3e}")
    for label in models:
        r = result[f"{label}_vs_dop853"]
        print(f"  {label:>5} vs DOP853: mean {r['mean']:.3e} max {r['max']:.3e} (vs Euler {result[label + '_vs_euler']:.3e})"
              "; by t " + " ".join(f"{s['mean']:.1e}" for s in r["by_t"]))
        for name, bins in r["by_ic"].items():
            print(f"        by {name}: " + " ".join(f"{b['mean']:.1e}" for b in bins))
        print(f"        worst 5% trajectories hold {100 * r['worst5pct_share_of_total']:.0f}% of the error")
    if "val_final" in result:
        print(f"  trainer val (vs Euler data): final {result['val_final']:.3e}, best {result['val_best']:.3e} "
              f"at step {result['best_step']}; wall {result['wall_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (ValueError, KeyError, FileNotFoundError) as error:  # bad problem / layers / config key / folder
        print(f"accuracy.py: {error}", file=sys.stderr)
        raise SystemExit(2) from None
