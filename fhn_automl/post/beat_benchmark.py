"""The verdict for beat surrogates: network against the cell model's best solver, at matched accuracy.

For a ``beat`` problem (an N-state cell model's paced beat, ``physics.problems.BeatSetup``) a user asks one
of two things, and the work each side does differs:

(a) **one beat from a given state**: the solver integrates one cycle from the cell's pre-paced state; the
    surrogate evaluates the beat's trace.
(b) **a new parameter set** (a drug block, one cell of a population): the solver must first pace the cell
    ``n_prepace`` beats to its steady beat (the problem's definition of the beat: ``n_prepace`` beats at
    ``pace_dt`` from the model's default state) and then solve the beat; the surrogate answers directly,
    with the same work as in (a).

Both sides produce the same thing: the voltage trace of one beat on the problem's stored grid (every
``save_dt``, 1 ms for the built-in problems: 1001 points per beat), from which APD90 and the other
biomarkers are read. The solver saves only those points; the surrogate is evaluated only at them.

Errors: every side against the stiff reference (``physics.ionic_reference``, SciPy BDF, rtol 1e-8) on
``n_ref`` cells of the same fresh parameter sets (a Latin-hypercube stream of their own, neither the
training nor the validation cells), all starting from the same pre-paced states: the V RMSE over the beat
and the mean |APD90 error| in %. The solver is run over a dt sweep (Rush-Larsen by default, the numba
backend on a CPU) and gives a work-precision curve; the surrogate's speed-up is read on that curve at the
surrogate's own error (log-log interpolation). Beyond the finest dt the curve is extended with slope -1
(first order) and marked extrapolated; beyond the coarsest stable dt it is *not* extended (a coarser dt may
be unstable): the coarsest stable dt's time is used and the figure marked "capped", which flatters the
surrogate, and the report says so.

A ``cell_state`` problem (the thesis' initial-state problem of an N-state model, ``physics.problems.
StateSetup``) gets the same verdict with count (a) only: the workload is ``n`` fresh initial states (their
own Latin-hypercube stream), each side produces the free trajectory to the problem's end time on its stored
grid, errors are the voltage output's RMSE against BDF from the same initial states (no APD: a free
trajectory from an arbitrary state need not hold a whole action potential), and there is no pacing, so no
count (b).

Timing: ``post.timing.time_call`` (warm-up, repetitions, median) of the whole workload (``n`` cells, one
beat each) on each side, with the same CPU threads for numba and torch (the caller sets them: ``bench``'s
``--threads``). Count (b)'s solver time is ``n_prepace x`` the time of one beat at ``pace_dt`` plus one
beat at the matched dt: the cheapest way to the problem's beat (pacing needs no more accuracy than the
problem's definition used). Pacing's own error is not charged to the solver.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fhn_automl.learning.physiology import trace_physiology
from fhn_automl.physics.cell_datasets import (beat_from_states, beat_model, prepaced_cells, sample_initial_states,
                                             sample_scales, solve_states, state_model)
from fhn_automl.physics.ionic_solvers import UnstableStepError
from fhn_automl.physics.problems import Problem
from fhn_automl.post.benchmark import write_report_files
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.compile import evaluate_in_batches
from fhn_automl.post.plotting import pyplot
from fhn_automl.post.settings import DEFAULT_BEAT_DTS  # solver steps (ms); each must divide save_dt (1 ms)
from fhn_automl.post.timing import describe_device, time_call

__all__ = ["BeatBenchmarkReport", "BeatRow", "BeatWorkload", "DEFAULT_BEAT_DTS", "beat_report_markdown",
           "make_beat_workload", "matched_time", "plot_beat_work_precision", "run_beat_benchmark",
           "write_beat_report"]

REFERENCE = "SciPy solve_ivp BDF, rtol 1e-8, atol 1e-10, float64, restarted at every stimulus edge"


@dataclass(frozen=True)
class BeatWorkload:
    """``n`` fresh cells of a beat problem: their scale factors, parameters and pre-paced states."""

    problem: Problem
    model: Any                 # physics.ionic_model.IonicModel
    scales: np.ndarray         # (n, n_scaled)
    params: np.ndarray         # (n_params, n)
    states: np.ndarray         # (n_states, n), the state at the learned beat's start
    t: np.ndarray              # (n_t,) the stored grid within the beat

    @property
    def n(self) -> int:
        return self.scales.shape[0]

    def network_inputs(self, device: str | torch.device, cells: slice = slice(None)) -> torch.Tensor:
        """Raw inputs ``(n_cells * n_t, 1 + n_scaled)`` in the problem's input order (t first)."""
        scales = torch.as_tensor(self.scales[cells], dtype=torch.float32, device=device)
        t = torch.as_tensor(self.t, dtype=torch.float32, device=device)
        n_cells, n_t = scales.shape[0], t.shape[0]
        return torch.cat([t.repeat(n_cells)[:, None], scales.repeat_interleave(n_t, dim=0)], dim=1)


def make_beat_workload(problem: Problem, n: int, *, seed: int = 0, backend: str = "numba",
                       cache_dir: str | Path | None = None) -> BeatWorkload:
    """``n`` cells from the problem's benchmark stream, pre-paced as the problem defines its beat; for a
    ``cell_state`` problem ``n`` initial states of its benchmark stream (``scales`` holds them: the network's
    inputs after t), at the model's default parameters."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if problem.state is not None:
        model = state_model(problem)
        initial = sample_initial_states(problem, n, seed, "bench")
        states = np.empty((model.n_states, n))
        for column, state_name in enumerate(problem.state.outputs.values()):
            states[model.state_names.index(state_name)] = initial[:, column]
        params = np.repeat(model.parameter_values()[:, None], n, axis=1)
        n_t = int(round(problem.t_end / problem.save_dt)) + 1
        return BeatWorkload(problem, model, initial, params, states, problem.save_dt * np.arange(n_t, dtype=np.float64))
    model = beat_model(problem)
    setup = problem.beat
    scales = sample_scales(problem, n, seed, "bench")
    params, states = prepaced_cells(problem, model, scales, backend=backend, cache_dir=cache_dir)
    n_t = int(round(setup.period / problem.save_dt)) + 1
    return BeatWorkload(problem, model, scales, params, states, problem.save_dt * np.arange(n_t, dtype=np.float64))


def reference_voltage(workload: BeatWorkload, n_ref: int) -> np.ndarray:
    """The voltage ``(n_ref, n_t)`` of the first ``n_ref`` cells by the stiff reference."""
    from fhn_automl.physics.ionic_reference import reference_solution

    index = workload.model.state_names.index(workload.model.voltage)
    protocol = workload.model.stimulus.silenced() if workload.problem.state is not None else None
    return np.stack([reference_solution(workload.model, workload.states[:, i], workload.t, workload.params[:, i],
                                        protocol=protocol)[:, index]
                     for i in range(min(n_ref, workload.n))])


@dataclass
class BeatRow:
    """One side of the verdict: a solver setting or a surrogate."""

    side: str                  # "solver" or "surrogate"
    name: str                  # "rush_larsen dt=0.02" or the layer notation
    backend: str
    setting: str
    time_s: float              # median, the whole workload (n cells, one beat each)
    time_per_beat_s: float     # count (a)
    v_rmse: float              # vs the reference, over n_ref cells x the stored grid
    v_max_err: float
    apd90_err_pct: float       # mean over cells of |APD90 - APD90_ref| / APD90_ref
    apd90_max_err_pct: float
    stable: bool = True
    untrained: bool = False
    timing: dict[str, Any] = field(default_factory=dict)
    #: surrogates: the solver's time per beat at the same V RMSE / APD90 error, and the speed-ups
    matched_v_time_s: float | None = None
    matched_v_note: str = ""
    matched_apd_time_s: float | None = None
    matched_apd_note: str = ""
    speedup_a_v: float | None = None
    speedup_b_v: float | None = None
    speedup_a_apd: float | None = None
    speedup_b_apd: float | None = None

    @property
    def mean_err(self) -> float:
        """The V RMSE: the figure the post-stage's generic plots read as a row's error."""
        return self.v_rmse

    @property
    def time_per_ic_s(self) -> float:
        return self.time_per_beat_s


@dataclass
class BeatBenchmarkReport:
    problem: str
    model: str
    n: int
    n_ref: int
    n_prepace: int
    pace_dt: float
    save_dt: float
    n_t: int
    device: str
    device_name: str
    threads: int
    warmup: int
    repeats: int
    rows: list[BeatRow]
    reference: str = REFERENCE
    #: count (b)'s pacing cost: the solver's time per beat at pace_dt
    pace_time_per_beat_s: float = math.nan
    seconds: dict[str, float] = field(default_factory=dict)
    voltage_unit: str = ""
    #: "beat", or "cell_state" (free trajectories from initial states: count (a) only, no APD)
    kind: str = "beat"
    voltage_output: str = "V"

    @property
    def t_end(self) -> float:      # the generic post-stage plots read these
        return self.save_dt * (self.n_t - 1)

    @property
    def eval_every(self) -> float:
        return self.save_dt

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(row) for row in self.rows]
        return out


def matched_time(error: float, curve: Sequence[tuple[float, float, float]]) -> tuple[float, str]:
    """The solver's time per beat at ``error`` from its ``(dt, error, time)`` points (stable ones).

    Log-log interpolation between measured points; finer than the finest dt: slope -1 (first order) from it,
    "extrapolated"; coarser than the coarsest stable dt allows: that dt's time, "capped"."""
    points = sorted((e, t, dt) for dt, e, t in curve if e > 0 and math.isfinite(e) and math.isfinite(t))
    if not points or not math.isfinite(error) or error <= 0:
        return math.nan, "no usable solver points"
    errors = np.log([e for e, _, _ in points])
    times = np.log([t for _, t, _ in points])
    x = math.log(error)
    if errors[0] <= x <= errors[-1]:
        return float(np.exp(np.interp(x, errors, times))), "interpolated"
    if x < errors[0]:
        e, t, _ = points[0]
        return t * e / error, "extrapolated (first order: time ~ 1/error)"
    coarsest = max(points, key=lambda p: p[2])
    return coarsest[1], f"capped at the coarsest stable dt {coarsest[2]:g} (its error is below the surrogate's)"


def _solver_run(workload: BeatWorkload, dt: float, method: str, backend: str, cells: slice = slice(None)):
    if workload.problem.state is not None:
        return solve_states(workload.problem, workload.model, workload.scales[cells], dt=dt, method=method,
                            backend=backend)
    return beat_from_states(workload.problem, workload.model, workload.states[:, cells], workload.params[:, cells],
                            dt=dt, method=method, backend=backend)


def _errors(t: np.ndarray, V: np.ndarray, V_ref: np.ndarray, with_apd: bool = True) -> dict[str, float]:
    if not with_apd:  # free trajectories (cell_state): the trace error only
        return {"v_rmse": float(np.sqrt(((V - V_ref) ** 2).mean())), "v_max_err": float(np.abs(V - V_ref).max()),
                "apd90_err_pct": math.nan, "apd90_max_err_pct": math.nan}
    figures = trace_physiology(t, V, V_ref)
    return {"v_rmse": figures["v_rmse"], "v_max_err": float(np.abs(V - V_ref).max()),
            "apd90_err_pct": figures["apd90_err_pct"], "apd90_max_err_pct": figures["apd90_max_err_pct"]}


def run_beat_benchmark(problem: Problem, surrogates: Sequence[Any], *, n: int = 256, n_ref: int = 8,
                       dts: Sequence[float] = DEFAULT_BEAT_DTS, method: str | None = None, device: str = "cpu",
                       warmup: int = 1, repeats: int = 5, seed: int = 0, cache_dir: str | Path | None = None,
                       progress=None) -> BeatBenchmarkReport:
    """Time the solver at each dt and every surrogate (``post.benchmark.SurrogateEntry``) on ``n`` fresh
    cells; errors against the reference on the first ``n_ref``. See the module docstring."""
    say = progress or (lambda message: None)
    if problem.beat is None and problem.state is None:
        raise ValueError(f"{problem.name} is neither a beat nor a cell_state problem")
    setup = _VerdictSetup.of(problem)
    method = method or setup.method
    backend = "cuda" if device.startswith("cuda") else "numba"
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    say(f"pacing {n} fresh cells {setup.n_prepace} beats ({backend})" if setup.n_prepace
        else f"{n} fresh initial states ({backend})")
    workload = make_beat_workload(problem, n, seed=seed, backend=backend, cache_dir=cache_dir)
    seconds["pacing" if setup.n_prepace else "initial states"] = time.perf_counter() - started
    started = time.perf_counter()
    say(f"reference ({REFERENCE.split(',')[0]}) on {min(n_ref, n)} cells")
    V_ref = reference_voltage(workload, n_ref)
    n_ref = V_ref.shape[0]
    seconds["reference"] = time.perf_counter() - started
    voltage = workload.model.state_names.index(workload.model.voltage)
    rows: list[BeatRow] = []
    sweep = sorted(set(float(dt) for dt in dts) | {float(setup.pace_dt)})
    for dt in sweep:
        started = time.perf_counter()
        name = f"{method} dt={dt:g}"
        try:
            _, Y = _solver_run(workload, dt, method, backend, slice(0, n_ref))
            V = Y[:, voltage, :].T
            if not np.isfinite(V).all():
                raise UnstableStepError(f"non-finite voltage at dt {dt:g}")
        except UnstableStepError:
            rows.append(BeatRow("solver", name, f"{backend}-{method}", f"dt={dt:g}", math.nan, math.nan, math.nan,
                                math.nan, math.nan, math.nan, stable=False))
            say(f"{name}: unstable")
            continue
        errors = _errors(workload.t, V, V_ref, setup.with_apd)
        timing = time_call(lambda dt=dt: _solver_run(workload, dt, method, backend), warmup=warmup, repeats=repeats,
                           device=device, transfers="none: results stay where they are computed")
        rows.append(BeatRow("solver", name, f"{backend}-{method}", f"dt={dt:g}", timing.median_s,
                            timing.median_s / workload.n, **errors, timing=timing.as_dict()))
        seconds[f"solver dt={dt:g}"] = time.perf_counter() - started
        say(f"{name}: {timing.median_s / workload.n * 1e3:.3g} ms per beat, V RMSE {errors['v_rmse']:.3g}, "
            f"APD90 {errors['apd90_err_pct']:.3g} %")
    column = problem.outputs.index(setup.voltage_output)
    for entry in surrogates:
        started = time.perf_counter()
        surrogate = entry.surrogate

        def run(surrogate=surrogate, entry=entry) -> torch.Tensor:
            return evaluate_in_batches(surrogate, workload.network_inputs(surrogate.device), entry.batch_size)[:, column]

        with torch.no_grad():
            predicted = evaluate_in_batches(surrogate, workload.network_inputs(surrogate.device, slice(0, n_ref)),
                                            entry.batch_size)[:, column]
        V = predicted.double().cpu().numpy().reshape(n_ref, workload.t.size)
        errors = _errors(workload.t, V, V_ref, setup.with_apd)
        with torch.no_grad():
            timing = time_call(run, warmup=warmup, repeats=repeats, device=surrogate.device,
                               transfers="inputs built on the device; outputs stay there")
        rows.append(BeatRow("surrogate", entry.name, surrogate.label, f"batch={entry.batch_size}", timing.median_s,
                            timing.median_s / workload.n, **errors, untrained=getattr(entry, "untrained", False),
                            timing=timing.as_dict()))
        seconds[f"surrogate {entry.name}"] = time.perf_counter() - started
        say(f"{entry.name}: {timing.median_s / workload.n * 1e3:.3g} ms per beat, V RMSE {errors['v_rmse']:.3g}, "
            f"APD90 {errors['apd90_err_pct']:.3g} %")
    pace = next((r for r in rows if r.side == "solver" and r.setting == f"dt={setup.pace_dt:g}"), None)
    pace_time = pace.time_per_beat_s if pace is not None and pace.stable and setup.n_prepace else math.nan
    _add_verdict(rows, setup.n_prepace, pace_time)
    threads = torch.get_num_threads()
    return BeatBenchmarkReport(problem=problem.name, model=workload.model.name, n=workload.n, n_ref=n_ref,
                               n_prepace=setup.n_prepace, pace_dt=setup.pace_dt, save_dt=problem.save_dt,
                               n_t=workload.t.size, device=device, device_name=describe_device(device), threads=threads,
                               warmup=warmup, repeats=repeats, rows=rows, pace_time_per_beat_s=pace_time,
                               seconds=seconds, voltage_unit=setup.units.get(setup.voltage_output, ""),
                               kind=problem.kind, voltage_output=setup.voltage_output)


@dataclass(frozen=True)
class _VerdictSetup:
    """What the verdict reads of a beat or a cell_state problem."""

    method: str
    n_prepace: int
    pace_dt: float
    units: dict[str, str]
    voltage_output: str
    with_apd: bool

    @classmethod
    def of(cls, problem: Problem) -> "_VerdictSetup":
        if problem.beat is not None:
            beat = problem.beat
            return cls(beat.method, beat.n_prepace, beat.pace_dt, beat.units, beat.voltage_output, True)
        state = problem.state
        voltage = state_model(problem).voltage
        output = next(name for name, state_name in state.outputs.items() if state_name == voltage)
        return cls(state.method, 0, state.dt, state.units, output, False)


def _add_verdict(rows: list[BeatRow], n_prepace: int, pace_time: float) -> None:
    solver = [r for r in rows if r.side == "solver" and r.stable]
    v_curve = [(float(r.setting.split("=")[1]), r.v_rmse, r.time_per_beat_s) for r in solver]
    apd_curve = [(float(r.setting.split("=")[1]), r.apd90_err_pct, r.time_per_beat_s) for r in solver]
    for row in (r for r in rows if r.side == "surrogate"):
        row.matched_v_time_s, row.matched_v_note = matched_time(row.v_rmse, v_curve)
        row.matched_apd_time_s, row.matched_apd_note = matched_time(row.apd90_err_pct, apd_curve)
        for figure, matched in (("v", row.matched_v_time_s), ("apd", row.matched_apd_time_s)):
            if matched is None or not math.isfinite(matched):
                continue
            setattr(row, f"speedup_a_{figure}", matched / row.time_per_beat_s)
            if math.isfinite(pace_time):
                setattr(row, f"speedup_b_{figure}", (n_prepace * pace_time + matched) / row.time_per_beat_s)


# ----------------------------------------------------------------------------------- report files


def _ratio(value: float | None, note: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    flag = "" if note == "interpolated" else f" ({note.split(' ')[0]})"
    return f"{value:.3g}x{flag}"


def beat_report_markdown(report: BeatBenchmarkReport) -> str:
    unit = f" ({report.voltage_unit})" if report.voltage_unit else ""
    header = ["side", "name", "backend", "setting", "time / beat (ms)", f"V RMSE{unit}", f"V max err{unit}",
              "APD90 err (%)", "APD90 max err (%)", "(a) speed-up at matched V", "(b) at matched V",
              "(a) at matched APD90", "(b) at matched APD90"]
    rows = [[r.side, r.name + (" (untrained)" if r.untrained else ""), r.backend, r.setting,
             r.time_per_beat_s * 1e3 if r.stable else "unstable", r.v_rmse, r.v_max_err, r.apd90_err_pct,
             r.apd90_max_err_pct, _ratio(r.speedup_a_v, r.matched_v_note), _ratio(r.speedup_b_v, r.matched_v_note),
             _ratio(r.speedup_a_apd, r.matched_apd_note), _ratio(r.speedup_b_apd, r.matched_apd_note)]
            for r in report.rows]
    if report.kind == "cell_state":
        return _state_report_markdown(report, header, rows, unit)
    verdicts = []
    for r in (r for r in report.rows if r.side == "surrogate"):
        a, b = r.speedup_a_v, r.speedup_b_v
        verdicts.append(
            f"- **{r.name}** (V RMSE {r.v_rmse:.3g}{unit}, APD90 error {r.apd90_err_pct:.3g} %): "
            + (f"(a) one beat from a given state: {a:.3g}x the solver's speed at matched V error "
               f"({'the surrogate is faster' if a > 1 else 'the solver is faster'}); " if a else "(a) -; ")
            + (f"(b) a new parameter set: {b:.3g}x "
               f"({'the surrogate is faster' if b > 1 else 'the solver is faster'})." if b else "(b) -.")
            + ("" if r.matched_v_note == "interpolated" else f" Matched point {r.matched_v_note}."))
    lines = [
        f"# Verdict: beat surrogates vs the {report.model} solver, {report.problem}", "",
        f"- workload: {report.n} fresh cells (parameter sets of the problem's benchmark stream), one beat each, "
        f"the voltage trace every {report.save_dt:g} ms ({report.n_t} points per beat) on both sides",
        f"- (a) one beat from the cell's pre-paced state; (b) a new parameter set: the solver paces "
        f"{report.n_prepace} beats at dt {report.pace_dt:g} ({report.pace_time_per_beat_s * 1e3:.3g} ms per beat "
        f"per cell here) and then solves the beat at the matched dt; the surrogate's work is the same in both",
        f"- device: {report.device_name}; {report.threads} CPU thread(s) for torch (numba the same where the "
        f"caller set it: bench --threads)",
        f"- timing: {report.warmup} warm-up call(s), median of {report.repeats}, whole workload per call",
        f"- errors: against {report.reference}, on {report.n_ref} of the cells, from the same pre-paced states; "
        "V RMSE over the beat, APD90 error = mean over cells of |APD90 - APD90_ref| / APD90_ref",
        "- matched accuracy: the solver's time per beat interpolated (log-log) on its dt sweep at the surrogate's "
        "error; 'capped' = the surrogate's error is above the coarsest stable dt's, whose time is used (flatters "
        "the surrogate: a coarser dt, if stable, would be faster); 'extrapolated' = below the finest dt's, "
        "first order assumed",
        "", markdown_table(header, rows), "", "## Verdict", "", *verdicts, "",
    ]
    return "\n".join(lines)


def _state_report_markdown(report: BeatBenchmarkReport, header: list[str], rows: list[list[Any]], unit: str) -> str:
    """The verdict of a ``cell_state`` problem: count (a) only, the voltage output's trace error only."""
    keep = [i for i, name in enumerate(header) if "APD90" not in name and "(b)" not in name]
    header = [header[i].replace("beat", "trajectory").replace("(a) speed-up", "speed-up")
              .replace("V ", f"{report.voltage_output} ") for i in keep]
    rows = [[row[i] for i in keep] for row in rows]
    verdicts = []
    for r in (r for r in report.rows if r.side == "surrogate"):
        a = r.speedup_a_v
        verdicts.append(
            f"- **{r.name}** ({report.voltage_output} RMSE {r.v_rmse:.3g}{unit}): "
            + (f"{a:.3g}x the solver's speed at matched {report.voltage_output} error "
               f"({'the surrogate is faster' if a > 1 else 'the solver is faster'})." if a else "-.")
            + ("" if r.matched_v_note == "interpolated" else f" Matched point {r.matched_v_note}."))
    t_end = report.save_dt * (report.n_t - 1)
    lines = [
        f"# Verdict: initial-state surrogates vs the {report.model} solver, {report.problem}", "",
        f"- workload: {report.n} fresh initial states (the problem's benchmark stream), one free trajectory each "
        f"(no stimulus) to t = {t_end:g} ms, the state every {report.save_dt:g} ms ({report.n_t} points) on both sides; "
        "one count only: there is no pacing to skip",
        f"- device: {report.device_name}; {report.threads} CPU thread(s) for torch (numba the same where the "
        f"caller set it: bench --threads)",
        f"- timing: {report.warmup} warm-up call(s), median of {report.repeats}, whole workload per call",
        f"- errors: the {report.voltage_output} output against {report.reference}, on {report.n_ref} of the "
        f"initial states; RMSE over the trajectory (no APD: a trajectory from an arbitrary state need not hold a "
        "whole action potential)",
        "- matched accuracy: as for beats (log-log interpolation on the solver's dt sweep; 'capped' flatters "
        "the surrogate, 'extrapolated' assumes first order)",
        "", markdown_table(header, rows), "", "## Verdict", "", *verdicts, "",
    ]
    return "\n".join(lines)


def plot_beat_work_precision(report: BeatBenchmarkReport, path: Path) -> Path:
    """Two panels, V RMSE and APD90 error against time per beat: the solver's dt sweep (count a, and count b
    with pacing added) as lines, the surrogates as points."""
    plt = pyplot()
    panels = [("v_rmse", f"{report.voltage_output} RMSE vs reference ({report.voltage_unit or 'V units'})")]
    if report.kind != "cell_state":  # free trajectories have no APD
        panels.append(("apd90_err_pct", "APD90 error vs reference (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), squeeze=False)
    axes = axes[0]
    solver = [r for r in report.rows if r.side == "solver" and r.stable]
    pacing = report.n_prepace * report.pace_time_per_beat_s
    for ax, (key, label) in zip(axes, panels):
        times = [r.time_per_beat_s * 1e3 for r in solver]
        values = [getattr(r, key) for r in solver]
        ax.plot(times, values, "o-", color="grey", label=f"solver, one beat (a) [{solver[0].backend if solver else ''}]")
        if math.isfinite(pacing):
            ax.plot([t + pacing * 1e3 for t in times], values, "o--", color="silver",
                    label=f"solver, new parameters (b): + {report.n_prepace} pacing beats")
        for r in solver:
            ax.annotate(r.setting, (r.time_per_beat_s * 1e3, getattr(r, key)), fontsize=7, color="grey",
                        xytext=(3, 3), textcoords="offset points")
        for r in (r for r in report.rows if r.side == "surrogate"):
            ax.plot(r.time_per_beat_s * 1e3, getattr(r, key), "s", label=f"{r.name} [{r.backend}]")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time per trajectory (ms), median" if report.kind == "cell_state"
                      else "time per beat per cell (ms), median")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"work-precision, {report.problem}, {report.n} cells, {report.device_name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_beat_report(report: BeatBenchmarkReport, out_dir: Path) -> dict[str, Path]:
    """``benchmark.md``, ``benchmark.json`` and ``work_precision.png`` in ``out_dir``."""
    return write_report_files(report, out_dir, beat_report_markdown(report),
                              lambda path: plot_beat_work_precision(report, path))
