"""Analysis of a search and of the inference sweep: ANOVA tables, notable models, plots.

The thesis' explanatory models (4.2.1 eq. 4.2, 4.4 eq. 4.3 and Tables 5-6, 12-13), fitted by
ordinary least squares and summarised with a type-II ANOVA (statsmodels), so the F-values compare
how much of the variance each factor explains:

- error:    ``mean_err ~ C(shape_class) * neurons``
- time:     ``time_per_point_s ~ neurons * C(depth)``
- speed-up: ``speedup ~ neurons * C(depth)`` (compiled backend against the plain one)

statsmodels, pandas and matplotlib are imported inside the functions (post's imports stay light).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhn_automl.post.plotting import finish_figure, pyplot

if TYPE_CHECKING:
    import pandas as pd

ERROR_FORMULA = "mean_err ~ C(shape_class) * neurons"
TIME_FORMULA = "time_per_point_s ~ neurons * C(depth)"
SPEEDUP_FORMULA = "speedup ~ neurons * C(depth)"
ERROR_THRESHOLDS: tuple[float, ...] = (1e-1, 1e-2, 5e-3, 1e-3, 5e-4)
NEURON_BUDGETS: tuple[int, ...] = (16, 32, 64, 128, 256)


def anova(data: "pd.DataFrame", formula: str) -> tuple["pd.DataFrame | None", str]:
    """(type-II ANOVA table with the OLS fit's R^2 in ``attrs``, reason if it could not be fitted).

    A factor needs two levels and the fit needs more rows than parameters; when that fails the
    reason is returned instead of an exception, because a smoke search often has one shape class.
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    response = formula.split("~")[0].strip()
    frame = data.dropna(subset=[response])
    for factor in ("shape_class", "depth"):
        if f"C({factor})" in formula and frame[factor].nunique() < 2:
            return None, f"only one level of {factor} ({frame[factor].unique().tolist()}): nothing to compare"
    import numpy as np

    try:
        model = smf.ols(formula, data=frame)
    except Exception as exc:  # missing columns, bad formula
        return None, f"OLS set-up failed: {type(exc).__name__}: {exc}"
    rank = np.linalg.matrix_rank(model.exog)
    if rank < model.exog.shape[1] or model.exog.shape[0] <= model.exog.shape[1]:
        return None, (f"{len(frame)} rows cannot identify the {model.exog.shape[1]} parameters of the model "
                      f"(design rank {rank}): too few models or levels")
    fit = model.fit()
    table = sm.stats.anova_lm(fit, typ=2)
    table.attrs["r_squared"] = float(fit.rsquared)
    table.attrs["n"] = int(fit.nobs)
    table.attrs["formula"] = formula
    table.attrs["coefficients"] = {name: float(value) for name, value in fit.params.items()}
    return table, ""


def anova_markdown(title: str, table: "pd.DataFrame | None", reason: str) -> str:
    if table is None:
        return f"### {title}\n\nnot fitted: {reason}\n"
    from fhn_automl.post.benchmark import markdown_table

    rows = [[source, r["sum_sq"], r["df"], r["F"], r["PR(>F)"]] for source, r in table.iterrows()]
    coefficients = ", ".join(f"{k} = {v:.3g}" for k, v in table.attrs["coefficients"].items())
    return (f"### {title}\n\n`{table.attrs['formula']}` (OLS, type-II ANOVA; n = {table.attrs['n']}, "
            f"R^2 = {table.attrs['r_squared']:.3f})\n\n"
            + markdown_table(["source", "sum sq", "df", "F", "p"], rows)
            + f"\n\nfitted coefficients: {coefficients}\n")


def notable_models(trials: "pd.DataFrame", *, thresholds: Sequence[float] = ERROR_THRESHOLDS,
                   budgets: Sequence[int] = NEURON_BUDGETS) -> "pd.DataFrame":
    """Thesis Table 4: the smallest model under each error threshold, the best under each neuron budget,
    the best two-layer model and the best overall. Ties in size go to the lower error."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    frame = trials.dropna(subset=["mean_err"])

    def add(note: str, pick: "pd.DataFrame", order: list[str]) -> None:
        if len(pick):
            best = pick.sort_values(order + ["run_id"]).iloc[0]
            rows.append({"layers": best["layers"], "mean_err": best["mean_err"], "neurons": int(best["neurons"]),
                         "shape_class": best["shape_class"], "note": note, "run_id": best["run_id"]})

    for threshold in thresholds:
        add(f"smallest model < {threshold:g}", frame[frame["mean_err"] < threshold], ["neurons", "mean_err"])
    for budget in budgets:
        add(f"best model <= {budget} neurons", frame[frame["neurons"] <= budget], ["mean_err", "neurons"])
    add("best two-layer", frame[frame["depth"] == 2], ["mean_err", "neurons"])
    add("best model", frame, ["mean_err", "neurons"])
    return pd.DataFrame(rows, columns=["layers", "mean_err", "neurons", "shape_class", "note", "run_id"])


def plot_error_vs_neurons(trials: "pd.DataFrame", path: Path) -> Path:
    """Thesis Fig. 28-style: validation mean error against neuron count, one colour per shape class."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for shape, group in trials.dropna(subset=["mean_err"]).groupby("shape_class"):
        ax.scatter(group["neurons"], group["mean_err"], label=shape, s=18)
    return finish_figure(fig, ax, path, xlabel="hidden neurons", ylabel="validation mean |du| + |dw|",
                         xscale="log2", legend_title="shape class")


def plot_error_vs_time(trials: "pd.DataFrame", path: Path, *, euler_time_per_ic: float | None = None,
                       euler_err: float | None = None, points_per_ic: int = 10, backend: str = "") -> Path:
    """Thesis Fig. 41: error against inference time per initial condition, with the solver's lines.

    Time per IC = time per point x points per IC (10 on the thesis workload), so the surrogates and
    Euler dt = 0.1 sit on the same axis; the grey dotted lines mark Euler's time and error.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    frame = trials.dropna(subset=["mean_err", "time_per_point_s"])
    ax.scatter(frame["time_per_point_s"] * points_per_ic, frame["mean_err"], s=18, c="tab:blue",
               label=f"surrogates [{backend}]" if backend else "surrogates")
    if "pareto" in frame:
        front = frame[frame["pareto"]].sort_values("mean_err")
        ax.plot(front["time_per_point_s"] * points_per_ic, front["mean_err"], "r.-", label="Pareto front")
    if euler_time_per_ic is not None:
        ax.axvline(euler_time_per_ic, color="grey", ls=":", label="Euler dt=0.1 time")
    if euler_err is not None:
        ax.axhline(euler_err, color="grey", ls="--", label="Euler dt=0.1 error (vs DOP853)")
    return finish_figure(fig, ax, path, xlabel=f"inference time per initial condition (s; {points_per_ic} points)",
                         ylabel="validation mean |du| + |dw|")


def plot_pareto(trials: "pd.DataFrame", path: Path, *, cost_column: str = "time_per_point_s",
                cost_label: str = "time per point (s)") -> Path:
    """All models (grey) and the front (red, labelled with the layer notation)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    frame = trials.dropna(subset=["mean_err", cost_column])
    ax.scatter(frame[cost_column], frame["mean_err"], s=14, c="lightgrey", label="all finished trials")
    front = frame[frame["pareto"]].sort_values(cost_column)
    ax.plot(front[cost_column], front["mean_err"], "o-", c="tab:red", label="Pareto front")
    for _, row in front.iterrows():
        ax.annotate(row["layers"], (row[cost_column], row["mean_err"]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    return finish_figure(fig, ax, path, xlabel=cost_label, ylabel="validation mean |du| + |dw|")


def plot_sweep(sweep: "pd.DataFrame", path: Path, *, column: str, ylabel: str,
               euler_line: float | None = None) -> Path:
    """Thesis Fig. 39 (time vs neurons) / Fig. 40 (speed-up vs neurons), one line per depth."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    frame = sweep.dropna(subset=[column])
    for depth, group in frame.groupby("depth"):
        group = group.groupby("neurons", as_index=False)[column].median()
        ax.plot(group["neurons"], group[column], "o-", ms=4, label=f"{depth} layer(s)")
    if euler_line is not None and math.isfinite(euler_line):
        ax.axhline(euler_line, color="grey", ls=":", label="Euler dt=0.1 (same set)")
    return finish_figure(fig, ax, path, xlabel="hidden neurons", ylabel=ylabel, xscale=None, yscale=None,
                         grid_which="major")
