"""Packed training vs one model per run on the B_S 252-model grid (issue 10; not a test).

    python benchmarks/packed.py [--steps 300] [--pack-sizes 36,252] [--single-every 1] [--recipe paper]
    python benchmarks/packed.py --interleave --pack-sizes 36 --single-every 6   # load-fair pairing
    python benchmarks/packed.py --device cuda --interleave --pack-sizes 252 --single-every 21  # GPU host
    python benchmarks/packed.py --executors packed,function,train --subset 14 --steps 500 --mirror
    python benchmarks/packed.py --executors packed,function --subset-for packed=252 --subset-for function=42 \
        --bench-pack-size 36 --steps 500 --mirror   # the whole grid packed vs a 1/6 share one per trial

The grid: layer choices silu-8, silu-32, silu-64, tanh-32, tanh-64, elu-8 at depths 2 and 3, every
ordered combination with repetition (6^2 + 6^3 = 252 DDNNs), batch 128, the same step budget for all,
validation at the end only (plus the final whole-set validation ``train`` does), one thread.

Measured, in one process, one after the other on the same data:

* ``activation modes``: one pack's step time with each way of applying per-member activations;
* ``packed``: ``learning.packed.train_pack`` over the packs ``plan_packs`` makes for each pack size;
* ``single``: ``learning.train`` once per model in this process (every ``--single-every``-th model,
  scaled up to 252; half of them before the packs, half after, so load drift hits both alike): the
  lower bound of one-model-per-trial, with no process or Ray start-up at all.

Every figure counts all of a run's work (data loading, set-up, validation, saving), not only the steps.
The Tune ``function`` and Ray Train executors add their per-trial start-up on top of ``single``; the
output extrapolates them from the start-up measured in RESULTS.md ("Search orchestration overhead"),
which this script does not re-measure. Results: benchmarks/RESULTS.md ("Packed training").

``--executors``: real searches instead (``search.runner.run_search`` on an embedded local Ray), one per
executor over the SAME ``--subset`` of the grid (N models, depths 2 and 3 in the grid's 1:6 mix),
each with its own scratch MLflow store and Tune storage, no post-stage, as many trials at once as the
2-core plan allows (``--max-concurrent``). Ray is shut down after each search so each starts its own
and its start-up (``ray.init``) is timed apart. ``--mirror`` runs the list and then back (A B C B A),
so executors run twice see the load on both sides of the others. Measured: each search's wall (its
whole ``run_search`` call, the dataset already built), model-steps/s = N x steps / wall. Scaled, not
measured: 252 models = Ray start-up + (wall - Ray start-up) x 252 / N (linear in trials; for
``packed`` linear in packs of the subset's ``--bench-pack-size``, which overstates the cost of the
larger packs a whole grid would get), and the kinder ``scaled_fit_only``: every cost outside Tune's
fit counted once. ``--subset-for EXECUTOR=N`` gives one executor its own number of models (e.g. the
whole grid packed, a 1/6 share of it one model per trial); then compare model-steps/s, not walls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from fhn_automl.learning import train
from fhn_automl.learning.packed import ACTIVATION_MODES, plan_packs, train_pack
from fhn_automl.physics.datasets import ensure_dataset

CHOICES = ("silu-8", "silu-32", "silu-64", "tanh-32", "tanh-64", "elu-8")
#: Per-trial start-up + tear-down measured in RESULTS.md (loaded 2-core machine, 2 trials at a time):
#: Tune function executor 3.3-4.5 s, Ray Train executor 25.7-42.7 s.
FUNCTION_STARTUP_S = 3.3
TRAIN_STARTUP_S = 25.7


def grid(steps: int, recipe: str, data_dir: str, out_root: Path, device: str = "cpu") -> list[dict]:
    layers = [",".join(combo) for depth in (2, 3) for combo in itertools.product(CHOICES, repeat=depth)]
    return [{"problem": "problem_b_s", "layers": layer, "seed": index, "steps": steps, "val_every": steps,
             "batch_size": 128, "recipe": recipe, "data_dir": data_dir, "device": device, "threads": 1,
             "val_max_points": 2_000, "write_torchscript": False, "out_dir": str(out_root / f"single_{index}")}
            for index, layer in enumerate(layers)]


def train_one(config: dict) -> tuple[float, float]:
    """(wall seconds of the whole ``train`` call, seconds of its step loop)."""
    started = time.perf_counter()
    result = train(config)
    assert result["status"] == "finished"
    return time.perf_counter() - started, result["train_seconds"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def activation_modes(configs: list[dict], steps: int, out_root: Path, draw_ahead, size: int = 36) -> dict[str, float]:
    """ms per pack step of the depth-3 grid's last ``size``-model pack, for each activation mode."""
    pack = plan_packs(configs, size)[-1]
    members = [{**configs[i], "out_dir": None, "steps": steps, "val_every": steps} for i in pack]
    out = {}
    for mode in ACTIVATION_MODES:
        result = train_pack(members, out_dir=out_root / f"mode_{mode}", activation_mode=mode, draw_ahead=draw_ahead)
        seconds = max(m["train_seconds"] for m in result["members"].values())
        out[mode] = 1e3 * seconds / steps
    return out


def interleaved(report: dict, configs: list[dict], args: argparse.Namespace, root: Path) -> None:
    """Packs of the first ``--pack-sizes`` entry, each followed by its share of the one-model runs, so
    the two see the same machine load even when it swings (a shared machine)."""
    size = int(args.pack_sizes.split(",")[0])
    packs = plan_packs(configs, size)
    chosen = configs[:: args.single_every]
    share = [chosen[k::len(packs)] for k in range(len(packs))]
    pack_wall = pack_loop = single_wall = single_loop = 0.0
    for number, (pack, singles) in enumerate(zip(packs, share)):
        started = time.perf_counter()
        result = train_pack([{**configs[i], "out_dir": None} for i in pack], out_dir=root / f"il_{number}",
                            activation_mode=args.activation_mode, draw_ahead=args.draw_ahead)
        pack_wall += time.perf_counter() - started
        pack_loop += max(m["train_seconds"] for m in result["members"].values())
        for wall, loop in (train_one(config) for config in singles):
            single_wall += wall
            single_loop += loop
    scale = len(configs) / len(chosen)
    work = len(configs) * args.steps
    report["interleaved"] = {
        "pack_size": size, "packs": len(packs), "single_models_run": len(chosen),
        "activation_mode": args.activation_mode, "draw_ahead": args.draw_ahead,
        "packed_wall_s": pack_wall, "packed_model_steps_per_s": work / pack_wall,
        "packed_loop_model_steps_per_s": work / pack_loop,
        "single_wall_s_252": single_wall * scale, "single_model_steps_per_s": work / (single_wall * scale),
        "single_loop_model_steps_per_s": work / (single_loop * scale),
        "ratio": single_wall * scale / pack_wall, "ratio_step_loops": single_loop * scale / pack_loop}
    report["uptime_end"] = uptime()


def subset(configs: list[dict], n: int) -> list[dict]:
    """``n`` models of the grid, each depth in its share of the grid (1:6 for depths 2:3), drawn at
    random (fixed seed) within a depth: a plain stride would repeat the last layer (6-cycles)."""
    if not 1 <= n <= len(configs):
        raise SystemExit(f"--subset: must be 1..{len(configs)}, got {n}")
    by_depth: dict[int, list[int]] = {}
    for index, config in enumerate(configs):
        by_depth.setdefault(config["layers"].count(",") + 1, []).append(index)
    rng = random.Random(0)
    picked = []
    for depth, indices in sorted(by_depth.items()):
        share = max(1, round(n * len(indices) / len(configs)))
        picked += rng.sample(indices, min(share, len(indices)))
    return [configs[i] for i in sorted(picked)]


SEARCH_FILE = """\
description: benchmarks/packed.py --executors, a subset of the B_S architecture grid
problem: problem_b_s
kind: ddnn
batch_size: 128
recipe: {recipe}
steps: {steps}
val_every: {steps}
n_trajectories: {n_trajectories}
layers:
  sequences: {sequences}
search: {{algorithm: grid, metric: val_mean_err}}
scheduler: {{type: fifo}}
resources: {{workers: 1, cpus_per_worker: 1, executor: {executor}{pack}}}
"""


def executor_searches(report: dict, configs: list[dict], args: argparse.Namespace, root: Path) -> None:
    """One real search per executor over the same subset of the grid; see the module docstring."""
    import ray

    from fhn_automl.search.options import SearchOptions
    from fhn_automl.search.runner import build_datasets, run_search
    from fhn_automl.search.space import load_search_space

    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    order = executors + (executors[-2::-1] if args.mirror else [])
    sizes = {executor: args.subset for executor in executors}
    for item in args.subset_for:
        executor, _, n = item.partition("=")
        if executor not in sizes or not n.isdigit():
            raise SystemExit(f"--subset-for: expected EXECUTOR=N with EXECUTOR one of {executors}, got {item!r}")
        sizes[executor] = int(n)
    chosen_for = {executor: subset(configs, n) for executor, n in sizes.items()}
    data_root = root / "search_data"
    report["subsets"] = {executor: {"n": len(chosen), "depth_2": sum(c["layers"].count(",") == 1 for c in chosen),
                                    "layers": [c["layers"] for c in chosen]}
                         for executor, chosen in chosen_for.items()}
    report["order"] = order
    report["bench_pack_size"] = args.bench_pack_size
    runs = []
    for number, executor in enumerate(order):
        chosen = chosen_for[executor]
        sequences = "[" + ", ".join(f'"{c["layers"]}"' for c in chosen) + "]"
        folder = root / f"search_{number}_{executor}"
        folder.mkdir()
        pack = f", pack_size: {args.bench_pack_size}" if executor == "packed" else ""
        path = folder / f"bench_b_s_{executor}.yaml"
        path.write_text(SEARCH_FILE.format(recipe=args.recipe, steps=args.steps, n_trajectories=args.n_trajectories,
                                           sequences=sequences, executor=executor, pack=pack))
        space = load_search_space(path)
        budget = space.budget("paper")
        if number == 0:  # one B_S dataset whatever the subset: built once, before any clock starts
            build_datasets(space.select_trials(budget, None)[:1], str(data_root))
        options = SearchOptions(space=space, budget=budget, storage=str(folder / "ray"),
                                tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", data_root=str(data_root),
                                max_concurrent=args.max_concurrent, quiet=True)
        before = uptime()
        started = time.perf_counter()
        summary = run_search(options)
        wall = time.perf_counter() - started
        t0 = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - t0
        statuses = sorted(summary.statuses.values())
        ray_init = summary.timings.get("ray_init_seconds", 0.0)
        fit = summary.timings.get("tune_fit_seconds", wall)
        work = len(chosen) * args.steps
        run = {"executor": executor, "models": len(chosen), "wall_s": wall, "ray_init_s": ray_init,
               "ray_shutdown_s": shutdown, "tune_fit_s": fit, "timings": summary.timings, "statuses": statuses,
               "interrupted": summary.interrupted,
               "model_steps_per_s": work / wall, "model_steps_per_s_without_ray_init": work / (wall - ray_init),
               "scaled_wall_s_252": ray_init + (wall - ray_init) * len(configs) / len(chosen),
               # scaled with every once-per-search cost outside Tune's fit (Ray start-up, MLflow store,
               # dataset checks) counted once: the kinder scaling for an executor run on fewer models
               "scaled_fit_only_wall_s_252": (wall - fit) + fit * len(configs) / len(chosen),
               "uptime_before": before, "uptime_after": uptime()}
        run["scaled_model_steps_per_s_252"] = len(configs) * args.steps / run["scaled_wall_s_252"]
        run["scaled_fit_only_model_steps_per_s_252"] = len(configs) * args.steps / run["scaled_fit_only_wall_s_252"]
        runs.append(run)
        print(json.dumps(run, default=str), flush=True)
        if summary.interrupted or any(s != "finished" for s in statuses):
            print(f"WARNING: {executor} search did not finish every trial: {statuses}", flush=True)
    report["searches"] = runs
    means = {}
    for executor in executors:
        mine = [r for r in runs if r["executor"] == executor]
        means[executor] = {key: sum(r[key] for r in mine) / len(mine)
                           for key in ("wall_s", "ray_init_s", "model_steps_per_s",
                                       "model_steps_per_s_without_ray_init", "scaled_wall_s_252",
                                       "scaled_fit_only_model_steps_per_s_252")}
        means[executor]["runs"] = len(mine)
    report["means"] = means
    if "packed" in means:
        # model-steps/s is the fair figure when the executors ran different numbers of models
        report["packed_model_steps_per_s_over"] = {e: means["packed"]["model_steps_per_s"] / m["model_steps_per_s"]
                                                   for e, m in means.items()}
        report["ratios_vs_packed_wall"] = {e: m["wall_s"] / means["packed"]["wall_s"] for e, m in means.items()}
        report["ratios_vs_packed_without_ray_init"] = {
            e: (m["wall_s"] - m["ray_init_s"]) / (means["packed"]["wall_s"] - means["packed"]["ray_init_s"])
            for e, m in means.items()}
    report["uptime_end"] = uptime()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pack-sizes", default="36,252")
    parser.add_argument("--single-every", type=int, default=1, help="train every k-th model alone (then scale)")
    parser.add_argument("--recipe", default="paper")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the in-process packs and one-model runs train (cuda: a GPU host)")
    parser.add_argument("--n-trajectories", type=int, default=400)
    parser.add_argument("--mode-steps", type=int, default=50)
    parser.add_argument("--mode-pack-size", type=int, default=0,
                        help="time the activation modes on a pack of this size (also with --interleave)")
    parser.add_argument("--activation-mode", choices=(*ACTIVATION_MODES, "auto", "best"), default="auto",
                        help="how the packs apply per-member activations (learning.packed; auto: its default "
                             "for the device); best: the fastest "
                             "of the timed modes (times them first, on a --mode-pack-size pack, default 36)")
    parser.add_argument("--draw-ahead", type=lambda v: v if v == "auto" else int(v), default="auto",
                        help="steps of batches each pack member draws at once (learning.packed.train_pack)")
    parser.add_argument("--interleave", action="store_true",
                        help="alternate each pack (first --pack-sizes entry) with its share of the one-model runs")
    parser.add_argument("--executors", default=None,
                        help="e.g. packed,function,train: real searches on a local Ray, one per executor")
    parser.add_argument("--subset", type=int, default=14, help="--executors: models of the grid (spread over it)")
    parser.add_argument("--subset-for", action="append", default=[], metavar="EXECUTOR=N",
                        help="--executors: another number of models for one executor, e.g. packed=252 function=42 "
                             "(compare model-steps/s then, not walls)")
    parser.add_argument("--bench-pack-size", type=int, default=6, help="--executors: pack_size of the packed search")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="--executors: trials at once (default: what the 2-core plan allows)")
    parser.add_argument("--mirror", action="store_true", help="--executors: run the list, then back (A B C B A)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here")  # exit 1: asked for, cannot run
    if args.device == "cuda" and args.executors:
        raise SystemExit("--device cuda: only the in-process comparison (not --executors) runs on a GPU")
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="fhn_packed_bench_"))
    data_dir = str(ensure_dataset("problem_b_s", root=str(root / "data"), n_trajectories=args.n_trajectories,
                                  seed=0, device="cpu"))
    configs = grid(args.steps, args.recipe, data_dir, root, args.device)
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if args.device == "cuda" else ""
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
                               f"torch {torch.__version__}{gpu}", "device": args.device,
                    "uptime_start": uptime(), "models": len(configs), "steps": args.steps, "recipe": args.recipe}
    print(report, flush=True)

    if args.executors:
        executor_searches(report, configs, args, root)
        print(json.dumps(report, indent=2, default=str))
        return

    if not args.interleave or args.mode_pack_size or args.activation_mode == "best":
        size = args.mode_pack_size or 36
        report["activation_mode_ms_per_step"] = activation_modes(configs, args.mode_steps, root, args.draw_ahead, size)
        print(f"activation modes (ms / step of a {size}-model depth-3 pack, draw_ahead {args.draw_ahead}):",
              report["activation_mode_ms_per_step"], flush=True)
        if args.activation_mode == "best":
            args.activation_mode = min(report["activation_mode_ms_per_step"], key=report["activation_mode_ms_per_step"].get)
            print(f"activation mode for the packs: {args.activation_mode} (fastest)", flush=True)

    if args.interleave:
        interleaved(report, configs, args, root)
        print(json.dumps(report, indent=2, default=str))
        return

    # one-model runs in two halves, before and after the packs, so a change of machine load hits both alike
    chosen = configs[:: args.single_every]
    single_runs = [train_one(config) for config in chosen[0::2]]

    packed = {}
    for size in (int(s) for s in args.pack_sizes.split(",")):
        packs = plan_packs(configs, size)
        started = time.perf_counter()
        loop = 0.0
        for number, pack in enumerate(packs):
            members = [{**configs[i], "out_dir": None} for i in pack]
            result = train_pack(members, out_dir=root / f"pack_{size}_{number}", activation_mode=args.activation_mode,
                                draw_ahead=args.draw_ahead)
            assert all(m["status"] == "finished" for m in result["members"].values())
            loop += max(m["train_seconds"] for m in result["members"].values())
        wall = time.perf_counter() - started
        packed[size] = {"packs": len(packs), "wall_s": wall, "model_steps_per_s": len(configs) * args.steps / wall,
                        "step_loop_s": loop, "loop_model_steps_per_s": len(configs) * args.steps / loop}
        print(f"packed, pack size {size} ({len(packs)} packs): {wall:.1f} s, "
              f"{packed[size]['model_steps_per_s']:.0f} model-steps/s; step loop {loop:.1f} s, "
              f"{packed[size]['loop_model_steps_per_s']:.0f} model-steps/s", flush=True)
    report["packed"] = packed
    report["uptime_after_packed"] = uptime()

    single_runs += [train_one(config) for config in chosen[1::2]]
    measured = sum(wall for wall, _ in single_runs)
    loop = sum(seconds for _, seconds in single_runs)
    scale = len(configs) / len(chosen)
    wall = measured * scale
    single = {"models_run": len(chosen), "measured_s": measured, "wall_s_252": wall,
              "model_steps_per_s": len(configs) * args.steps / wall, "per_model_s": measured / len(chosen),
              "step_loop_s_252": loop * scale, "loop_model_steps_per_s": len(configs) * args.steps / (loop * scale)}
    report["single"] = single
    print(f"single, in-process loop ({len(chosen)} models, scaled to 252): {wall:.1f} s, "
          f"{single['model_steps_per_s']:.0f} model-steps/s", flush=True)
    for name, startup in (("function", FUNCTION_STARTUP_S), ("train", TRAIN_STARTUP_S)):
        # per core, like the other figures: each trial's work plus its start-up (RESULTS.md), one after
        # the other (two at a time on two cores halves the wall time, as two packs side by side would)
        per_trial = single["per_model_s"] + startup
        extrapolated = len(configs) * per_trial
        report[f"{name}_executor_extrapolated"] = {"wall_s_252": extrapolated,
                                                   "model_steps_per_s": len(configs) * args.steps / extrapolated}
    report["uptime_end"] = uptime()
    best = max(packed.values(), key=lambda p: p["model_steps_per_s"])
    report["ratio_packed_vs_single"] = best["model_steps_per_s"] / single["model_steps_per_s"]
    report["ratio_step_loops"] = (max(p["loop_model_steps_per_s"] for p in packed.values())
                                  / single["loop_model_steps_per_s"])
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
