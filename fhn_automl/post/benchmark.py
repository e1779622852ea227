"""Surrogates against the Euler solver on the thesis workload, at matched accuracy.

Workload (thesis 4.4, Table 11): ``n`` initial conditions (16,000,000 in the thesis), Euler with
dt = 0.1 to t = 10, the networks evaluated once per time unit (t = 1, ..., 10; iterators once per
``dt_net``). Both sides are timed by ``timing.time_call`` (warm-up, repetitions, median) on the same
device, and on a GPU both keep inputs and outputs on the device (host-device transfers excluded, as
the thesis did); on the CPU there are none.

Euler at dt = 0.1 is itself off by ~1e-3 to 1e-2 (FACTS.md), so a raw "network vs Euler" time ratio
says little. Both sides' errors are measured against a fine reference (``scipy`` DOP853, rtol 1e-10,
in float64) on a subset of the initial conditions, Euler is run at several dt, and each surrogate's
speed-up is quoted against the Euler time *at the surrogate's own error*, interpolated on Euler's
work-precision curve (log-log; Euler is first order, so beyond the measured range the curve is
extended with slope -1 and the figure is marked extrapolated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fhn_automl.physics.error_measures import error_metrics
from fhn_automl.physics.euler import euler_trajectories
from fhn_automl.physics.problems import Problem
from fhn_automl.post.compile import CompiledSurrogate, evaluate_in_batches
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.plotting import finish_figure, pyplot
from fhn_automl.post.settings import DEFAULT_EULER_DTS  # Euler steps of the work-precision curve
from fhn_automl.post.timing import Timing, describe_device, time_call

THESIS_N = 16_000_000
THESIS_T_END = 10.0
#: the thesis' baseline Euler step (its largest stable one)
BASELINE_DT = 0.1


@dataclass(frozen=True)
class Workload:
    """The initial conditions (and K) of one benchmark run, on the host, float32."""

    problem: Problem
    n: int
    t_end: float
    eval_every: float
    u0: np.ndarray
    w0: np.ndarray
    k: np.ndarray
    i_app: np.ndarray

    @property
    def eval_times(self) -> np.ndarray:
        count = int(round(self.t_end / self.eval_every))
        return self.eval_every * np.arange(1, count + 1, dtype=np.float64)

    def subset(self, n_ref: int) -> "Workload":
        m = min(n_ref, self.n)
        return Workload(self.problem, m, self.t_end, self.eval_every, self.u0[:m], self.w0[:m], self.k[:m],
                        self.i_app[:m])


def make_workload(problem: Problem, n: int, *, t_end: float = THESIS_T_END, eval_every: float = 1.0,
                  seed: int = 0) -> Workload:
    """``n`` uniform initial states (and K) in the problem's box; problem A repeats its fixed state.

    ``t_end`` is clipped to the problem's time span (the small-window problem ends at t = 5).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    if problem.kind == "iterator" and problem.dt_net:
        eval_every = float(problem.dt_net)
    else:
        t_end = min(t_end, problem.t_end)
    if problem.fixed_initial_state is not None:
        u0 = np.full(n, problem.fixed_initial_state[0], dtype=np.float32)
        w0 = np.full(n, problem.fixed_initial_state[1], dtype=np.float32)
    else:
        ranges = problem.initial_state_ranges()
        u_key, w_key = ("u0", "w0") if problem.kind == "trajectory" else ("u", "w")
        u0 = rng.uniform(*ranges[u_key], size=n).astype(np.float32)
        w0 = rng.uniform(*ranges[w_key], size=n).astype(np.float32)
    k = rng.uniform(*problem.ranges["k"], size=n).astype(np.float32) if problem.has_k else np.zeros(n, np.float32)
    i_app = np.asarray(problem.i_app(k), dtype=np.float32)
    return Workload(problem, n, float(t_end), float(eval_every), u0, w0, k, i_app)


def reference_states(workload: Workload, *, rtol: float = 1e-10, atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """(U, W) at ``eval_times`` by DOP853 in float64, all trajectories as one vectorised system.

    One system of 2n equations keeps scipy's Python overhead to one solve; with the RMS error norm
    each component's error is below sqrt(2n) * (atol + rtol |y|), far under the errors compared here.
    """
    from scipy.integrate import solve_ivp

    model = workload.problem.model
    n = workload.n
    i_app = workload.i_app.astype(np.float64)

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        du, dw = model.rhs(y[:n], y[n:], i_app)
        return np.concatenate([du, dw])

    y0 = np.concatenate([workload.u0, workload.w0]).astype(np.float64)
    times = workload.eval_times
    solution = solve_ivp(rhs, (0.0, float(times[-1])), y0, method="DOP853", t_eval=times, rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"reference solve failed: {solution.message}")
    return solution.y[:n], solution.y[n:]


def point_errors(u: np.ndarray, w: np.ndarray, u_ref: np.ndarray, w_ref: np.ndarray) -> dict[str, float]:
    """Both measures (``physics.error_measures``) over all (trajectory, time) points: ``mean_err`` /
    ``max_err`` of |dU| + |dW| (eq. 3.3) and ``code_mean_err`` / ``code_max_err`` (the thesis code's)."""
    diff = np.stack([np.abs(u.astype(np.float64) - u_ref).ravel(), np.abs(w.astype(np.float64) - w_ref).ravel()], 1)
    return error_metrics(diff)


@dataclass
class BenchRow:
    """One line of the report: a solver setting or a surrogate, its time and its error."""

    side: str              # "euler" or "surrogate"
    name: str              # "euler dt=0.1" or the layer notation
    backend: str           # "numba-cpu", "cuda-cupy", "compile-fp32@cpu", ...
    time_s: float          # median over repetitions, whole workload
    time_per_ic_s: float
    mean_err: float        # eq. 3.3 (|dU| + |dW|): what the speed-up at matched accuracy is read at
    max_err: float
    setting: str = ""      # dt, batch size
    code_mean_err: float | None = None   # the thesis code's measure (physics.error_measures)
    code_max_err: float | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    speedup_vs_baseline: float | None = None       # Euler dt=0.1 time / this time
    matched_euler_time_s: float | None = None      # Euler time at this row's error
    speedup_matched: float | None = None
    matched_note: str = ""
    untrained: bool = False


@dataclass
class BenchmarkReport:
    problem: str
    n: int
    n_ref: int
    t_end: float
    eval_every: float
    device: str
    device_name: str
    warmup: int
    repeats: int
    transfers: str
    rows: list[BenchRow]
    reference: str
    seconds: dict[str, float] = field(default_factory=dict)   # wall time of each phase of the benchmark

    @property
    def points_per_ic(self) -> int:
        return int(round(self.t_end / self.eval_every))

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [asdict(row) for row in self.rows]
        return out


def _euler_backend(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def time_euler(workload: Workload, dt: float, *, device: str, warmup: int, repeats: int) -> Timing:
    """Median time of the whole workload with the physics layer's kernel (saved once per time unit)."""
    model = workload.problem.model
    n_steps = int(round(workload.t_end / dt))
    save_every = max(1, int(round(workload.eval_every / dt)))
    backend = _euler_backend(device)
    if backend == "cuda":  # run on an H200 (RESULTS.md, issue 20): inputs and outputs stay on the device
        import cupy

        u0, w0, i_app = (cupy.asarray(a) for a in (workload.u0, workload.w0, workload.i_app))

        def run() -> None:
            euler_trajectories(model, u0, w0, i_app, dt=dt, n_steps=n_steps, save_every=save_every,
                               backend="cuda", to_host=False)
            cupy.cuda.Device().synchronize()

        transfers = "excluded: inputs and outputs stay on the GPU"
    else:
        buffers = None

        def run() -> None:
            nonlocal buffers
            U, W = euler_trajectories(model, workload.u0, workload.w0, workload.i_app, dt=dt, n_steps=n_steps,
                                      save_every=save_every, backend="cpu", out=buffers)
            buffers = (U.T, W.T)  # reuse the time-major storage, as a surrogate reuses its output buffer

        transfers = "none: CPU, no host-device transfers"
    with _torch_threads_kept():
        return time_call(run, warmup=warmup, repeats=repeats, device=device, transfers=transfers)


class _torch_threads_kept:
    """numba's ``omp`` layer shares torch's OpenMP runtime and resets its thread count at each parallel
    launch (torch went from 1 to 2 threads after one Euler run, and torch.compile's guard on the thread
    count then recompiled every model): put torch's count back after the solver ran."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()

    def __exit__(self, *exc: object) -> None:
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)


def euler_errors(workload: Workload, dt: float, ref: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Errors of float32 Euler (the precision that is timed) against the reference."""
    model = workload.problem.model
    n_steps = int(round(workload.t_end / dt))
    save_every = max(1, int(round(workload.eval_every / dt)))
    with _torch_threads_kept():
        U, W = euler_trajectories(model, workload.u0, workload.w0, workload.i_app, dt=dt, n_steps=n_steps,
                                  save_every=save_every, backend="cpu", dtype=np.float32)
    return point_errors(U[:, 1:], W[:, 1:], *ref)


class SurrogateRunner:
    """Evaluates one compiled surrogate on a workload the way a simulator would.

    Trajectory models: for each evaluation time, one input block (t, u0, w0[, k]) in the spec's input
    order, evaluated in batches of ``batch_size`` into a preallocated output. Iterator models: the
    state is fed back ``t_end / dt_net`` times. The device copies of the initial states are made
    once, outside the timed region.
    """

    def __init__(self, surrogate: CompiledSurrogate, spec_inputs: Sequence[str], kind: str, workload: Workload,
                 batch_size: int) -> None:
        self.surrogate = surrogate
        self.inputs = tuple(spec_inputs)
        self.iterator = kind == "iter"
        self.workload = workload
        self.batch_size = batch_size
        device = surrogate.device
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
        self.columns = {"u0": as_tensor(workload.u0), "w0": as_tensor(workload.w0), "k": as_tensor(workload.k)}
        self.columns["u"], self.columns["w"] = self.columns["u0"], self.columns["w0"]
        self.times = workload.eval_times
        self.out = torch.empty(len(self.times), workload.n, 2, device=device)
        self.x = torch.empty(workload.n, len(self.inputs), device=device)

    def run(self) -> torch.Tensor:
        """Outputs of shape (n_times, n, 2) on the device."""
        if self.iterator:
            for column, name in enumerate(self.inputs):
                self.x[:, column] = self.columns[name]
            for j in range(len(self.times)):
                y = evaluate_in_batches(self.surrogate, self.x, self.batch_size, self.out[j])
                self.x[:, :2] = y
            return self.out
        for j, t in enumerate(self.times):
            for column, name in enumerate(self.inputs):
                if name == "t":
                    self.x[:, column] = float(t)
                else:
                    self.x[:, column] = self.columns[name]
            evaluate_in_batches(self.surrogate, self.x, self.batch_size, self.out[j])
        return self.out


def surrogate_errors(surrogate: CompiledSurrogate, spec_inputs: Sequence[str], kind: str, subset: Workload,
                     ref: tuple[np.ndarray, np.ndarray], batch_size: int) -> dict[str, float]:
    out = SurrogateRunner(surrogate, spec_inputs, kind, subset, batch_size).run().float().cpu().numpy()
    return point_errors(out[:, :, 0].T, out[:, :, 1].T, *ref)


def matched_euler_time(error: float, curve: Sequence[tuple[float, float]]) -> tuple[float, str]:
    """Euler's time at ``error`` from its (error, time) points: log-log interpolation, slope -1 outside."""
    points = sorted((e, t) for e, t in curve if e > 0 and math.isfinite(e))
    if not points or not math.isfinite(error) or error <= 0:
        return math.nan, "no usable Euler points"
    log_e = np.log([e for e, _ in points])
    log_t = np.log([t for _, t in points])
    x = math.log(error)
    if log_e[0] <= x <= log_e[-1]:
        return float(np.exp(np.interp(x, log_e, log_t))), "interpolated"
    anchor_e, anchor_t = points[0] if x < log_e[0] else points[-1]
    return anchor_t * anchor_e / error, "extrapolated (Euler first order: time ~ 1/error)"


@dataclass
class SurrogateEntry:
    """What the benchmark needs of one surrogate."""

    name: str
    surrogate: CompiledSurrogate
    inputs: tuple[str, ...]
    kind: str
    batch_size: int
    untrained: bool = False


def run_benchmark(problem: Problem, surrogates: Sequence[SurrogateEntry], *, n: int, n_ref: int = 512,
                  euler_dts: Sequence[float] = DEFAULT_EULER_DTS, device: str = "cpu", warmup: int = 1,
                  repeats: int = 5, seed: int = 0, t_end: float = THESIS_T_END) -> BenchmarkReport:
    """Time Euler at each dt and every surrogate on the same workload; errors on ``n_ref`` ICs."""
    import time

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    workload = make_workload(problem, n, t_end=t_end, seed=seed)
    subset = workload.subset(n_ref)
    ref = reference_states(subset)
    seconds["reference"] = time.perf_counter() - started
    rows: list[BenchRow] = []
    euler_label = "cuda-cupy" if device.startswith("cuda") else "numba-cpu"
    started = time.perf_counter()
    for dt in euler_dts:
        timing = time_euler(workload, dt, device=device, warmup=warmup, repeats=repeats)
        errors = euler_errors(subset, dt, ref)
        rows.append(BenchRow("euler", f"euler dt={dt:g}", euler_label, timing.median_s, timing.median_s / workload.n,
                             errors["mean_err"], errors["max_err"], setting=f"dt={dt:g}", timing=timing.as_dict(),
                             code_mean_err=errors["code_mean_err"], code_max_err=errors["code_max_err"]))
    seconds["euler"] = time.perf_counter() - started
    for entry in surrogates:
        started = time.perf_counter()
        runner = SurrogateRunner(entry.surrogate, entry.inputs, entry.kind, workload, entry.batch_size)
        timing = time_call(runner.run, warmup=warmup, repeats=repeats, device=entry.surrogate.device,
                           transfers=_surrogate_transfers(entry.surrogate.device))
        errors = surrogate_errors(entry.surrogate, entry.inputs, entry.kind, subset, ref, entry.batch_size)
        rows.append(BenchRow("surrogate", entry.name, entry.surrogate.label, timing.median_s,
                             timing.median_s / workload.n, errors["mean_err"], errors["max_err"],
                             setting=f"batch={entry.batch_size}", timing=timing.as_dict(), untrained=entry.untrained,
                             code_mean_err=errors["code_mean_err"], code_max_err=errors["code_max_err"]))
        seconds[f"surrogate {entry.name}"] = time.perf_counter() - started
    _add_speedups(rows)
    transfers = ("excluded on both sides: inputs and outputs stay on the GPU" if device.startswith("cuda")
                 else "none: CPU on both sides")
    return BenchmarkReport(problem=problem.key, n=workload.n, n_ref=subset.n, t_end=workload.t_end,
                           eval_every=workload.eval_every, device=device, device_name=describe_device(device),
                           warmup=warmup, repeats=repeats, transfers=transfers, rows=rows,
                           reference="scipy solve_ivp DOP853, rtol 1e-10, atol 1e-12, float64", seconds=seconds)


def _surrogate_transfers(device: str) -> str:
    return ("excluded: inputs and outputs stay on the GPU" if device.startswith("cuda")
            else "none: CPU, no host-device transfers")


def _add_speedups(rows: list[BenchRow]) -> None:
    euler = [row for row in rows if row.side == "euler"]
    baseline = next((row for row in euler if row.setting == f"dt={BASELINE_DT:g}"), euler[0] if euler else None)
    curve = [(row.mean_err, row.time_s) for row in euler]
    for row in rows:
        if baseline is not None:
            row.speedup_vs_baseline = baseline.time_s / row.time_s
        if row.side == "surrogate":
            matched, note = matched_euler_time(row.mean_err, curve)
            row.matched_euler_time_s = matched
            row.speedup_matched = matched / row.time_s if math.isfinite(matched) else None
            row.matched_note = note


# ----------------------------------------------------------------------------- report files


def report_markdown(report: BenchmarkReport) -> str:
    header = ["side", "name", "backend", "setting", "time (s)", "time / IC (s)", "time / point (s)", "mean err",
              "max err", "code mean err", "code max err", "speedup vs Euler dt=0.1", "Euler time at same err (s)",
              "speedup at matched accuracy"]
    points = report.n * report.points_per_ic
    rows = [[r.side, r.name + (" (untrained)" if r.untrained else ""), r.backend, r.setting, r.time_s,
             r.time_per_ic_s, r.time_s / points if r.side == "surrogate" else None, r.mean_err, r.max_err,
             r.code_mean_err, r.code_max_err,
             r.speedup_vs_baseline, r.matched_euler_time_s,
             None if r.speedup_matched is None else f"{r.speedup_matched:.3g} ({r.matched_note.split(' ')[0]})"]
            for r in report.rows]
    lines = [
        f"# Benchmark: surrogates vs Euler, {report.problem}",
        "",
        f"- workload: {report.n:,} initial conditions, t = 0..{report.t_end:g}, outputs every "
        f"{report.eval_every:g} time unit(s) (thesis: 16,000,000 ICs, Euler dt = 0.1 to t = 10)",
        f"- device: {report.device_name}",
        f"- timing: {report.warmup} warm-up call(s), median of {report.repeats} repetitions, whole workload per call; "
        f"a surrogate's time includes writing its inputs (t, u0, w0[, k]) for each of the {report.points_per_ic} "
        "output times, so its time / point is comparable with the tuner's figure at the same batch size "
        "and thread count",
        f"- host-device transfers: {report.transfers}",
        f"- errors: mean / max of |dU| + |dW| (eq. 3.3) and, as the thesis' code measures (code mean / max), the "
        f"mean of |out - ref| over points and both outputs and the largest single component, over {report.n_ref} ICs "
        f"x all output times, against {report.reference}; the speed-up is read at the eq. 3.3 mean",
        "- speedup at matched accuracy: Euler's time interpolated (log-log) on its work-precision curve at the "
        "surrogate's error",
        "",
        markdown_table(header, rows),
        "",
    ]
    return "\n".join(lines)


def plot_work_precision(reports: Sequence[BenchmarkReport], path: Path) -> Path:
    """Error vs time: Euler at each dt as a line, surrogates as labelled points, one chart per call."""
    fig, ax = pyplot().subplots(figsize=(7, 5))
    for report in reports:
        euler = [r for r in report.rows if r.side == "euler"]
        ax.plot([r.time_s for r in euler], [r.mean_err for r in euler], "o-", color="grey",
                label=f"Euler ({euler[0].backend})" if euler else "Euler")
        for r in euler:
            ax.annotate(r.setting, (r.time_s, r.mean_err), fontsize=7, color="grey",
                        xytext=(3, 3), textcoords="offset points")
        for r in (r for r in report.rows if r.side == "surrogate"):
            ax.plot(r.time_s, r.mean_err, "s", label=f"{r.name} [{r.backend}]" + (" untrained" if r.untrained else ""))
    if reports:
        ax.set_title(f"work-precision, {reports[0].problem}, n = {reports[0].n:,}")
    return finish_figure(fig, ax, path, xlabel="time for the workload (s), median",
                         ylabel="mean |dU| + |dW| vs DOP853 reference", legend_fontsize=7)


def write_report(report: BenchmarkReport, out_dir: Path) -> dict[str, Path]:
    """``benchmark.md``, ``benchmark.json`` and ``work_precision.png`` in ``out_dir``."""
    return write_report_files(report, out_dir, report_markdown(report),
                              lambda path: plot_work_precision([report], path))


def write_report_files(report: Any, out_dir: Path, markdown: str, plot: Any) -> dict[str, Path]:
    """The three files of a benchmark report (either kind): ``markdown``, the report's ``as_dict()`` as JSON,
    and ``plot(path)``'s figure."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "benchmark.md", "json": out_dir / "benchmark.json",
             "plot": out_dir / "work_precision.png"}
    files["markdown"].write_text(markdown)
    files["json"].write_text(json.dumps(report.as_dict(), indent=2, default=str))
    plot(files["plot"])
    return files
