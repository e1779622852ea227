"""Search efficiency of multi-objective search (error vs measured latency) on the B_S 252-model grid or
C's 576-model architecture grid (issue 19; not a test).

    nice -n 10 python benchmarks/search_efficiency.py [--problem problem_b_s] [--steps 400] [--val-every 50] [--seeds 5]

Ground truth: the whole grid (layer choices silu-8, silu-32, silu-64, tanh-32, tanh-64, elu-8 at depths 2
and 3, 252 DDNNs; with ``--problem problem_c_code``: silu-8, silu-16, sin-8, tanh-8, tanh-16, sin-16,
elu-8, elu-16 at depths 2 and 3, 576 DDNNs on the thesis code's C box, without the extra data term; seed 0, ``--recipe``: the paper's by default, batch 128 and Adam 1e-3, or fast, batch
1024 and lr 2e-2 cosine) trained packed (``learning.packed.train_pack``, packs of 36) for
``--steps`` steps with a validation every ``--val-every`` steps; every member's validation curve is kept.
Latency: ``search.latency`` (median of timed calls after warm-up, CPU, one thread, eager, batch
``--latency-batch``), one measurement per architecture. The true front is the
non-dominated set of (final validation error, latency) over the grid.

The strategies are then *replayed on those curves* (a tabular benchmark, as NAS-Bench does): a member of
a pack trains exactly as it would alone (``learning.packed``, tested to float tolerance; on a CPU it
draws the same batches), so the error a strategy would see for an architecture at step s is the curve's
value at s. What each strategy decides runs the product's code: ``learning.packed.Halving`` /
``ParetoHalving`` rank and cut the packs; MO-TPE is the search's own ``search.mo_packed.PackSearcher``
(structured space, depth buckets, Optuna TPE with the constraint set through ``Trial.set_constraint``).

* grid + ASHA: the whole grid in packs of 36, in-pack successive halving on the error alone;
* random: architectures drawn uniformly without repeats, trained to the end, until the budget;
* MO-TPE: ``PackSearcher`` (no halving), packs of ``--pack-size``, until the budget;
* MO-TPE + Pareto halving: the same with ``scheduler: moasha`` (MOASHA's rule inside each pack);
* MO-TPE + query phase, MO-TPE + halving + query: the two above with ``search.query_fraction`` (the last
  ``--query-fraction`` of the models chosen for the constrained query, ``search.query_phase``); the two
  above run with ``query_fraction: 0``.

Budget: ``--budget`` (default 20 %) of the exhaustive model-steps, except grid + ASHA, which trains the
grid and spends what halving leaves. Reported per strategy and seed: model-steps (fraction of the
exhaustive), hypervolume of the found front (finished models only) over the true front's, in
normalised objectives (log10 error and latency each scaled to [0, 1] over the grid, reference point
(1.1, 1.1)), and the constrained query "fastest with error <= the grid's 25th-percentile error": the
same architecture as the truth, or within 10 % of its latency (while meeting the bound).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

#: problem -> the architecture grid's layer choices (depths 2 and 3): problem_b_s.yaml's and problem_c.yaml's
GRIDS = {"problem_b_s": ("silu-8", "silu-32", "silu-64", "tanh-32", "tanh-64", "elu-8"),
         "problem_c_code": ("silu-8", "silu-16", "sin-8", "tanh-8", "tanh-16", "sin-16", "elu-8", "elu-16")}


def grid_layers(problem: str) -> list[str]:
    return [",".join(c) for depth in (2, 3) for c in itertools.product(GRIDS[problem], repeat=depth)]


def uptime() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def exhaustive(args: argparse.Namespace, root: Path) -> dict:
    """Train the grid packed; return {layers: {"curve": {step: err}, "final": err}} and the wall."""
    from fhn_automl.learning.packed import plan_packs, train_pack
    from fhn_automl.physics.datasets import ensure_dataset

    data_dir = str(ensure_dataset(args.problem, root=str(root / "data"), n_trajectories=args.n_trajectories,
                                  seed=0, device="cpu"))
    layers = grid_layers(args.problem)
    configs = [{"problem": args.problem, "layers": layer, "seed": 0, "steps": args.steps,
                "val_every": args.val_every, "batch_size": args.batch_size, "recipe": args.recipe, "data_dir": data_dir,
                "device": "cpu", "threads": 1, "val_max_points": 2_000, "write_torchscript": False,
                "out_dir": None} for layer in layers]
    curves: dict[str, dict[int, float]] = {layer: {} for layer in layers}
    started = time.perf_counter()
    for number, members in enumerate(plan_packs(configs, 36)):
        names = [layers[i] for i in members]

        def report(records: dict, _checkpoint: str) -> None:
            for name, record in records.items():
                curves[name][int(record["step"])] = float(record["val_mean_err"])

        train_pack([configs[i] for i in members], report, names=names, out_dir=root / f"pack{number}")
    wall = time.perf_counter() - started
    return {"curves": curves, "wall_s": wall}


def normalise(points: list[tuple[float, float]], bounds: dict) -> list[tuple[float, float]]:
    (e0, e1), (l0, l1) = bounds["log_err"], bounds["latency"]
    return [((math.log10(e) - e0) / (e1 - e0), (lat - l0) / (l1 - l0)) for e, lat in points]


def evaluate(finished: dict[str, float], latency: dict[str, float], truth: dict) -> dict:
    """Hypervolume ratio and the constrained query's answer for the finished models {layers: error}."""
    from fhn_automl.learning.multi_objective import hypervolume_2d

    points = normalise([(finished[k], latency[k]) for k in finished], truth["bounds"])
    hv = hypervolume_2d(points, (1.1, 1.1)) / truth["hv"]
    meeting = [k for k in finished if finished[k] <= truth["bound"]]
    answer = min(meeting, key=lambda k: latency[k], default=None)
    same = answer == truth["answer"]
    within = answer is not None and latency[answer] <= 1.1 * latency[truth["answer"]]
    return {"hv_ratio": hv, "answer": answer, "same_answer": same, "within_10pct": within}


def replay_pack(members: dict[str, str], curves: dict, steps: int, halving) -> tuple[dict[str, float], dict[str, float], int]:
    """One pack ``{member name: layers}`` replayed on the curves: (finished {layers: final error},
    stopped {layers: error when stopped}, model-steps spent)."""
    active = list(members)
    stopped: dict[str, float] = {}
    spent = 0
    last = 0
    for rung in (halving.rungs(steps) if halving is not None else []):
        spent += len(active) * (rung - last)
        last = rung
        contenders = [(i, name, {"val_mean_err": curves[members[name]][rung]}) for i, name in enumerate(active)]
        keep = set(halving.rank(contenders)[:halving.survivors(len(active))])
        for i, name in enumerate(active):
            if i not in keep:
                stopped[members[name]] = curves[members[name]][rung]
        active = [name for i, name in enumerate(active) if i in keep]
    spent += len(active) * (steps - last)
    return {members[name]: curves[members[name]][steps] for name in active}, stopped, spent


def replay_cost(n: int, steps: int, halving) -> int:
    """Model-steps of a pack of ``n`` under ``halving`` (each rung keeps its survivors)."""
    spent, last = 0, 0
    for rung in (halving.rungs(steps) if halving is not None else []):
        spent += n * (rung - last)
        last, n = rung, halving.survivors(n)
    return spent + n * (steps - last)


def grid_asha(curves: dict, args: argparse.Namespace) -> tuple[dict[str, float], int]:
    from fhn_automl.learning.packed import Halving
    from fhn_automl.search.space import Scheduler

    grace = Scheduler(kind="asha", grace_fraction=args.grace_fraction).grace_steps(args.steps, args.val_every)
    halving = Halving(grace_steps=grace, reduction_factor=3)
    finished: dict[str, float] = {}
    spent = 0
    for depth in (2, 3):  # plan_packs groups by depth, 36 a pack
        names = [k for k in curves if len(k.split(",")) == depth]
        for start in range(0, len(names), 36):
            done, _, steps = replay_pack({k: k for k in names[start:start + 36]}, curves, args.steps, halving)
            finished.update(done)
            spent += steps
    return finished, spent


def random_search(curves: dict, args: argparse.Namespace, seed: int, budget: int) -> tuple[dict[str, float], int]:
    names = sorted(curves)
    random.Random(seed).shuffle(names)
    chosen = names[:budget // args.steps]
    return {k: curves[k][args.steps] for k in chosen}, len(chosen) * args.steps


def mo_tpe(curves: dict, latency: dict, args: argparse.Namespace, seed: int, budget: int, pareto: bool,
           bound: float, sampler: str = "tpe", query_fraction: float = 0.0) -> tuple[dict[str, float], int]:
    from fhn_automl.search.mo_packed import PackSearcher, halving_from_pack, pack_halving, packed_mo_template
    from fhn_automl.search.space import parse_search_space

    n_grid = len(grid_layers(args.problem))
    raw = {"problem": args.problem, "kind": "ddnn", "steps": args.steps, "val_every": args.val_every,
           "layers": {"choices": list(GRIDS[args.problem]), "depths": [2, 3]},
           "search": {"algorithm": "multi_objective", "num_samples": n_grid, "seed": seed, "sampler": sampler,
                      "objectives": ["error", "latency"], "constraints": [f"error <= {bound!r}"],
                      "query_fraction": query_fraction},
           "scheduler": {"type": "moasha", "grace_fraction": args.grace_fraction} if pareto else {"type": "fifo"},
           "resources": {"executor": "packed", "pack_size": args.pack_size}}
    space = parse_search_space(raw, Path("search_efficiency.yaml"))
    trials = space.trials("paper")
    template, grid, seeds = packed_mo_template(space, trials)
    # without halving a model costs the full steps: as many models as the budget pays for; with halving
    # packs are asked while the next one's cost (every member cut as early as the rule allows) still fits
    pack_cost = replay_cost(args.pack_size, args.steps, halving_from_pack({"halving": pack_halving(space, template)}))
    n_models = min(n_grid, args.pack_size * (budget // pack_cost)) if pareto else budget // args.steps
    searcher = PackSearcher(space=space, template=template, grid=grid, seeds=seeds, n_models=n_models,
                            pack_size=args.pack_size, halving=pack_halving(space, template), latency_cache=None)
    searcher._latency = _FixedLatency(latency)  # the latencies measured once for the whole benchmark
    finished: dict[str, float] = {}
    spent = 0
    number = 0
    while spent + (pack_cost if pareto else 0) <= budget:
        suggestion = searcher.suggest(f"p{number}")
        if not isinstance(suggestion, dict):
            break
        pack = suggestion["pack"]
        if spent + replay_cost(len(pack["trials"]), args.steps, halving_from_pack(pack)) > budget:
            break  # a pack without halving (the query phase's) costs more than pack_cost: never overspend
        layers_of = {spec["name"]: spec["layers"] for spec in pack["trials"]}
        done, stopped, steps = replay_pack(layers_of, curves, args.steps, halving_from_pack(pack))
        spent += steps
        finished.update(done)
        records = {}
        for name, layers in layers_of.items():
            error = done.get(layers, stopped.get(layers))
            records[name] = {"val_mean_err": error, "latency_ms": latency[layers],
                             "status": "finished" if layers in done else "stopped_early"}
        searcher.on_trial_complete(f"p{number}", {"members": records})
        number += 1
    return finished, spent


class _FixedLatency:
    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def get(self, problem: str, layers: str) -> float:
        return self.values[layers]


GRID_DEFAULTS = {"problem": "problem_b_s", "steps": 400, "val_every": 50, "n_trajectories": 100, "latency_batch": 4096, "recipe": "paper"}


def grid_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill the grid's settings: from the --curves file's recorded args (its curves were trained with them),
    else the defaults; a value given on the command line that disagrees with the file is a named error."""
    recorded = json.loads(Path(args.curves).read_text()).get("args", {}) if args.curves else {}
    for key in (*GRID_DEFAULTS, "batch_size"):
        given, stored = getattr(args, key), recorded.get(key)
        if given is not None and stored is not None and given != stored:
            parser.error(f"--{key.replace('_', '-')} {given}: the curves in {args.curves} were trained with {stored}")
        value = given if given is not None else stored
        if value is None:
            value = GRID_DEFAULTS.get(key)
        setattr(args, key, value)
    args.batch_size = args.batch_size or (128 if args.recipe == "paper" else 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # the grid's settings; with --curves they come from that file (a different value given here is refused)
    parser.add_argument("--problem", choices=sorted(GRIDS), default=None, help="the grid (default problem_b_s)")
    parser.add_argument("--steps", type=int, default=None, help="default 400")
    parser.add_argument("--val-every", type=int, default=None, help="default 50")
    parser.add_argument("--n-trajectories", type=int, default=None, help="default 100")
    parser.add_argument("--latency-batch", type=int, default=None, help="default 4096")
    parser.add_argument("--pack-size", type=int, default=16)
    parser.add_argument("--grace-fraction", type=float, default=0.1,
                        help="the first rung of ASHA and of Pareto halving, as a fraction of the steps (the "
                             "search files' scheduler.grace_fraction; default 0.1, theirs)")
    parser.add_argument("--recipe", choices=("paper", "fast"), default=None,
                        help="the grid's training recipe (default paper: Adam 1e-3, constant lr)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the recipe's (paper 128, fast 1024)")
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--query-fraction", type=float, default=0.5,
                        help="search.query_fraction of the '+ query' strategies (default 0.5, the search "
                             "files'); the plain MO-TPE strategies run with 0")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/search_efficiency.json")
    parser.add_argument("--curves", default=None, help="reuse the curves (and latencies) of an earlier run's JSON")
    parser.add_argument("--remeasure-latency", action="store_true",
                        help="with --curves: measure the latencies again instead of reusing them")
    parser.add_argument("--latency-rounds", type=int, default=1,
                        help="rounds of latency measurement; each architecture keeps its smallest median "
                             "(a load burst inflates a median, nothing deflates it)")
    args = parser.parse_args()
    grid_settings(parser, args)

    import torch

    torch.set_num_threads(1)
    report: dict = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                               f"{os.cpu_count()} CPUs, torch {torch.__version__}",
                    "load_start": uptime(), "args": vars(args)}
    from fhn_automl.physics.problems import get_problem
    from fhn_automl.search.latency import LatencyTarget, measure_latency

    latency = None
    if args.curves:
        previous = json.loads(Path(args.curves).read_text())
        curves = {k: {int(s): v for s, v in c.items()} for k, c in previous["curves"].items()}
        report.update({k: previous[k] for k in ("exhaustive_wall_s",) if k in previous})
        if not args.remeasure_latency:
            latency = previous["latency_ms"]
            report.update({k: previous[k] for k in ("latency_wall_s",) if k in previous})
    else:
        with tempfile.TemporaryDirectory(prefix="fhn_search_eff_") as scratch:
            truth_run = exhaustive(args, Path(scratch))
        curves = truth_run["curves"]
        report["exhaustive_wall_s"] = truth_run["wall_s"]
    if latency is None:
        started = time.perf_counter()
        target = LatencyTarget(batch=args.latency_batch, repeats=15, warmup=3)
        latency = {k: math.inf for k in curves}
        for _ in range(args.latency_rounds):  # round by round, so a load burst hits one round of each
            for k in curves:
                latency[k] = min(latency[k], measure_latency(get_problem(args.problem), k, target))
        report["latency_wall_s"] = time.perf_counter() - started
        report["load_after_latency"] = uptime()
    report["curves"] = curves
    report["latency_ms"] = latency

    from fhn_automl.learning.multi_objective import hypervolume_2d, pareto_front

    finals = {k: c[args.steps] for k, c in curves.items()}
    names = sorted(finals)
    bound = sorted(finals.values())[len(finals) // 4]  # the 25th-percentile error
    errs = [math.log10(finals[k]) for k in names]
    lats = [latency[k] for k in names]
    bounds = {"log_err": (min(errs), max(errs)), "latency": (min(lats), max(lats))}
    front = [names[i] for i in pareto_front([(finals[k], latency[k]) for k in names])]
    truth = {"bounds": bounds, "bound": bound,
             "answer": min((k for k in names if finals[k] <= bound), key=lambda k: latency[k])}
    truth["hv"] = hypervolume_2d(normalise([(finals[k], latency[k]) for k in front], bounds), (1.1, 1.1))
    exhaustive_steps = len(names) * args.steps
    budget = int(args.budget * exhaustive_steps)
    report["truth"] = {"front": front, "bound": bound, "answer": truth["answer"],
                       "answer_latency_ms": latency[truth["answer"]], "answer_error": finals[truth["answer"]],
                       "exhaustive_model_steps": exhaustive_steps, "budget_model_steps": budget}
    print(f"true front: {len(front)} of {len(names)}; 'fastest with error <= {bound:.3e}': {truth['answer']} "
          f"({latency[truth['answer']]:.3f} ms, error {finals[truth['answer']]:.3e})", flush=True)

    runs: dict[str, list[dict]] = {}

    def record(strategy: str, seed: int, finished: dict[str, float], spent: int, seconds: float) -> None:
        result = {"seed": seed, "model_steps": spent, "fraction": spent / exhaustive_steps,
                  "n_finished": len(finished), "decide_seconds": seconds, **evaluate(finished, latency, truth)}
        runs.setdefault(strategy, []).append(result)
        print(f"{strategy:26s} seed {seed}: {spent / exhaustive_steps:6.1%} of the model-steps, HV "
              f"{result['hv_ratio']:.3f}, answer {result['answer']} (same {result['same_answer']}, within 10 % "
              f"{result['within_10pct']})", flush=True)

    t0 = time.perf_counter()
    finished, spent = grid_asha(curves, args)
    record("grid + ASHA (in-pack)", 0, finished, spent, time.perf_counter() - t0)
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        finished, spent = random_search(curves, args, seed, budget)
        record("random", seed, finished, spent, time.perf_counter() - t0)
        for name, pareto, fraction in (("MO-TPE", False, 0.0), ("MO-TPE + Pareto halving", True, 0.0),
                                       ("MO-TPE + query phase", False, args.query_fraction),
                                       ("MO-TPE + halving + query", True, args.query_fraction)):
            t0 = time.perf_counter()
            finished, spent = mo_tpe(curves, latency, args, seed, budget, pareto, bound, query_fraction=fraction)
            record(name, seed, finished, spent, time.perf_counter() - t0)
    report["runs"] = runs
    report["summary"] = {
        name: {"mean_fraction": statistics.mean(r["fraction"] for r in rs),
               "mean_hv_ratio": statistics.mean(r["hv_ratio"] for r in rs),
               "min_hv_ratio": min(r["hv_ratio"] for r in rs),
               "same_answer": f"{sum(r['same_answer'] for r in rs)}/{len(rs)}",
               "within_10pct": f"{sum(r['within_10pct'] for r in rs)}/{len(rs)}"} for name, rs in runs.items()}
    report["load_end"] = uptime()
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
