"""The inference sweep (thesis 4.4, Figures 39-40, Tables 12-13): untrained SiLU MLPs timed per backend.

Inference cost does not depend on the weights, so untrained networks of every width x depth give the
cost model: time per point ~ neurons * C(layers) (Table 12), and the speed-up of the compiled
backend over the plain one ~ neurons * C(layers) (Table 13; the thesis compared TensorRT with plain
PyTorch on CUDA cores, on a CPU host it is torch.compile against eager, and the report says which).

Architectures come from ``search_spaces/inference_sweep.yaml`` when it exists (``layers.choices`` and
``layers.depths``, the search layer's format), else from the widths and depths given. ``uniform``
(default) builds one network per (width, depth) with equal widths; ``all`` every sequence of the
widths with repetition (the thesis' pool: 3905 networks for 5 widths x 1-5 layers), optionally
subsampled to ``max_models``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhn_automl._package_data import package_data_dir
from fhn_automl.learning.architecture import architecture_figures, parse_layers
from fhn_automl.learning.untrained import untrained_model
from fhn_automl.physics.problems import PROBLEMS, Problem
from fhn_automl.post.analysis import (SPEEDUP_FORMULA, TIME_FORMULA, activation_effect, anova, anova_markdown,
                                      plot_activation_sweep, plot_sweep)
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.compile import compile_surrogate, tune_batch_size
from fhn_automl.post.thesis_tables import INFERENCE_SWEEP_NETWORKS, TABLES

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_WIDTHS: tuple[int, ...] = (8, 16, 32, 64, 128)
DEFAULT_DEPTHS: tuple[int, ...] = (1, 2, 3, 4, 5)
SWEEP_FILE = package_data_dir("search_spaces") / "inference_sweep.yaml"


def sweep_settings_from_file(path: Path = SWEEP_FILE) -> dict[str, Any] | None:
    """Widths, depths and activation from the search layer's sweep file, or None when it is absent."""
    if not path.exists():
        return None
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    layers = raw.get("layers") or {}
    if isinstance(layers, dict) and "choices" in layers:
        tokens = [parse_layers(token)[0] for token in layers["choices"]]
        return {"widths": sorted({t.width for t in tokens}), "activation": tokens[0].activation,
                "depths": [int(d) for d in layers.get("depths", DEFAULT_DEPTHS)], "source": str(path)}
    return None


def sweep_architectures(widths: Sequence[int], depths: Sequence[int], *, activation: str = "silu",
                        mode: str = "uniform", max_models: int | None = None, seed: int = 0) -> list[str]:
    """Layer notations of the sweep (see the module docstring for the modes)."""
    if mode == "uniform":
        layers = [",".join([f"{activation}-{w}"] * d) for d in depths for w in widths]
    elif mode == "all":
        layers = [",".join(f"{activation}-{w}" for w in combo)
                  for d in depths for combo in itertools.product(widths, repeat=d)]
    else:
        raise ValueError(f"unknown sweep mode {mode!r}; use 'uniform' or 'all'")
    if max_models is not None and len(layers) > max_models:
        layers = sorted(random.Random(seed).sample(layers, max_models), key=layers.index)
    return layers


def time_model_backends(model, n_in: int, *, backends: Sequence[str], device: str, n_points: int,
                        batch_sizes: Sequence[int] | None, repeats: int, precision: str = "fp32") -> list[dict[str, Any]]:
    """Per backend: the tuned batch size and the median time per point (and what compile cost)."""
    rows = []
    for backend in backends:
        compiled = compile_surrogate(model, n_in, backend=backend, device=device, precision=precision)
        tuning = tune_batch_size(compiled, n_points=n_points, candidates=batch_sizes, repeats=repeats)
        rows.append({"backend": compiled.backend, "backend_label": compiled.label, "batch_size": tuning.best,
                     "time_per_point_s": tuning.per_point_s[tuning.best], "compile_s": compiled.compile_seconds,
                     "note": compiled.note})
    return rows


def run_inference_sweep(architectures: Sequence[str], *, problem: Problem = PROBLEMS["problem_b_s"],
                        backends: Sequence[str] = ("eager", "compile"), device: str = "cpu", n_points: int = 65_536,
                        batch_sizes: Sequence[int] | None = (4_096, 16_384), repeats: int = 3,
                        points_per_ic: int = 10, workload_n: int = 16_000_000, seed: int = 0) -> "pd.DataFrame":
    """One row per (architecture, backend); ``speedup`` = time of ``backends[0]`` / this backend's time.

    ``workload_time_s`` scales the time per point to the thesis workload (``workload_n`` ICs x
    ``points_per_ic``), the y axis of Figure 39.
    """
    import pandas as pd

    rows = []
    for layers in architectures:
        model = untrained_model(problem, layers, seed=seed)
        n_in, n_out = model.spec.n_in, model.spec.n_out
        figures = architecture_figures(layers, n_in, n_out)
        timed = time_model_backends(model, n_in, backends=backends, device=device, n_points=n_points,
                                    batch_sizes=batch_sizes, repeats=repeats)
        reference = timed[0]["time_per_point_s"]
        for entry in timed:
            rows.append({"layers": layers, "depth": figures["depth"], "neurons": figures["neurons"],
                         "macs": figures["macs"], **entry,
                         "workload_time_s": entry["time_per_point_s"] * points_per_ic * workload_n,
                         "speedup": reference / entry["time_per_point_s"],
                         "speedup_reference": timed[0]["backend_label"]})
    return pd.DataFrame(rows)


def activation_sweep_architectures(activations: Sequence[str], widths: Sequence[int],
                                   depths: Sequence[int]) -> list[str]:
    """Figure 42's networks: the same equal-width architectures once per activation function."""
    return [layers for activation in activations for layers in sweep_architectures(widths, depths, activation=activation)]


def _activation_of(layers: str) -> str:
    found = {spec.activation for spec in parse_layers(layers)}
    return next(iter(found)) if len(found) == 1 else "mixed"


def _thesis_line(number: int) -> str:
    table = TABLES[number]
    terms = ", ".join(f"{r['source']} F = {r['F']:g}" for r in table.rows if r["F"] is not None)
    return f"Thesis Table {number} (TensorRT on a GPU, {table.source}): {terms}.\n"


def write_sweep_report(sweep: "pd.DataFrame", out_dir: Path, *, euler_workload_time_s: float | None = None,
                       title: str = "Inference sweep") -> dict[str, Path]:
    """``sweep.csv``, ``sweep.md`` (Tables 12-13), ``sweep_time.png`` (Fig. 39), ``sweep_speedup.png`` (Fig. 40);
    with networks of several activations also their comparison and ``sweep_activation.png`` (Fig. 42).

    Tables 12-13 are fitted on the networks of one activation (SiLU where present, as the thesis):
    mixing activations would add their differences to the residual.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"csv": out_dir / "sweep.csv", "markdown": out_dir / "sweep.md",
             "time_plot": out_dir / "sweep_time.png", "speedup_plot": out_dir / "sweep_speedup.png"}
    sweep.to_csv(files["csv"], index=False)
    backends = list(dict.fromkeys(sweep["backend_label"]))
    compiled_label = backends[-1]
    activations = sweep["layers"].map(_activation_of)
    kinds = list(dict.fromkeys(activations))
    fitted_activation = "silu" if "silu" in kinds else kinds[0]
    everything = sweep[sweep["backend_label"] == compiled_label]
    main = everything[activations[everything.index] == fitted_activation]
    parts = [f"# {title}", "",
             f"{sweep['layers'].nunique()} untrained networks x backends {', '.join(backends)}; time per point at "
             "the tuned batch size (median, no host-device transfers); workload time = time per point x 10 x "
             f"16,000,000 (thesis Figure 39). The thesis fitted Tables 12-13 on {INFERENCE_SWEEP_NETWORKS} SiLU "
             f"networks; this fit has {main['layers'].nunique()} ({fitted_activation}), `depth` (the number of "
             "layers) entering as one numeric term as in the thesis' tables.", ""]
    table, reason = anova(main, TIME_FORMULA)
    parts.append(anova_markdown(f"Inference time per point, backend {compiled_label} (thesis Table 12)", table, reason))
    parts.append(_thesis_line(12))
    if len(backends) > 1:
        table, reason = anova(main, SPEEDUP_FORMULA)
        parts.append(anova_markdown(f"Speed-up of {compiled_label} over {backends[0]} (thesis Table 13)", table, reason))
        parts.append(_thesis_line(13))
    if len(kinds) > 1:
        summary, table, reason = activation_effect(everything, reference=fitted_activation)
        parts += ["### Activation functions (thesis Figure 42)", "",
                  f"Median time per point of each activation relative to {fitted_activation} on the same widths; the "
                  "thesis found activation functions had little impact on inference cost.", "",
                  markdown_table(["activation", "networks", "median time / point (s)",
                                  f"median ratio to {fitted_activation}"],
                                 [[r.activation, r.networks, r.median_time_per_point_s, r.median_ratio_to_reference]
                                  for r in summary.itertuples()]), ""]
        parts.append(anova_markdown("Time per point by activation and neurons", table, reason))
        files["activation_plot"] = plot_activation_sweep(everything, out_dir / "sweep_activation.png")
    shown = main.sort_values(["depth", "neurons"])
    parts += ["### Times", "", markdown_table(
        ["layers", "neurons", "backend", "batch", "time / point (s)", "workload time (s)", "speed-up"],
        [[r.layers, r.neurons, r.backend_label, r.batch_size, r.time_per_point_s, r.workload_time_s, r.speedup]
         for r in shown.itertuples()]), ""]
    files["markdown"].write_text("\n".join(parts))
    plot_sweep(main, files["time_plot"], column="workload_time_s",
               ylabel=f"time for 16M ICs x 10 points (s), {compiled_label}", euler_line=euler_workload_time_s)
    plot_sweep(main, files["speedup_plot"], column="speedup", ylabel=f"speed-up of {compiled_label} over {backends[0]}")
    return files
