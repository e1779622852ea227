"""The post-stage in one call: ``run_post_stage(experiment_name, tracking_uri=None, out_dir=None, ...)``.

After a search (``fhn_automl.pipeline`` calls it) or on demand (``python -m fhn_automl.post EXPERIMENT``):

1. read the experiment's finished trials and download their models;
2. compile each (TensorRT -> torch.compile -> eager), tune its batch size, then time all of them per
   point in interleaved rounds (median, and the min-max spread);
3. Pareto front per problem over (validation mean error, time per point); times within ``time_rtol``
   or with overlapping spreads tie, and multiply-adds decide, so timing noise cannot flip the front;
4. benchmark the front against Euler at several dt on the thesis workload (``bench_n`` ICs);
5. ANOVA tables, notable models, plots;
6. log everything as artifacts of a post-stage run (tag ``fhn_automl.role=post``) in the same
   experiment and register the front (``fhn_automl.<problem>`` registered model, alias family
   ``pareto``, or ``smoke`` for a smoke-budget search, merged with the front registered before:
   ``fhn_automl.post.registry``).

An experiment of untrained networks (a search file's ``kind: untrained`` sweep) gets the inference
sweep report (Tables 12-13, Figures 39-40) instead of a front. Everything is written to a temporary
folder beside ``out_dir`` and renamed into place only after the registry is updated, so a failure
leaves no half-written report (and the versions this run created are deleted again).

Sizes come from the budget's preset (``fhn_automl.post.settings``: smoke | small | paper; the search
passes its own budget); the CPU thread count is pinned for both sides for the whole stage and put
back afterwards. ``summary.json`` records the settings used and the seconds spent in each phase.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhn_automl.learning.model_io import load_model
from fhn_automl.physics.problems import Problem, get_problem, problem_name
from fhn_automl.post.analysis import (ERROR_FORMULA, SPEEDUP_FORMULA, TIME_FORMULA, anova, anova_markdown,
                                      error_anova_by_study, notable_models, plot_error_vs_neurons, plot_error_vs_time,
                                      plot_pareto, thesis_analyses_markdown, trials_frame)
from fhn_automl.post.beat_benchmark import beat_report_markdown, plot_beat_work_precision, run_beat_benchmark
from fhn_automl.post.benchmark import (THESIS_N, SurrogateEntry, make_workload, plot_work_precision, report_markdown,
                                       run_benchmark, time_euler)
from fhn_automl.post.compile import (_sample_batch, check_compile_request, compile_surrogate, default_device,
                                     evaluate_in_batches, tune_batch_size)
from fhn_automl.post.errors import InvalidRequestError, NoFinishedTrialsError
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.pareto import Candidate, ParetoResult, pareto_front
from fhn_automl.post.registry import (DEFAULT_ALIAS, SMOKE_ALIAS, RegistrationRequest, physiology_tags,
                                      register_front)
from fhn_automl.post.runs import POST_ROLE, ROLE_TAG, TrialRecord, download_model, load_trials, resolve_tracking_uri
from fhn_automl.post.settings import BUDGET_NAMES, PostSettings, post_settings
from fhn_automl.post.staging import check_output_target, new_staging_folder, swap_into_place
from fhn_automl.post.sweep import write_sweep_report
from fhn_automl.post.timing import describe_device, interleaved_timings, pin_cpu_threads, restore_cpu_threads
from fhn_automl.search.tracking_tags import BUDGET_TAG, SEARCH_ROLE

CPU_BENCH_N = 100_000  # the ``small`` preset's CPU size (kept for callers that import it)


@dataclass
class PostStageResult:
    """Where the report went and what was registered."""

    experiment: str
    out_dir: Path
    post_run_id: str | None
    mode: str                                   # "pareto" or "inference_sweep"
    fronts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # problem -> front rows
    registered: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    experiment_id: str | None = None
    tracking_uri: str | None = None


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"[post] {message}", flush=True)


class _Phases:
    """Wall seconds per phase of the stage, summed over models (``summary.json`` -> ``seconds``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def __call__(self, name: str) -> "_PhaseTimer":
        return _PhaseTimer(self, name)


class _PhaseTimer:
    def __init__(self, phases: _Phases, name: str) -> None:
        self.phases, self.name = phases, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.phases.add(self.name, time.perf_counter() - self.started)


def _time_trial(model_dir: Path, *, backend: str, precision: str, device: str, settings: PostSettings,
                build_engine: bool, also_eager: bool, phases: _Phases | None = None) -> dict[str, Any]:
    phases = phases or _Phases()
    model = load_model(model_dir)
    n_in = model.spec.n_in
    with phases("compile"):
        compiled = compile_surrogate(model, n_in, backend=backend, precision=precision, device=device,
                                     build_engine=build_engine)
    with phases("tune batch size"):
        tuning = tune_batch_size(compiled, n_points=settings.tune_points, candidates=settings.batch_sizes,
                                 warmup=settings.warmup, repeats=settings.repeats)
    result = {"backend": compiled.label, "batch_size": tuning.best, "time_per_point_s": tuning.per_point_s[tuning.best],
              "compile_s": compiled.compile_seconds, "compile_note": compiled.note, "_compiled": compiled,
              "_inputs": model.spec.inputs, "_kind": model.spec.kind}
    if also_eager and compiled.backend != "eager":
        with phases("eager baseline"):
            eager = compile_surrogate(load_model(model_dir), n_in, backend="eager", precision=precision, device=device)
            # smoke: the eager baseline at the compiled model's batch size only (the speed-up is then
            # at equal batch); larger presets tune eager over the same candidates
            candidates = settings.batch_sizes if settings.eager_full_tuning else (tuning.best,)
            eager_tuning = tune_batch_size(eager, n_points=settings.tune_points, candidates=candidates,
                                           warmup=settings.warmup, repeats=settings.repeats)
        result["eager_time_per_point_s"] = eager_tuning.per_point_s[eager_tuning.best]
        result["eager_batch_size"] = eager_tuning.best
        result["speedup"] = result["eager_time_per_point_s"] / result["time_per_point_s"]
    return result


def _time_interleaved(handles: dict[str, dict[str, Any]], *, settings: PostSettings,
                      device: str) -> dict[str, dict[str, float]]:
    """Every model's time per point at its tuned batch size from interleaved rounds (median, min, max).

    The batch-size tuning times one model after another, so a burst of load can land on one model
    only; these rounds are what the front compares (``fhn_automl.post.timing.interleaved_timings``).
    """
    calls = {}
    for run_id, handle in handles.items():
        compiled, batch = handle["_compiled"], int(handle["batch_size"])
        x = _sample_batch(compiled.n_in, settings.tune_points, device)
        out = evaluate_in_batches(compiled, x, batch)
        calls[run_id] = (lambda c=compiled, x=x, b=batch, o=out: evaluate_in_batches(c, x, b, o))
    timings = interleaved_timings(calls, rounds=settings.front_rounds, warmup=settings.warmup, device=device)
    n = settings.tune_points
    return {run_id: {"time_per_point_s": t.median_s / n, "time_min_s": t.min_s / n, "time_max_s": t.max_s / n}
            for run_id, t in timings.items()}


def _search_budget(tracking_uri: str, experiment_id: str) -> str | None:
    """The budget the search ran at (its parent run's ``fhn_automl.budget`` tag); None when unknown.
    Several parents (searches resumed under other settings) at different budgets: the smallest, so a
    mixed experiment is never taken for a deployment-grade one."""
    from mlflow.tracking import MlflowClient

    parents = MlflowClient(tracking_uri=tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{SEARCH_ROLE}'", max_results=100)
    budgets = {run.data.tags.get(BUDGET_TAG) for run in parents} & set(BUDGET_NAMES)
    return min(budgets, key=BUDGET_NAMES.index) if budgets else None


def _registry_alias(search_budget: str | None) -> str:
    """``pareto`` for the deployment front; ``smoke`` for a smoke-budget search (CI-sized models must
    never become what ``models:/fhn_automl.<problem>@pareto`` serves). The budget is the search's
    own, so ``post --budget`` (the stage's sizes) does not change it."""
    return SMOKE_ALIAS if search_budget == "smoke" else DEFAULT_ALIAS


def _pick_evenly(items: list, k: int) -> list:
    if len(items) <= k:
        return items
    step = (len(items) - 1) / (k - 1) if k > 1 else 0
    return [items[round(i * step)] for i in range(k)]


@dataclass(frozen=True)
class PostRequest:
    """What one post-stage run was asked, resolved once at its start: the experiment and MLflow store,
    the report folder, the compile request, the sizes (``PostSettings``) and the front's tie rule."""

    experiment: str
    experiment_id: str
    tracking_uri: str
    target: Path                # the report folder
    device: str
    backend: str                # auto | tensorrt | compile | eager
    precision: str
    settings: PostSettings
    bench_n: int                # initial conditions of the benchmark against Euler
    time_rtol: float            # two times within this of each other tie (multiply-adds decide)
    register: bool
    quiet: bool

    def log(self, message: str) -> None:
        _log(self.quiet, message)


def run_post_stage(experiment_name: str, tracking_uri: str | None = None, out_dir: str | os.PathLike | None = None, *,
                   budget: str | PostSettings | None = None, backend: str = "auto", precision: str = "fp32",
                   device: str | None = None, bench_n: int | None = None, n_ref: int | None = None,
                   repeats: int | None = None, tune_points: int | None = None, front_rounds: int | None = None,
                   time_rtol: float = 0.05,
                   max_bench_models: int | None = None, threads: int | None = None, register: bool = True,
                   quiet: bool = False) -> PostStageResult:
    """Run the whole post-stage on one search experiment; see the module docstring.

    ``budget``: smoke | small | paper (default: the search's budget, its parent run's tag, else small)
    or a ``PostSettings``; ``bench_n``, ``n_ref``, ``repeats``, ``tune_points``, ``front_rounds``,
    ``max_bench_models`` and ``threads`` override single fields of it. ``backend``: auto | tensorrt |
    compile | eager (a named backend that cannot run raises ``BackendNotInstalledError``). ``bench_n``:
    initial conditions of the benchmark (the preset's CPU or GPU size). The front compares the models'
    medians of ``front_rounds`` interleaved timings; two times tie (multiply-adds decide) when within
    ``time_rtol`` of each other or when their min-max spreads overlap. ``out_dir`` default:
    ``runs/post/<experiment>``.
    """
    started = time.perf_counter()
    device = device or default_device()
    try:
        check_compile_request(backend, precision, device)  # fail before any work when the backend cannot run
    except ValueError as exc:  # fp16 on a CPU, an unknown backend name: bad input, said as such
        raise InvalidRequestError(str(exc)) from None
    target = Path(out_dir) if out_dir is not None else Path.cwd() / "runs" / "post" / experiment_name
    target = target.resolve()
    check_output_target(target)  # a folder of the user's is refused before the work, not after
    tracking_uri = resolve_tracking_uri(tracking_uri)  # and a tracking server that does not answer
    phases = _Phases()
    with phases("read experiment"):
        experiment_id, trials = load_trials(experiment_name, tracking_uri, require_error=False)
        search_budget = _search_budget(tracking_uri, experiment_id)
    settings = post_settings(budget if budget is not None else search_budget).replace(
        n_ref=n_ref, repeats=repeats, tune_points=tune_points, front_rounds=front_rounds,
        max_bench_models=max_bench_models, threads=threads)
    request = PostRequest(experiment=experiment_name, experiment_id=experiment_id, tracking_uri=tracking_uri,
                          target=target, device=device, backend=backend, precision=precision, settings=settings,
                          bench_n=bench_n or settings.bench_n(device), time_rtol=time_rtol, register=register,
                          quiet=quiet)
    return run_stage(request, trials, phases, started=started)


def run_stage(request: PostRequest, trials: list[TrialRecord], phases: _Phases, *, started: float) -> PostStageResult:
    """The post-stage's steps on an experiment's finished ``trials``, written to a staging folder that
    replaces the report folder only at the end (removed again on any failure)."""
    trained = [t for t in trials if t.mean_err is not None]
    mode = "pareto" if trained else "inference_sweep"
    settings, device = request.settings, request.device
    staging = new_staging_folder(request.target)
    threads_before = pin_cpu_threads(settings.threads) if not device.startswith("cuda") else None
    request.log(f"{request.experiment}: {len(trials)} finished trial(s), mode {mode}, device {device}, "
                f"backend {request.backend}, budget {settings.name}")
    post_run_id = None
    client = None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=request.tracking_uri)
        models_dir = staging / "_models"
        table, handles = time_models(request, trained or trials, models_dir, phases, front=mode == "pareto")
        post_run = client.create_run(request.experiment_id, run_name=f"post-{request.experiment}",
                                     tags={ROLE_TAG: POST_ROLE, "fhn_automl.post.mode": mode,
                                           "fhn_automl.post.device": device})
        post_run_id = post_run.info.run_id
        result = PostStageResult(experiment=request.experiment, out_dir=request.target, post_run_id=post_run_id,
                                 mode=mode, experiment_id=request.experiment_id, tracking_uri=request.tracking_uri)
        if mode == "inference_sweep":
            _sweep_mode(table, staging, device=device, bench_n=request.bench_n, settings=settings, quiet=request.quiet)
        else:
            _pareto_mode(request, table, handles, trained, staging, result, client=client, post_run=post_run,
                         phases=phases)
        shutil.rmtree(models_dir, ignore_errors=True)
        with phases("log artifacts"):
            write_summary(request, staging, result, n_trials=len(trials), phases=phases, started=started)
            client.log_artifacts(post_run_id, str(staging), "post")
            client.log_metric(post_run_id, "post_seconds", time.perf_counter() - started)
            client.set_terminated(post_run_id, "FINISHED")
        result.files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        swap_into_place(staging, request.target)
        result.phase_seconds = dict(phases.seconds)
        request.log("phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.seconds.items()))
        request.log(f"report in {request.target} ({time.perf_counter() - started:.0f} s, budget {settings.name})")
        return result
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if post_run_id is not None and client is not None:
            try:
                client.set_terminated(post_run_id, "FAILED")
            except Exception:  # the original error matters more than the run's status
                pass
        raise
    finally:
        if threads_before is not None:
            restore_cpu_threads(threads_before)


def time_models(request: PostRequest, trials: list[TrialRecord], models_dir: Path, phases: _Phases, *,
                front: bool) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Download, compile, tune and time each trial's model: (one row per trial, each model's handles:
    the compiled surrogate, its inputs and kind). ``front``: also the interleaved rounds the front
    compares (``time_per_point_s`` and the min-max spread)."""
    import pandas as pd

    timed_rows: list[dict[str, Any]] = []
    handles: dict[str, dict[str, Any]] = {}
    for position, trial in enumerate(trials, start=1):
        with phases("download models"):
            model_dir = download_model(request.tracking_uri, trial.run_id, models_dir / trial.run_id)
        timing = _time_trial(model_dir, backend=request.backend, precision=request.precision, device=request.device,
                             settings=request.settings, build_engine=request.backend == "tensorrt" and front,
                             also_eager=True, phases=phases)
        handles[trial.run_id] = {**timing, "_layers": trial.layers}
        timed_rows.append({**trial.as_row(), **{k: v for k, v in timing.items() if not k.startswith("_")}})
        request.log(f"timed {position}/{len(trials)} {trial.layers}: "
                    f"{timing['time_per_point_s'] * 1e9:.1f} ns/point [{timing['backend']}, batch {timing['batch_size']}]")
    if front:
        with phases("front timing"):
            spreads = _time_interleaved(handles, settings=request.settings, device=request.device)
        for row in timed_rows:
            row.update(spreads[row["run_id"]])
        request.log(f"timed all {len(spreads)} at their batch sizes, {request.settings.front_rounds} interleaved "
                    "rounds: " + ", ".join(f"{handles[k]['_layers']} {v['time_per_point_s'] * 1e9:.1f} "
                                           f"[{v['time_min_s'] * 1e9:.1f}-{v['time_max_s'] * 1e9:.1f}] ns/point"
                                           for k, v in spreads.items()))
    return pd.DataFrame(timed_rows), handles


def write_summary(request: PostRequest, staging: Path, result: PostStageResult, *, n_trials: int, phases: _Phases,
                  started: float) -> None:
    """``summary.json``: the request, the settings used, the fronts, what was registered, seconds per phase."""
    summary = {"experiment": request.experiment, "mode": result.mode, "tracking_uri": request.tracking_uri,
               "post_run_id": result.post_run_id, "device": request.device, "backend_requested": request.backend,
               "precision": request.precision, "bench_n": request.bench_n, "settings": request.settings.as_dict(),
               "n_trials": n_trials, "fronts": result.fronts, "registered": result.registered,
               "phase_seconds": phases.seconds, "seconds": time.perf_counter() - started}
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


@dataclass(frozen=True)
class ProblemFront:
    """One problem's share of the table and its Pareto front (``indices``/``unique``: table rows)."""

    problem: str                # the problem's key (a beat: spec for a user's model file)
    spec: Problem
    safe: str                   # its name in file names
    indices: list[int]          # the problem's rows
    unique: list[int]           # its front's rows, one per duplicate group
    front: ParetoResult


#: The front's columns in ``PostStageResult.fronts`` and ``summary.json``.
FRONT_COLUMNS = ("run_id", "layers", "mean_err", "max_err", "code_mean_err", "code_max_err", "time_per_point_s",
                 "time_min_s", "time_max_s", "macs", "neurons", "backend", "batch_size")


def _pareto_mode(request: PostRequest, table, handles, trained: list[TrialRecord], staging: Path,
                 result: PostStageResult, *, client, post_run, phases: _Phases) -> None:
    """Trained experiment: per problem its front, the benchmark, plots and analyses, the registry."""
    table["pareto"] = False
    table["duplicate_of"] = None
    analysis_parts = [f"# Analysis of {request.experiment}", ""]
    requests_by_problem: dict[str, list[RegistrationRequest]] = {}
    device_name = describe_device(request.device)
    for problem, group in table.groupby("problem", sort=True):
        part = mark_front(table, problem, list(group.index), time_rtol=request.time_rtol)
        result.fronts[problem] = [{k: table.at[i, k] for k in FRONT_COLUMNS} for i in part.unique]
        request.log(f"{problem}: Pareto front of {len(part.unique)} model(s) from {len(part.indices)} "
                    f"(cost basis {part.front.cost_basis})")
        report = benchmark_front(request, part, table, handles, staging, phases)
        analysis_started = time.perf_counter()
        analysis_parts += problem_analysis(request, part, table, report, staging, device_name)
        phases.add("analysis and plots", time.perf_counter() - analysis_started)
        requests_by_problem[problem] = registration_requests(request, part, table, handles, staging, client=client,
                                                             post_run=post_run, device_name=device_name)
    table.drop(columns=[c for c in table.columns if c.startswith("_")]).to_csv(staging / "trials.csv", index=False)
    analysis_parts.append(thesis_analyses_markdown(trials_frame(trained)))  # eq. 4.1, Tables 5-7, t-tests
    (staging / "analysis.md").write_text("\n".join(analysis_parts))
    if request.register:
        result.registered += register_fronts(request, requests_by_problem, staging, client=client,
                                             post_run=post_run, phases=phases)


def mark_front(table, problem: str, indices: list[int], *, time_rtol: float) -> ProblemFront:
    """The Pareto front of one problem's rows, marked in ``table`` (``pareto``, ``duplicate_of``)."""
    candidates = [Candidate(key=table.at[i, "run_id"], mean_err=float(table.at[i, "mean_err"]),
                            macs=int(table.at[i, "macs"]), time_per_point_s=float(table.at[i, "time_per_point_s"]),
                            time_range=(float(table.at[i, "time_min_s"]), float(table.at[i, "time_max_s"])))
                  for i in indices]
    front = pareto_front(candidates, time_rtol=time_rtol)
    for local in front.front:
        table.at[indices[local], "pareto"] = True
    for local, first in front.duplicate_of.items():
        table.at[indices[local], "duplicate_of"] = table.at[indices[first], "run_id"]
    # once: a beat: spec reads its model file; it holds a path and options, so files take its safe name
    return ProblemFront(problem=problem, spec=get_problem(problem), safe=problem_name(problem), indices=indices,
                        unique=[indices[i] for i in front.unique_front()], front=front)


def benchmark_front(request: PostRequest, part: ProblemFront, table, handles, staging: Path, phases: _Phases) -> Any:
    """A few front models spread along the front against the solver: Euler on the thesis workload, or
    for a beat problem the cell model's own solver (``post.beat_benchmark``); its report files."""
    settings = request.settings
    chosen = _pick_evenly(part.unique, settings.max_bench_models)
    entries = [SurrogateEntry(name=table.at[i, "layers"], surrogate=handles[table.at[i, "run_id"]]["_compiled"],
                              inputs=handles[table.at[i, "run_id"]]["_inputs"],
                              kind=handles[table.at[i, "run_id"]]["_kind"], batch_size=int(table.at[i, "batch_size"]))
               for i in chosen]
    beat = part.spec.is_n_state  # an N-state model: post.beat_benchmark's verdict
    with phases("benchmark"):
        if beat:
            report = run_beat_benchmark(part.spec, entries, n=settings.beat_cells, n_ref=settings.beat_n_ref,
                                        dts=settings.beat_dts, device=request.device, warmup=settings.warmup,
                                        repeats=settings.repeats, cache_dir=staging / "_prepaced")
        else:
            report = run_benchmark(part.spec, entries, n=request.bench_n, n_ref=settings.n_ref,
                                   euler_dts=settings.euler_dts, device=request.device, warmup=settings.warmup,
                                   repeats=settings.repeats)
    for name, seconds in report.seconds.items():
        phases.add(f"benchmark: {name.split(' ')[0]}", seconds)
    (staging / f"benchmark_{part.safe}.md").write_text(beat_report_markdown(report) if beat else report_markdown(report))
    (staging / f"benchmark_{part.safe}.json").write_text(json.dumps(report.as_dict(), indent=2, default=str))
    return report


def problem_analysis(request: PostRequest, part: ProblemFront, table, report: Any, staging: Path,
                     device_name: str) -> list[str]:
    """One problem's plots and ``pareto_<problem>.md``; returns its part of ``analysis.md`` (ANOVA
    tables, notable models)."""
    safe = part.safe
    if part.spec.is_n_state:
        shutil.rmtree(staging / "_prepaced", ignore_errors=True)
        plot_beat_work_precision(report, staging / f"work_precision_{safe}.png")
    else:
        plot_work_precision([report], staging / f"work_precision_{safe}.png")
    euler = next(r for r in report.rows if r.side in ("euler", "solver") and getattr(r, "stable", True)
                 and math.isfinite(r.time_s))
    frame = table.loc[part.indices]
    plot_error_vs_neurons(frame, staging / f"error_vs_neurons_{safe}.png")
    plot_error_vs_time(frame, staging / f"error_vs_time_{safe}.png", euler_time_per_ic=euler.time_per_ic_s,
                       euler_err=euler.mean_err, points_per_ic=int(round(report.t_end / report.eval_every)),
                       backend=str(frame["backend"].iloc[0]))
    plot_pareto(frame, staging / f"pareto_{safe}.png")
    parts = [f"## {part.problem}\n"]
    # one error fit per study and model kind: their errors differ for reasons eq. 4.2 does not hold
    for label, fitted, reason in error_anova_by_study(frame, ERROR_FORMULA):
        parts.append(anova_markdown(f"Mean error, {label} (thesis Tables 5-6)", fitted, reason))
    for title, formula, data in (("Inference time per point (thesis Table 12)", TIME_FORMULA, frame),
                                 ("Compiled-backend speed-up over eager (thesis Table 13)", SPEEDUP_FORMULA,
                                  frame if "speedup" in frame else frame.iloc[0:0])):
        if formula.split("~")[0].strip() not in data:
            parts.append(f"### {title}\n\nnot fitted: the backend used was eager (no speed-up to model)\n")
            continue
        fitted, reason = anova(data, formula)
        parts.append(anova_markdown(title, fitted, reason))
    notable = notable_models(frame)
    parts += ["### Notable models (thesis Table 4)", "", markdown_table(list(notable.columns), notable.values.tolist()), ""]
    front_rows = [[table.at[i, "layers"], table.at[i, "mean_err"], table.at[i, "max_err"],
                   table.at[i, "code_mean_err"], table.at[i, "code_max_err"],
                   table.at[i, "time_per_point_s"], table.at[i, "macs"], table.at[i, "neurons"],
                   table.at[i, "backend"], table.at[i, "batch_size"], table.at[i, "run_id"]] for i in part.unique]
    (staging / f"pareto_{safe}.md").write_text(
        f"# Pareto front, {part.problem}\n\nCost: time per point at the tuned batch size on {device_name} "
        f"(median of {request.settings.front_rounds} interleaved rounds; two times tie when they are within "
        f"{request.time_rtol:.0%} or their min-max spreads overlap, and multiply-adds decide; basis used: "
        f"{part.front.cost_basis}).\n\n"
        + "Errors: the whole validation set at training end, eq. 3.3 (sum; ranks the front) and the thesis "
        "code's measure (code: half-sum mean, largest component).\n\n"
        + markdown_table(["layers", "val mean err (sum)", "val max err (sum)", "val mean err (code)",
                          "val max err (code)", "time / point (s)", "MACs", "neurons",
                          "backend", "batch", "run"], front_rows) + "\n")
    return parts


def registration_requests(request: PostRequest, part: ProblemFront, table, handles, staging: Path, *, client,
                          post_run, device_name: str) -> list[RegistrationRequest]:
    """What registering one problem's front asks: each model's source, its tags and TensorRT engine."""
    requests = []
    for i in part.unique:
        run_id = table.at[i, "run_id"]
        engine_source = None
        engine = handles[run_id]["_compiled"].engine_bytes
        if engine:
            engine_path = staging / "engines" / f"{run_id}.engine"
            engine_path.parent.mkdir(exist_ok=True)
            engine_path.write_bytes(engine)
            engine_source = f"{post_run.info.artifact_uri}/post/engines/{run_id}.engine"
        trial_run = client.get_run(run_id)
        tags = {f"fhn_automl.{k}": str(v) for k, v in {
            "val_mean_err": table.at[i, "mean_err"], "val_max_err": table.at[i, "max_err"],
            "val_code_mean_err": table.at[i, "code_mean_err"], "val_code_max_err": table.at[i, "code_max_err"],
            "latency_s_per_point": table.at[i, "time_per_point_s"], "batch_size": table.at[i, "batch_size"],
            "latency_s_per_point_min": table.at[i, "time_min_s"], "latency_s_per_point_max": table.at[i, "time_max_s"],
            "backend": table.at[i, "backend"], "device": device_name, "cost_basis": part.front.cost_basis,
            "macs": table.at[i, "macs"], "neurons": table.at[i, "neurons"], "layers": table.at[i, "layers"],
            "experiment": request.experiment, "run_id": run_id, "post_run_id": post_run.info.run_id}.items()}
        tags.update(physiology_tags(part.problem, trial_run.data.metrics))  # beat problems: V RMSE, APD errors, ...
        requests.append(RegistrationRequest(run_id=run_id, model_source=f"{trial_run.info.artifact_uri}/model",
                                            tags=tags, engine_source=engine_source))
    return requests


def register_fronts(request: PostRequest, requests_by_problem: dict[str, list[RegistrationRequest]], staging: Path,
                    *, client, post_run, phases: _Phases) -> list[dict[str, Any]]:
    """Register each problem's front under the alias family of the search's budget, merged with the front
    registered before (``post.registry``); returns the registered versions."""
    registered: list[dict[str, Any]] = []
    alias = _registry_alias(_search_budget(request.tracking_uri, post_run.info.experiment_id))
    if any(r.engine_source for rs in requests_by_problem.values() for r in rs):
        client.log_artifacts(post_run.info.run_id, str(staging / "engines"), "post/engines")
    for problem, requests in requests_by_problem.items():
        with phases("registry"):
            merged = register_front(request.tracking_uri, problem, requests, time_rtol=request.time_rtol, alias=alias)
        registered += merged
        request.log(f"{problem}: alias family '{alias}' of {merged[0]['name'] if merged else problem} now holds "
                    f"{len(merged)} model(s), {sum(r['new'] for r in merged)} of {len(requests)} from this "
                    "search (merged with the registered front)")
    return registered


def _sweep_mode(table, staging: Path, *, device: str, bench_n: int, settings: PostSettings, quiet: bool) -> None:
    """Untrained experiment: per-backend times -> the sweep report (Tables 12-13, Figures 39-40)."""
    import pandas as pd

    rows = []
    for record in table.to_dict("records"):
        base = {"layers": record["layers"], "depth": record["depth"], "neurons": record["neurons"], "macs": record["macs"]}
        compiled_time = record["time_per_point_s"]
        eager_time = record.get("eager_time_per_point_s")
        if eager_time is not None and not (isinstance(eager_time, float) and math.isnan(eager_time)):
            rows.append({**base, "backend": "eager", "backend_label": f"eager-fp32@{device}", "batch_size": None,
                         "time_per_point_s": eager_time, "speedup": 1.0})
            speedup = eager_time / compiled_time
        else:
            speedup = 1.0
        rows.append({**base, "backend": record["backend"].split("-")[0], "backend_label": record["backend"],
                     "batch_size": record["batch_size"], "time_per_point_s": compiled_time, "speedup": speedup})
    sweep = pd.DataFrame(rows)
    sweep["workload_time_s"] = sweep["time_per_point_s"] * 10 * THESIS_N
    problem = table["problem"].iloc[0]
    workload = make_workload(get_problem(problem), min(bench_n, 1_000_000))  # a key from MLflow
    euler = time_euler(workload, 0.1, device=device, warmup=settings.warmup, repeats=settings.repeats)
    write_sweep_report(sweep, staging, euler_workload_time_s=euler.median_s * THESIS_N / workload.n,
                       title=f"Inference sweep ({problem}, {len(table)} untrained networks)")
    _log(quiet, f"inference sweep report for {len(table)} networks")



__all__ = ["PostStageResult", "run_post_stage", "NoFinishedTrialsError"]
