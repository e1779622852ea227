"""What a search will cost, for ``--dry-run``: model-steps, and a time estimated from steps/s measured
on this machine.

The measurement trains, for about ``seconds`` each, up to three of the search's own trials (the
cheapest, the median and the dearest by multiply-adds x batch size) with the learning layer's
network, fused Adam and a data loss on random inputs, one thread, on the CPU: the training step as
``train`` runs it, without its validation passes, reports and the trial's start-up (``FACTS``: ~1.5 s
per trial for the function executor, 10-20 s for Ray Train), so the estimate is a lower bound, and
an upper bound on the steps (ASHA and in-pack halving stop trials early). The seconds per step of
every other trial come from a straight line through the measured (cost, seconds per step) points,
kept between the measured extremes.
PINN steps cost ~2-3x a data step (``benchmarks/train_step.py``); they are measured as data steps
and counted apart, so the estimate says how many it under-counts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fhn_automl.learning.architecture import count_macs, parse_layers
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.search.space import Resources, TrialSpec


@dataclass(frozen=True)
class CostEstimate:
    """Model-steps and time of a list of trials on this machine."""

    model_steps: int
    pinn_steps: int
    measured: tuple[tuple[str, int, float], ...]   # (layers, batch size, steps/s) of the trials timed
    compute_seconds: float                           # sum over trials of steps x seconds per step
    concurrent: int                                  # trials at once on this machine's CPUs
    wall_seconds: float                              # compute_seconds / concurrent

    def lines(self) -> list[str]:
        rates = ", ".join(f"{layers} batch {batch}: {rate:,.0f} steps/s" for layers, batch, rate in self.measured)
        out = [f"cost: {self.model_steps:,} model-steps (an upper bound: early stopping cuts it)",
               f"  measured here (1 CPU thread, training step only): {rates}",
               f"  estimated training time: {_duration(self.compute_seconds)} of compute, ~{_duration(self.wall_seconds)}"
               f" on this machine at {self.concurrent} trial(s) at once, plus each trial's start-up"
               " (~1.5 s function executor, 10-20 s Ray Train) and its validations"]
        if self.pinn_steps:
            out.append(f"  {self.pinn_steps:,} of the steps are PINN steps, timed as data steps: they cost ~2-3x more")
        return out


def _cost(trial: TrialSpec) -> float:
    problem = trial.resolved_problem
    return float(count_macs(parse_layers(trial.layers), len(problem.inputs), len(problem.outputs)) * trial.batch_size)


def measure_step_rate(trial: TrialSpec, *, seconds: float = 0.4) -> float:
    """Training steps per second of ``trial``'s network at its batch size (data loss, fused Adam, CPU)."""
    import torch

    from fhn_automl.learning.mlp import build_model

    problem = trial.resolved_problem
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a trial trains (one thread per trial)
    try:
        torch.manual_seed(0)
        spec = ModelSpec(problem=problem.key, kind="iter" if problem.kind == "iterator" else "ddnn",
                         layers=parse_layers(trial.layers), inputs=problem.inputs, outputs=problem.outputs,
                         ranges=problem.ranges)
        model = build_model(spec)
        try:
            optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        except (RuntimeError, TypeError):  # fused Adam needs a recent torch on CPU
            optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(trial.batch_size, len(problem.inputs))
        y = torch.rand(trial.batch_size, len(problem.outputs))

        def step() -> None:
            optimiser.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimiser.step()

        for _ in range(5):
            step()
        steps, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds or steps < 5:
            step()
            steps += 1
        return steps / elapsed
    finally:
        torch.set_num_threads(threads)


def estimate_cost(trials: Sequence[TrialSpec], resources: Resources, *, seconds: float = 0.4,
                  cpus: int | None = None) -> CostEstimate:
    """Model-steps of ``trials`` and their time on this machine (see the module docstring)."""
    if not trials:
        return CostEstimate(0, 0, (), 0.0, 1, 0.0)
    costs = [_cost(t) for t in trials]
    order = sorted(range(len(trials)), key=lambda i: costs[i])
    picks = sorted({order[0], order[len(order) // 2], order[-1]}, key=lambda i: costs[i])
    measured = [(i, measure_step_rate(trials[i], seconds=seconds)) for i in picks]
    line = _fit([(costs[i], 1.0 / rate) for i, rate in measured])
    # the cheapest and the dearest trials are measured, so the line is only read between them; kept
    # inside the measured seconds per step (a least-squares line can overshoot at its ends)
    floor, ceiling = min(1.0 / rate for _, rate in measured), max(1.0 / rate for _, rate in measured)
    compute = sum(t.steps * min(ceiling, max(floor, line(c))) for t, c in zip(trials, costs))
    per_trial_cpus = max(1.0, resources.workers * resources.cpus_per_worker)
    concurrent = max(1, min(len(trials), int((cpus or os.cpu_count() or 1) // per_trial_cpus)))
    return CostEstimate(model_steps=sum(t.steps for t in trials),
                        pinn_steps=sum(t.steps for t in trials if t.kind == "pinn"),
                        measured=tuple((trials[i].layers, trials[i].batch_size, rate) for i, rate in measured),
                        compute_seconds=compute, concurrent=concurrent, wall_seconds=compute / concurrent)


def _fit(points: list[tuple[float, float]]):
    """Least-squares line through (cost, seconds per step); a constant for one distinct cost."""
    xs = [x for x, _ in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0 or not math.isfinite(spread):
        return lambda cost: mean_y
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return lambda cost: mean_y + slope * (cost - mean_x)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["CostEstimate", "estimate_cost", "measure_step_rate"]
