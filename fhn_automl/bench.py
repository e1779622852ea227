"""python -m fhn_automl.bench: surrogates against the Euler solver on the thesis workload, at matched accuracy.

Thesis workload (4.4, Table 11): 16,000,000 initial conditions, Euler dt = 0.1 to t = 10 (the CuPy
kernel on a GPU, numba on a CPU), the networks evaluated once per time unit; ``--n`` scales it down
for a CPU. Both sides: warm-up, repetitions, median; host-device transfers excluded on a GPU (inputs
and outputs stay on the device), none on a CPU. Errors of both sides against a DOP853 reference on
``--n-ref`` ICs; Euler at several dt gives the work-precision curve on which each surrogate's
speed-up is read at its own error.

Surrogates: ``--model-dir`` folders (spec.json + weights.pt), or ``--registered`` (the problem's
registered models of ``--alias``, default ``pareto``, in the MLflow registry), else the thesis' reference architecture untrained (timing
only; its error is reported but meaningless).

``--sweep`` runs the inference sweep instead (thesis Figures 39-40, Tables 12-13): untrained SiLU
networks of ``--widths`` x ``--depths`` (or ``search_spaces/inference_sweep.yaml``) timed per backend.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from fhn_automl._cli import comma_list, device_name, non_negative_int, positive_float, positive_int
from fhn_automl.learning.architecture import format_layers
from fhn_automl.learning.untrained import untrained_model
from fhn_automl.physics.problems import PROBLEM_CHOICES, Problem, UnknownProblemError, get_problem, problem_name
from fhn_automl.post.errors import PostStageError
from fhn_automl.post.integrity import verify_model_files
from fhn_automl.post.registry import download_version_files, front_versions
from fhn_automl.post.runs import resolve_tracking_uri
from fhn_automl.post.settings import DEFAULT_BEAT_DTS, DEFAULT_EULER_DTS
from fhn_automl.post.staging import staged_folder
from fhn_automl.post.timing import pin_cpu_threads
from fhn_automl.search.tracking_tags import LAYERS_TAG

REFERENCE_ARCHITECTURE = "silu-32,tanh-32,silu-32"
#: compile backends, as fhn_automl.post.compile names them (kept here so --help needs no torch import)
BACKENDS = ("auto", "tensorrt", "compile", "eager", "cudagraph", "compile-cudagraph")


#: ``--backend``: one of :data:`BACKENDS` or a comma-separated list of them
backend_list = comma_list(BACKENDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="problem_b_s", choices=PROBLEM_CHOICES,
                        help="problem whose workload and reference are used (default problem_b_s); a beat problem (tp06_beat, ms_beat, beat:MODEL_FILE?...) gets the verdict against its cell model's solver")
    parser.add_argument("--n", type=positive_int, default=None,
                        help="initial conditions (default 16,000,000 on a GPU, 100,000 on a CPU); beat problems: "
                             "fresh cells, one beat each (default 64)")
    parser.add_argument("--n-ref", type=positive_int, default=None,
                        help="ICs whose errors are measured against DOP853 (default 256); beat problems: cells "
                             "solved by the stiff reference, BDF, ~3 s each for TP06 (default 8)")
    parser.add_argument("--cache-dir", default=None,
                        help="beat problems: where the fresh cells' pre-paced states are cached (default none)")
    parser.add_argument("--model-dir", action="append", default=[], help="a saved model folder (repeatable)")
    parser.add_argument("--registered", action="store_true",
                        help="benchmark the problem's registered models of --alias (fhn_automl.PROBLEM)")
    parser.add_argument("--alias", default="pareto",
                        help="with --registered: the alias family (default pareto; smoke for a smoke search)")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db")
    parser.add_argument("--backend", default=["auto"], type=backend_list,
                        help="compile backend, or a comma-separated list to time each model with each "
                             f"(one DOP853 reference and Euler sweep for all): {', '.join(BACKENDS)}; auto = "
                             "tensorrt where CUDA + torch_tensorrt exist, else torch.compile, else eager; "
                             "cudagraph and compile-cudagraph need CUDA")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="fp16 needs a CUDA device")
    parser.add_argument("--device", default=None, type=device_name, help="cpu | cuda[:N]")
    parser.add_argument("--dts", type=positive_float, nargs="+", default=None,
                        help="Euler steps, each dividing the evaluation interval (default 0.1 .. 0.005); beat problems: "
                             "the solver's steps in ms (default 0.01 .. 0.5)")
    parser.add_argument("--repeats", type=positive_int, default=5,
                        help="timed calls of each side; the median is reported (default 5)")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="untimed calls before timing: compilation, caches (default 1)")
    parser.add_argument("--out", default=None, help="report folder (default runs/bench/PROBLEM or runs/bench/sweep)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for both sides (torch and numba); 1 on a shared machine, where "
                             "oversubscribed threads made torch 10-50x slower")
    sweep = parser.add_argument_group("inference sweep")
    sweep.add_argument("--sweep", action="store_true", help="run the inference sweep instead of the benchmark")
    sweep.add_argument("--widths", type=positive_int, nargs="+", default=None,
                       help="layer widths (default: search_spaces/inference_sweep.yaml's)")
    sweep.add_argument("--depths", type=positive_int, nargs="+", default=None,
                       help="numbers of hidden layers (default: the sweep file's)")
    sweep.add_argument("--mode", default="uniform", choices=("uniform", "all"),
                       help="uniform: one network per (width, depth), equal widths; all: every sequence of the widths "
                            "with repetition (default uniform)")
    sweep.add_argument("--max-models", type=positive_int, default=None,
                       help="a random subset (seed 0) of this many networks (default: all)")
    sweep.add_argument("--backends", nargs="+", default=None, choices=("eager", "compile", "tensorrt"),
                       help="first one is the speed-up reference (default: eager and the best compiled backend)")
    sweep.add_argument("--tune-points", type=positive_int, default=None,
                       help="points per timed call when tuning the batch size (default 65,536 on a CPU, "
                            "4,194,304 on a GPU, so that batches up to 4M rows are tried there)")
    return parser


def _surrogates(args: argparse.Namespace, problem: Problem, device: str, scratch: Path) -> list:
    import torch

    from fhn_automl.learning.model_io import load_model
    from fhn_automl.post.benchmark import SurrogateEntry
    from fhn_automl.post.compile import compile_surrogate, tune_batch_size

    folders: list[tuple[str, Path, bool]] = [(Path(d).name, Path(d), False) for d in args.model_dir]
    if args.registered:
        uri = resolve_tracking_uri(args.tracking_uri)
        for alias, version in front_versions(uri, args.problem, args.alias):
            local = download_version_files(version, scratch / alias, uri)
            folders.append((f"{alias} {version.tags.get(LAYERS_TAG, '')}", local, False))
    entries = []
    if not folders:
        model = untrained_model(problem, REFERENCE_ARCHITECTURE, seed=0)
        models = [(REFERENCE_ARCHITECTURE, model, True)]
    else:
        models = []
        for name, folder, untrained in folders:
            _check_pulled_folder(folder)
            model = load_model(folder)
            models.append((format_layers(model.spec.layers) if name == "model" else name, model, untrained))
        models = _distinct_names(models, [folder for _, folder, _ in folders])
    for (name, model, untrained), backend in ((m, b) for m in models for b in args.backend):
        compiled = compile_surrogate(model, model.spec.n_in, backend=backend, precision=args.precision,
                                     device=device)
        tuning = tune_batch_size(compiled, n_points=tune_points(args, device), repeats=3)
        print(f"[bench] {name}: {compiled.label}, batch {tuning.best}, "
              f"{tuning.per_point_s[tuning.best] * 1e9:.1f} ns/point" + (f" ({compiled.note})" if compiled.note else ""),
              flush=True)
        entries.append(SurrogateEntry(name=name, surrogate=compiled, inputs=model.spec.inputs, kind=model.spec.kind,
                                      batch_size=tuning.best, untrained=untrained))
    del torch
    return entries


def _distinct_names(models: list, folders: list[Path]) -> list:
    """Rows of the report are told apart by name: two models of the same layers (a DDNN and a PINN, two
    seeds) get their kind and folder added, e.g. ``tanh-64,tanh-64 (pinn, runs/ms_pinn/model)``."""
    names = [name for name, _, _ in models]
    return [(f"{name} ({model.spec.kind}, {folder})" if names.count(name) > 1 else name, model, untrained)
            for (name, model, untrained), folder in zip(models, folders)]


def tune_points(args: argparse.Namespace, device: str) -> int:
    return args.tune_points or (1 << 22 if device.startswith("cuda") else 65_536)


def _check_pulled_folder(folder: Path) -> None:
    """A folder written by ``pull`` carries its files' digests in ``model_card.json``: a file changed
    since is refused (``ModelDigestError``). Other folders are the user's own and loaded as given."""
    import json

    card = folder / "model_card.json"
    if card.is_file():
        try:
            expected = json.loads(card.read_text()).get("sha256")
        except (ValueError, AttributeError, UnicodeDecodeError):
            expected = None
        if isinstance(expected, dict):
            verify_model_files(folder, expected, what=f"--model-dir {folder} (pulled; digests in model_card.json)")


def _run_beat_verdict(args: argparse.Namespace, problem: Problem, device: str, staging: Path) -> None:
    """A beat problem's verdict (``post.beat_benchmark``): solver dt sweep vs surrogates, counts (a) and (b)."""
    from fhn_automl.post.beat_benchmark import beat_report_markdown, run_beat_benchmark, write_beat_report

    entries = _surrogates(args, problem, device, staging / "_models")
    report = run_beat_benchmark(problem, entries, n=args.n or 64, n_ref=args.n_ref,
                                dts=args.dts or DEFAULT_BEAT_DTS, device=device, warmup=args.warmup,
                                repeats=args.repeats, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                                progress=lambda message: print(f"[bench] {message}", flush=True))
    shutil.rmtree(staging / "_models", ignore_errors=True)
    write_beat_report(report, staging)
    print(beat_report_markdown(report))


def _run_benchmark(args: argparse.Namespace, problem: Problem, device: str, staging: Path) -> None:
    from fhn_automl.post.benchmark import report_markdown, run_benchmark, write_report

    if problem.is_n_state:  # an N-state model: the verdict against its own solver
        _run_beat_verdict(args, problem, device, staging)
        return
    n = args.n or (16_000_000 if device.startswith("cuda") else 100_000)
    entries = _surrogates(args, problem, device, staging / "_models")
    report = run_benchmark(problem, entries, n=n, n_ref=args.n_ref, euler_dts=args.dts or DEFAULT_EULER_DTS,
                           device=device, warmup=args.warmup, repeats=args.repeats)
    shutil.rmtree(staging / "_models", ignore_errors=True)
    write_report(report, staging)
    print(report_markdown(report))


def _run_sweep(args: argparse.Namespace, problem: Problem, device: str, staging: Path) -> None:
    from fhn_automl.post.benchmark import THESIS_N, make_workload, time_euler
    from fhn_automl.post.compile import tensorrt_installed
    from fhn_automl.post.sweep import (DEFAULT_DEPTHS, DEFAULT_WIDTHS, run_inference_sweep, sweep_architectures,
                                       sweep_settings_from_file, write_sweep_report)

    settings = sweep_settings_from_file() or {}
    widths = args.widths or settings.get("widths") or DEFAULT_WIDTHS
    depths = args.depths or settings.get("depths") or DEFAULT_DEPTHS
    activation = settings.get("activation", "silu")
    if settings and not (args.widths or args.depths):
        print(f"[bench] sweep settings from {settings['source']}", flush=True)
    compiled = "tensorrt" if device.startswith("cuda") and tensorrt_installed() else "compile"
    backends = args.backends or ["eager", compiled]
    architectures = sweep_architectures(widths, depths, activation=activation, mode=args.mode,
                                        max_models=args.max_models)
    print(f"[bench] sweep: {len(architectures)} networks x backends {backends} on {device}", flush=True)
    sweep = run_inference_sweep(architectures, problem=problem, backends=backends, device=device,
                                n_points=tune_points(args, device), repeats=args.repeats)
    workload = make_workload(problem, args.n or 1_000_000)
    euler = time_euler(workload, 0.1, device=device, warmup=args.warmup, repeats=args.repeats)
    files = write_sweep_report(sweep, staging, euler_workload_time_s=euler.median_s * THESIS_N / workload.n)
    print(files["markdown"].read_text())


def set_cpu_threads(threads: int | None) -> None:
    """The same thread count for the solver (numba) and the networks (torch), so the sides compare.

    ``None``: torch's current count for both. Without this numba's ``omp`` layer (which shares torch's
    OpenMP runtime) resets the count at each Euler run, so the surrogates would be timed with another
    count than the one they were tuned at, and the report's "torch threads" would not say which.
    """
    import torch

    pin_cpu_threads(threads or torch.get_num_threads())


def _check_memory(parser: argparse.ArgumentParser, args: argparse.Namespace, device: str, n_times: int) -> None:
    """``--n`` / ``--n-ref`` against the memory free now, before any array exists (``--n 1e13`` once went
    straight to the allocator). Per initial condition: the Euler states and a surrogate's outputs at
    every evaluation time (float32 u, w each), the inputs; per reference IC DOP853's float64 dense states."""
    from fhn_automl.physics.datasets import available_memory_bytes

    available = available_memory_bytes()
    if available is None or device.startswith("cuda"):  # GPU memory is the limit there, checked by CUDA itself
        return
    n = args.n or 100_000
    n_ref = min(args.n_ref, n)  # the reference ICs are the first n_ref of the workload
    for option, count, per_ic in (("--n", n, n_times * 2 * 4 * 2 + 64), ("--n-ref", n_ref, n_times * 2 * 8 * 4)):
        needed = count * per_ic
        if needed > available:
            parser.error(f"{option} {count:,}: about {needed / 2**30:.3g} GiB of arrays, more than the "
                         f"{available / 2**30:.1f} GiB free; ask for fewer")


def _check_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace, device: str) -> Problem:
    """What argparse cannot judge alone, before any work: folders, Euler steps, backend vs device.
    Returns ``--problem`` resolved, the object every step below takes."""
    from fhn_automl.learning.model_io import ModelFolderError, load_model
    from fhn_automl.post.benchmark import make_workload
    from fhn_automl.post.compile import check_compile_request

    try:
        problem = get_problem(args.problem)
    except UnknownProblemError as exc:  # a beat: spec whose file or options are wrong
        parser.error(f"--problem: {exc}")
    for folder in args.model_dir:
        if not (Path(folder) / "spec.json").is_file():
            parser.error(f"--model-dir {folder}: not a saved model folder (no spec.json there)")
        _check_pulled_folder(Path(folder))  # digests first: nothing changed since pull is loaded
        try:
            spec = load_model(folder).spec  # the whole folder, before any work: spec, problem, weights
        except ModelFolderError as exc:
            parser.error(f"--model-dir {folder}: {exc}")
        if get_problem(spec.problem).key != problem.key:  # a B_S model timed on C's workload would report a meaningless error
            parser.error(f"--model-dir {folder}: the model is for {spec.problem} (spec.json field 'problem'), "
                         f"but --problem is {args.problem}; pass --problem {spec.problem}")
    beat = problem.is_n_state  # an N-state model's solver, cells not FHN initial conditions
    if args.n_ref is None:
        args.n_ref = 8 if beat else 256
    if beat:  # cells of a cell model: a few hundred at most, one beat each; the steps must land on the grid
        eval_every = problem.save_dt
    else:
        probe = make_workload(problem, 1)
        eval_every = probe.eval_every
        _check_memory(parser, args, device, len(probe.eval_times))
    for dt in args.dts or ():
        steps = eval_every / dt
        if abs(steps - round(steps)) > 1e-6 * steps:  # the Euler states must land on the evaluation times
            parser.error(f"--dts {dt:g}: must divide {args.problem}'s evaluation interval {eval_every:g} "
                         "(e.g. 0.1, 0.05, 0.01)")
    for backend in (args.backends or ()) if args.sweep else args.backend:
        try:
            check_compile_request(backend, args.precision, device)
        except ValueError as exc:  # fp16 on a CPU and the like: bad input, not a bug
            parser.error(str(exc))
    return problem


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from fhn_automl.post.compile import default_device

    device = args.device or default_device()
    try:
        problem = _check_inputs(parser, args, device)
    except PostStageError as exc:  # a backend or device this machine cannot run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not device.startswith("cuda"):
        set_cpu_threads(args.threads)
    target = Path(args.out or Path("runs") / "bench" / ("sweep" if args.sweep else problem_name(args.problem))).resolve()
    try:
        with staged_folder(target) as staging:
            (_run_sweep if args.sweep else _run_benchmark)(args, problem, device, staging)
    except PostStageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {target}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
