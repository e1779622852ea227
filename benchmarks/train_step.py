"""Training-speed benchmarks of the learning layer (not tests; numbers go to benchmarks/RESULTS.md).

    python benchmarks/train_step.py steps  [--threads 1] [--device cpu] [--repeats 3]
        steps/s of (silu-32, tanh-32, silu-32), batch 128, for each kind; PINN / DDNN step-cost ratio
        with the forward tangent (what training uses) and with reverse-mode autograd.grad (reference).
    python benchmarks/train_step.py budget --recipe fast|paper [--seconds 300] [--batch-size B]
        how low the B_S validation mean error gets in a wall-clock budget on one thread: the step count
        is calibrated from a short run so the schedule (cosine / plateau) spans the whole budget.

Step timing uses the same objective, sampler and optimiser as ``train``: random batches drawn with
torch.randint from device-resident data, fused Adam where available.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fhn_automl.learning.architecture import parse_layers
from fhn_automl.learning.losses import (BoxSampler, DataTerm, InitialConditionTerm, LossTerm, PhysicsTerm,
                                        TrainingObjective, input_box, physics_residual_autograd)
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.recipes import get_recipe
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import get_problem

LAYERS = "silu-32,tanh-32,silu-32"


class AutogradPhysicsTerm(LossTerm):
    """The physics term with d/dt from reverse-mode autograd.grad(create_graph=True): the reference
    cost (evaluated in its own pass, as reverse mode needs)."""

    def __init__(self, name, problem, sampler, *, weight, batch_size):
        super().__init__(name, weight, batch_size)
        self.problem = problem
        self.sampler = sampler

    def draw(self, generator):
        return (self.sampler.sample(self.batch_size, generator),)

    def evaluate(self, model, batch):
        return physics_residual_autograd(model, batch[0], self.problem).square().sum(dim=1).mean()


def _objective(kind: str, batch: int, device: torch.device, *, autograd: bool = False) -> TrainingObjective:
    problem = get_problem("problem_b_c_iter" if kind == "iter" else "problem_b_s")
    spec = ModelSpec(problem=problem.name, kind=kind, layers=parse_layers(LAYERS), inputs=problem.inputs,
                     outputs=problem.outputs, ranges=problem.ranges)
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    n = 2_500_000  # the size of the B_S training set (5,000 trajectories x 501 states)
    x = BoxSampler(*input_box(problem, problem.inputs), device).sample(n, torch.Generator(device).manual_seed(1))
    terms: list[LossTerm] = [DataTerm("data", x, torch.randn(n, 2, device=device), weight=1.0, batch_size=batch)]
    if kind == "pinn":
        domain = BoxSampler(*input_box(problem, problem.inputs), device)
        term_class = AutogradPhysicsTerm if autograd else PhysicsTerm
        terms.append(term_class("physics", problem, domain, weight=1.0, batch_size=batch))
        terms.append(InitialConditionTerm("ic", problem, problem.inputs, domain, weight=1.0,
                                          batch_size=max(1, batch // 4)))
    return TrainingObjective(model, terms).to(device)


def time_steps(objective: TrainingObjective, device: torch.device, n_steps: int, warmup: int = 300) -> float:
    """CPU seconds per optimisation step (draw, loss, backward, fused Adam).

    Process CPU time, not wall time, on the CPU: the benchmark machine is shared, and a busy
    neighbour stretches wall time 2-3x (FACTS.md) while CPU time stays close to the real cost.
    On a GPU it is wall time after a synchronise."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    optimizer = get_recipe("fast").make_optimizer(objective.model.parameters(), 1e-3, device)
    generator = torch.Generator(device=device).manual_seed(0)
    running = torch.zeros(len(objective.terms) + 1, device=device)

    def step() -> None:
        total, values = objective(objective.draw(generator))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        running.add_(torch.cat((total.detach().reshape(1), values)))

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = clock()
    for _ in range(n_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - started) / n_steps


def run_steps(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    rows = {}
    cases = [("ddnn", False), ("pinn", False), ("pinn", True), ("iter", False)]
    for repeat in range(args.repeats):
        for kind, autograd in cases:  # interleaved, so load swings hit every case alike
            label = f"{kind}{'-autograd' if autograd else ''}"
            seconds = time_steps(_objective(kind, args.batch_size, device, autograd=autograd), device, args.n_steps)
            rows.setdefault(label, []).append(seconds)
    result = {label: {"ms_per_step": 1e3 * statistics.median(v), "steps_per_s": 1.0 / statistics.median(v),
                      "all_ms": [round(1e3 * s, 4) for s in v]} for label, v in rows.items()}
    result["pinn_over_ddnn"] = result["pinn"]["ms_per_step"] / result["ddnn"]["ms_per_step"]
    result["pinn_autograd_over_ddnn"] = result["pinn-autograd"]["ms_per_step"] / result["ddnn"]["ms_per_step"]
    return result


def run_budget(args: argparse.Namespace) -> dict:
    from fhn_automl.learning import train

    base = {"problem": "problem_b_s", "layers": LAYERS, "recipe": args.recipe, "device": args.device,
            "threads": args.threads, "data_dir": args.data_dir, "seed": args.seed}
    if args.batch_size:
        base["batch_size"] = args.batch_size
    # CPU seconds per step in the real loop (validation included), read between the 2nd and 4th of four
    # validations of a calibration run, so start-up, data loading and first-call warm-ups fall outside
    marks: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        train({**base, "steps": args.calibration_steps, "val_every": args.calibration_steps // 4,
               "out_dir": str(Path(scratch) / "calibration")},
              lambda m, _: marks.append((m["step"], time.process_time())))
    (step_a, cpu_a), (step_b, cpu_b) = marks[1], marks[3]
    seconds_per_step = (cpu_b - cpu_a) / (step_b - step_a)
    steps = max(1_000, int(args.seconds / seconds_per_step))
    val_every = max(1, steps // 30)
    curve = []
    started = time.perf_counter()
    started_cpu = time.process_time()
    out_dir = args.out or tempfile.mkdtemp(prefix=f"bench_{args.recipe}_")
    result = train({**base, "steps": steps, "val_every": val_every, "out_dir": out_dir},
                   lambda m, _: curve.append((m["step"], round(time.perf_counter() - started, 1),
                                              m["val_mean_err"])))
    return {"recipe": args.recipe, "batch_size": args.batch_size or get_recipe(args.recipe).batch_size,
            "calibrated_cpu_ms_per_step": 1e3 * seconds_per_step, "steps": steps,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "cpu_seconds": round(time.process_time() - started_cpu, 1), "best_val_mean_err": result["best_val_mean_err"],
            "best_val_max_err": result["best_val_max_err"], "final_val_mean_err": result["val_mean_err"],
            "curve_step_seconds_err": curve, "model_dir": result["model_dir"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    steps = sub.add_parser("steps")
    steps.add_argument("--batch-size", type=int, default=128)
    steps.add_argument("--n-steps", type=int, default=2_000)
    steps.add_argument("--repeats", type=int, default=3)
    budget = sub.add_parser("budget")
    budget.add_argument("--recipe", choices=("fast", "paper"), required=True)
    budget.add_argument("--seconds", type=float, default=300.0)
    budget.add_argument("--batch-size", type=int, default=None)
    budget.add_argument("--calibration-steps", type=int, default=4_000)
    budget.add_argument("--data-dir", required=True, help="a B_S dataset folder (physics.datasets.ensure_dataset)")
    budget.add_argument("--seed", type=int, default=0)
    budget.add_argument("--out", default=None)
    for sp in (steps, budget):
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run_steps(args) if args.command == "steps" else run_budget(args)
    result["environment"] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                             "device": args.device, "python": platform.python_version(),
                             "machine": platform.processor() or platform.machine(), "numpy": np.__version__}
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
