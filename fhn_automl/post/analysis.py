"""Analysis of a search and of the inference sweep: ANOVA tables, notable models, plots.

The thesis' explanatory models (4.2.1 eq. 4.2, 4.4 eq. 4.3 and Tables 5-6, 12-13), fitted by
ordinary least squares and summarised with a type-II ANOVA (statsmodels), so the F-values compare
how much of the variance each factor explains:

- error:    ``mean_err ~ C(shape_class) * neurons`` (eq. 4.2), fitted per study and model kind,
  never over a mix of them, and apart for models below / from 120 neurons (Tables 5-6);
- batch study: ``mean_err`` and the iteration time ``~ C(iccs) * bs + C(pin) * bs`` (eq. 4.1,
  Tables 2-3) on the 20-model batch x PINN x extra-region study of Problem B_S;
- time:     ``time_per_point_s ~ depth * neurons`` (Table 12) and
- speed-up: ``speedup ~ depth * neurons`` (Table 13; compiled backend against the plain one): the
  thesis' tables give ``layers`` one coefficient and one degree of freedom, a numeric term.

Besides: the Problem A t-tests (PINN vs DDNN on the scarce and on the complete set, Figures 17 and
21), Table 7's mean +- std / best / worst per time window, and the notable-model rules of Tables 4
and 8-10. Every function takes the runs as a pandas DataFrame (``trials_frame`` builds it from the
post-stage's ``TrialRecord``s: their row plus the trial's params) and returns tables.

statsmodels, scipy, pandas and matplotlib are imported inside the functions (post's imports stay light).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhn_automl.learning.architecture import parse_layers
from fhn_automl.physics.problems import get_problem
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.plotting import finish_figure, pyplot
from fhn_automl.post.thesis_tables import PROBLEM_A_T_TESTS, SIZE_SPLIT_VARIANCES, TABLES

if TYPE_CHECKING:
    import pandas as pd

ERROR_FORMULA = "mean_err ~ C(shape_class) * neurons"
TIME_FORMULA = "time_per_point_s ~ depth * neurons"
SPEEDUP_FORMULA = "speedup ~ depth * neurons"
#: eq. 4.1: iccs = the extra-region physics term is on, pin = the PINN residual is on, bs = batch size
BATCH_ERROR_FORMULA = "mean_err ~ C(iccs) * bs + C(pin) * bs"
BATCH_TIME_FORMULA = "step_time_ms ~ C(iccs) * bs + C(pin) * bs"
#: Tables 5-6 split the Problem B_S architecture grid here (neurons < 120 vs >= 120)
SIZE_SPLIT_NEURONS = 120
#: the thresholds of the thesis' notable-model tables (Tables 4, 8, 9, 10: 0.1, 0.01, 0.002, 0.001)
ERROR_THRESHOLDS: tuple[float, ...] = (1e-1, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4)
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
    for factor in re.findall(r"C\((\w+)\)", formula):
        if factor in frame and frame[factor].nunique() < 2:
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

    rows = [[source, r["sum_sq"], r["df"], r["F"], r["PR(>F)"]] for source, r in table.iterrows()]
    coefficients = ", ".join(f"{k} = {v:.3g}" for k, v in table.attrs["coefficients"].items())
    return (f"### {title}\n\n`{table.attrs['formula']}` (OLS, type-II ANOVA; n = {table.attrs['n']}, "
            f"R^2 = {table.attrs['r_squared']:.3f})\n\n"
            + markdown_table(["source", "sum sq", "df", "F", "p"], rows)
            + f"\n\nfitted coefficients: {coefficients}\n")


def pick_notable(trials: "pd.DataFrame", kind: str, value: float | None = None) -> "pd.Series | None":
    """The model one notable-model rule picks (``fhn_automl.post.thesis_tables.NotableRule``), or None.

    ``smallest_below``: fewest neurons with mean error < value (ties: lower error); ``best_within``:
    lowest error with at most ``value`` neurons; ``best_depth``: lowest error with ``value`` hidden
    layers; ``best``: lowest error. Remaining ties go to the lower run id, so the pick is stable.
    """
    frame = trials.dropna(subset=["mean_err"])
    if kind == "smallest_below":
        pick, order = frame[frame["mean_err"] < value], ["neurons", "mean_err"]
    elif kind == "best_within":
        pick, order = frame[frame["neurons"] <= value], ["mean_err", "neurons"]
    elif kind == "best_depth":
        pick, order = frame[frame["depth"] == value], ["mean_err", "neurons"]
    elif kind == "best":
        pick, order = frame, ["mean_err", "neurons"]
    else:
        raise ValueError(f"unknown notable rule {kind!r}; use smallest_below, best_within, best_depth or best")
    if not len(pick):
        return None
    return pick.sort_values(order + ["run_id"]).iloc[0]


def notable_models(trials: "pd.DataFrame", *, thresholds: Sequence[float] = ERROR_THRESHOLDS,
                   budgets: Sequence[int] = NEURON_BUDGETS) -> "pd.DataFrame":
    """Thesis Tables 4 and 8-10: the smallest model under each error threshold, the best under each
    neuron budget, the best two-layer model and the best overall."""
    import pandas as pd

    rules = ([("smallest_below", t, f"smallest model < {t:g}") for t in thresholds]
             + [("best_within", b, f"best model <= {b} neurons") for b in budgets]
             + [("best_depth", 2, "best two-layer"), ("best", None, "best model")])
    rows: list[dict[str, Any]] = []
    for kind, value, note in rules:
        best = pick_notable(trials, kind, value)
        if best is not None:
            rows.append({"layers": best["layers"], "mean_err": best["mean_err"], "neurons": int(best["neurons"]),
                         "shape_class": best["shape_class"], "note": note, "run_id": best["run_id"]})
    return pd.DataFrame(rows, columns=["layers", "mean_err", "neurons", "shape_class", "note", "run_id"])


# ------------------------------------------------------------------------ the runs as one table


def trials_frame(trials: Iterable[Any]) -> "pd.DataFrame":
    """The post-stage's trials (``fhn_automl.post.runs.TrialRecord``) as one row each.

    Columns: the record's row (run_id, problem, kind, layers, shape_class, neurons, depth, ...,
    mean_err, max_err), the trial's settings from its params (study, batch_size, extra_region,
    window, seed, steps, ``option.*`` without the prefix) and the model-class flags of eq. 4.1:
    ``pin`` (the PINN residual is on), ``iccs`` (an extra-region term is on), ``bs`` (batch size).
    ``step_time_ms`` (the last interval's mean step time) and ``final_full_val_mean_err`` come from
    the run's metrics when the record carries them.
    """
    import pandas as pd

    rows = []
    for record in trials:
        row = record.as_row()
        params = dict(getattr(record, "params", {}) or {})
        metrics = dict(getattr(record, "metrics", {}) or {})
        for key in ("study", "extra_region", "window", "recipe"):
            row[key] = params.get(key, row.get(key))
        for key in ("batch_size", "seed", "steps"):
            row[key] = int(params[key]) if params.get(key) not in (None, "", "None") else None
        for key, value in params.items():
            if key.startswith("option."):
                row[key.removeprefix("option.")] = value
        # runs logged before the metric vocabulary (issue 17) held the last report as final_<key> too
        for key in ("step_time_ms", "final_full_val_mean_err", "final_full_val_max_err"):
            value = metrics.get(f"final_{key}", metrics.get(key))
            row[key] = float(value) if value is not None else math.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["pin"] = frame["kind"] == "pinn"
        frame["iccs"] = frame["extra_region"].fillna("none").astype(str).str.lower().isin(
            ["none", "false", ""]) == False  # noqa: E712 (a pandas mask)
        frame["bs"] = frame["batch_size"]
    return frame


def study_groups(frame: "pd.DataFrame") -> list[tuple[tuple[str, ...], "pd.DataFrame"]]:
    """The frame split by (problem, study, kind): the units an error analysis may pool over."""
    keys = [k for k in ("problem", "study", "kind") if k in frame]
    if not keys:
        return [((), frame)]
    return [(key if isinstance(key, tuple) else (key,), group)
            for key, group in frame.groupby(keys, sort=True, dropna=False)]


# ------------------------------------------------------------------------------- the analyses


def error_anova_by_study(frame: "pd.DataFrame", formula: str = ERROR_FORMULA) -> list[tuple[str, "pd.DataFrame | None", str]]:
    """Eq. 4.2 fitted once per (problem, study, kind): never over a mix of studies or model kinds,
    whose errors differ for reasons the formula does not hold. Returns (label, table, reason)."""
    return [(" / ".join(str(k) for k in key), *anova(group, formula)) for key, group in study_groups(frame)]


def batch_study_anova(frame: "pd.DataFrame") -> dict[str, tuple["pd.DataFrame | None", str]]:
    """Eq. 4.1 (Tables 2-3) on the batch study: mean error and iteration time ~ C(iccs)*bs + C(pin)*bs.

    ``frame`` holds one study on one architecture (the thesis: (SiLU-32, SiLU-32), DDNN / PINN /
    DDNNa / PINNa x 5 batch sizes = 20 models); more than one architecture is refused, since then
    the formula would blame the architectures' differences on the factors.
    """
    if "layers" in frame and frame["layers"].nunique() > 1:
        reason = (f"{frame['layers'].nunique()} architectures in the frame ({', '.join(sorted(frame['layers'].unique())[:4])}"
                  "...): eq. 4.1 is fitted on one architecture")
        return {"mean_err": (None, reason), "step_time_ms": (None, reason)}
    if "study" in frame and frame["study"].nunique() > 1:
        reason = f"several studies in the frame ({sorted(frame['study'].unique())}): fit one"
        return {"mean_err": (None, reason), "step_time_ms": (None, reason)}
    data = frame.assign(bs=frame["batch_size"].astype(float), pin=frame["pin"].astype(str),
                        iccs=frame["iccs"].astype(str))
    return {"mean_err": anova(data, BATCH_ERROR_FORMULA), "step_time_ms": anova(data, BATCH_TIME_FORMULA)}


def size_split_analysis(frame: "pd.DataFrame", *, split: int = SIZE_SPLIT_NEURONS,
                        formula: str = ERROR_FORMULA) -> dict[str, dict[str, Any]]:
    """Tables 5-6: eq. 4.2 for models below ``split`` neurons and for those from ``split`` up, with the
    one-way between-class and within-class mean squares the text of 4.2.1 quotes (the proxies for the
    influence of shape vs of the activation functions)."""
    out: dict[str, dict[str, Any]] = {}
    for name, part in (("small", frame[frame["neurons"] < split]), ("large", frame[frame["neurons"] >= split])):
        part = part.dropna(subset=["mean_err"])
        table, reason = anova(part, formula)
        groups = [g["mean_err"].to_numpy() for _, g in part.groupby("shape_class")]
        n, k = len(part), len(groups)
        between = within = math.nan
        if k >= 2 and n > k:
            grand = part["mean_err"].mean()
            between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (k - 1)
            within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (n - k)
        out[name] = {"n": n, "classes": k, "anova": table, "reason": reason,
                     "between_class_ms": float(between), "within_class_ms": float(within)}
    return out


def pinn_ddnn_t_tests(frame: "pd.DataFrame", *, split_column: str = "train_split") -> "pd.DataFrame":
    """Figures 17 and 21: per training set, Student's t-test of DDNN vs PINN mean errors.

    t > 0 means the DDNNs' errors are larger. Welch's t and the paired test over architectures
    trained both ways are given too, since the thesis does not say which it used.
    """
    import pandas as pd
    from scipy import stats

    rows = []
    groups = frame.groupby(split_column, sort=True) if split_column in frame else [("all", frame)]
    for split, part in groups:
        ddnn = part.loc[part["kind"] == "ddnn", "mean_err"].dropna().to_numpy()
        pinn = part.loc[part["kind"] == "pinn", "mean_err"].dropna().to_numpy()
        row: dict[str, Any] = {"train_split": split, "n_ddnn": len(ddnn), "n_pinn": len(pinn),
                               "ddnn_mean": float(ddnn.mean()) if len(ddnn) else math.nan,
                               "pinn_mean": float(pinn.mean()) if len(pinn) else math.nan,
                               "t": math.nan, "p": math.nan, "welch_t": math.nan, "welch_p": math.nan,
                               "n_pairs": 0, "paired_t": math.nan, "paired_p": math.nan}
        if len(ddnn) >= 2 and len(pinn) >= 2:
            student = stats.ttest_ind(ddnn, pinn, equal_var=True)
            welch = stats.ttest_ind(ddnn, pinn, equal_var=False)
            row.update(t=float(student.statistic), p=float(student.pvalue), welch_t=float(welch.statistic),
                       welch_p=float(welch.pvalue))
        pairs = part.pivot_table(index="layers", columns="kind", values="mean_err", aggfunc="mean")
        if {"ddnn", "pinn"} <= set(pairs.columns):
            pairs = pairs[["ddnn", "pinn"]].dropna()
            row["n_pairs"] = len(pairs)
            if len(pairs) >= 2:
                paired = stats.ttest_rel(pairs["ddnn"], pairs["pinn"])
                row.update(paired_t=float(paired.statistic), paired_p=float(paired.pvalue))
        rows.append(row)
    return pd.DataFrame(rows)


def window_summary(frame: "pd.DataFrame", *, error_column: str = "mean_err") -> "pd.DataFrame":
    """Table 7: per time window (the problem's time span, or ``window`` when set), the models' mean
    error as mean +- std (sample std), best, worst and count."""
    import pandas as pd

    data = frame.dropna(subset=[error_column]).copy()
    data["time_domain"] = [get_problem(p).t_end for p in data["problem"]]
    rows = []
    for window, part in data.groupby("time_domain", sort=False):
        errors = part[error_column]
        rows.append({"window": float(window), "n": len(part), "mean": float(errors.mean()),
                     "std": float(errors.std(ddof=1)) if len(part) > 1 else math.nan,
                     "best": float(errors.min()), "worst": float(errors.max()),
                     "best_layers": part.loc[errors.idxmin(), "layers"],
                     "worst_layers": part.loc[errors.idxmax(), "layers"]})
    return pd.DataFrame(rows).sort_values("window", ascending=False, ignore_index=True)


def _thesis_f_line(number: int) -> str:
    table = TABLES[number]
    terms = ", ".join(f"{r['source']} F = {r['F']:g}" for r in table.rows if r.get("F") is not None)
    return f"Thesis Table {number}: {terms} ({table.source}).\n"


def thesis_analyses_markdown(frame: "pd.DataFrame") -> str:
    """The chapter-4 analyses that apply to an experiment's runs (``trials_frame``), each per study,
    with the thesis' figures beside: eq. 4.1 on a batch study (Tables 2-3), the 120-neuron split
    (Tables 5-6), the PINN vs DDNN t-tests (Figures 17, 21) and the per-window summary (Table 7).
    A study that does not hold what an analysis needs is skipped, not fitted on a mix."""
    if not len(frame):
        return ""
    parts = ["## Chapter 4 analyses per study", ""]
    for study, part in frame.groupby(frame["study"].fillna("") if "study" in frame else [""] * len(frame), sort=True):
        label = study or "(no study)"
        section: list[str] = []
        one_architecture = part["layers"].nunique() == 1
        if one_architecture and part["bs"].nunique() > 1 and (part["pin"].nunique() > 1 or part["iccs"].nunique() > 1):
            for response, (table, reason) in batch_study_anova(part).items():
                section.append(anova_markdown(f"{label}: {response} (eq. 4.1)", table, reason))
            section += [_thesis_f_line(2), _thesis_f_line(3)]
        if part["shape_class"].nunique() > 1 and part["kind"].nunique() == 1 and len(part) > 8:
            for name, result in size_split_analysis(part).items():
                section.append(anova_markdown(f"{label}: {name} models (thesis Table {5 if name == 'small' else 6})",
                                              result["anova"], result["reason"]))
                theirs = SIZE_SPLIT_VARIANCES[name]
                section.append(f"Between-class / within-class mean square: {result['between_class_ms']:.3g} / "
                               f"{result['within_class_ms']:.3g} (thesis: {theirs['between']:.3g} / "
                               f"{theirs['within']:.3g}).\n")
            section += [_thesis_f_line(5), _thesis_f_line(6)]
        if set(part["kind"]) >= {"ddnn", "pinn"} and "train_split" in part and part["train_split"].notna().any():
            tests = pinn_ddnn_t_tests(part)
            section += [f"### {label}: PINN vs DDNN t-tests (thesis Figures 17, 21)", "", markdown_table(
                ["set", "DDNNs", "PINNs", "DDNN mean", "PINN mean", "t", "p", "thesis t", "thesis p"],
                [[r.train_split, r.n_ddnn, r.n_pinn, r.ddnn_mean, r.pinn_mean, r.t, r.p,
                  PROBLEM_A_T_TESTS.get(r.train_split, {}).get("t"), PROBLEM_A_T_TESTS.get(r.train_split, {}).get("p")]
                 for r in tests.itertuples()]), ""]
        if len({get_problem(p).t_end for p in part["problem"].unique()}) > 1:
            summary = window_summary(part)
            section += [f"### {label}: mean error per time window (thesis Table 7)", "", markdown_table(
                ["window", "models", "mean", "std", "best", "worst"],
                [[r.window, r.n, r.mean, r.std, r.best, r.worst] for r in summary.itertuples()]), ""]
        if section:
            parts += [f"### Study {label}", ""] + section
    return "\n".join(parts) if len(parts) > 2 else ""


ACTIVATION_FORMULA = "time_per_point_s ~ C(activation) + neurons"


def activation_effect(sweep: "pd.DataFrame", *, reference: str = "silu") -> tuple["pd.DataFrame", "pd.DataFrame | None", str]:
    """Figure 42: does the activation function change inference cost?

    ``sweep`` is the inference sweep (``fhn_automl.post.sweep.run_inference_sweep``) over networks that
    differ only in their (single) activation, e.g. ``sweep_architectures(widths, depths, activation=a)``
    for several ``a``. Returns (per activation: networks, median time per point, median ratio to
    ``reference`` on the same widths, ANOVA of ``time ~ C(activation) + neurons``, reason).
    """
    import pandas as pd

    data = sweep.dropna(subset=["time_per_point_s"]).copy()
    activations = [{spec.activation for spec in parse_layers(layers)} for layers in data["layers"]]
    data["activation"] = [next(iter(a)) if len(a) == 1 else "mixed" for a in activations]
    data["widths"] = [",".join(str(spec.width) for spec in parse_layers(layers)) for layers in data["layers"]]
    keys = ["widths"] + (["backend_label"] if "backend_label" in data else [])
    base = data[data["activation"] == reference].groupby(keys)["time_per_point_s"].median().rename("reference_time")
    data = data.join(base, on=keys)
    data["ratio_to_reference"] = data["time_per_point_s"] / data["reference_time"]
    summary = (data.groupby("activation")
               .agg(networks=("layers", "nunique"), median_time_per_point_s=("time_per_point_s", "median"),
                    median_ratio_to_reference=("ratio_to_reference", "median"))
               .reset_index())
    table, reason = anova(data, ACTIVATION_FORMULA)
    return pd.DataFrame(summary), table, reason


def plot_activation_sweep(sweep: "pd.DataFrame", path: Path) -> Path:
    """Figure 42: time per point against neurons, one line per activation."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    frame = sweep.dropna(subset=["time_per_point_s"]).copy()
    frame["activation"] = [parse_layers(layers)[0].activation for layers in frame["layers"]]
    for activation, group in frame.groupby("activation"):
        group = group.groupby("neurons", as_index=False)["time_per_point_s"].median()
        ax.plot(group["neurons"], group["time_per_point_s"], "o-", ms=4, label=activation)
    return finish_figure(fig, ax, path, xlabel="hidden neurons", ylabel="time per point (s)", xscale=None,
                         yscale=None, grid_which="major", legend_title="activation")


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
