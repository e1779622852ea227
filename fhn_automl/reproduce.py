"""Reproduce a results table of the thesis: ``python -m fhn_automl.reproduce TABLE [--budget smoke|small|paper]``.

TABLE is one of 4, 7, 8, 9, 10, 14. The command trains the table's study with the search (its search
file and study, on Ray, logged to MLflow as experiment <search>-<budget>), or reads the trials of a
search that already ran there, then measures every trained model against an independent reference
and writes the thesis' rows beside ours: report.md, reproduction.png, rows.csv and reproduction.json
in --out, also logged as the artifacts of a run (tag fhn_automl.role=reproduce) in the experiment.

Our error: the model the trial logged as model/ (the network at training end for trials that recorded
final_full_val_*, else the older runs' best validation checkpoint; the report says which), evaluated
against scipy's DOP853 (rtol 1e-10, atol 1e-12, float64) on fresh initial states that the training
and validation data never saw (uniform draws with their own seed; the datasets use a Latin
hypercube with seed 0), at every stored time point of the problem's whole window (iterators: every
network step of the rollout to t = 50), all points, no subset. The thesis quotes the error after
training end on its whole validation set. The search's own recorded validation errors are listed too:
final_full_val_mean_err (training end, whole validation set) and the best checkpoint's error on the
validation subset.

At the smoke and small budgets the study is cut to a few of the architectures the thesis' table names
(so rows compare like with like) and trained for the budget's steps; at the paper budget it runs the
whole study as the search file states it. Nothing but the paper budget is expected to match the
thesis' numbers.

Examples:
  python -m fhn_automl.reproduce 14 --budget smoke           # Problem A, PINN vs DDNN, ~1 min on 2 CPUs
  python -m fhn_automl.reproduce 4 --budget small --executor function
  python -m fhn_automl.reproduce 10 --budget paper --address auto --storage /shared/runs
  python -m fhn_automl.reproduce 8 --experiment problem_b_c-paper   # read a finished search, train nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhn_automl._cli import positive_int
from fhn_automl.physics.error_measures import ERROR_KEYS
from fhn_automl.physics.problems import Problem, code_variant, get_problem
from fhn_automl.post.analysis import pick_notable, pinn_ddnn_t_tests, trials_frame, window_summary
from fhn_automl.post.markdown import markdown_table
from fhn_automl.post.errors import ExperimentNotFoundError, NoFinishedTrialsError, PostStageError
from fhn_automl.post.plotting import finish_figure, pyplot
from fhn_automl.post.runs import download_model, load_trials
from fhn_automl.post.runs import resolve_tracking_uri as existing_store
from fhn_automl.post.staging import check_output_target, staged_folder
from fhn_automl.post.thesis_tables import PROBLEM_A_T_TESTS, TABLES, ThesisTable
from fhn_automl.search.budgets import BUDGET_NAMES
from fhn_automl.search.options import SearchOptions
from fhn_automl.search.space import LayerGrid, SearchSpaceError, load_search_space
from fhn_automl.search.tracking import default_artifact_root, experiment_name, resolve_tracking_uri
from fhn_automl.search.tracking_tags import REPRODUCE_ROLE, ROLE_TAG, THESIS_TABLE_TAG

if TYPE_CHECKING:
    import pandas as pd

BUDGETS = BUDGET_NAMES  # the search's budgets (fhn_automl.search.budgets)
#: Seed of the fresh initial states: the datasets draw theirs with seed 0 (Latin hypercube).
FRESH_IC_SEED = 20_260_917
#: Fresh initial states per budget. One vectorised DOP853 solve over the whole window, measured on the
#: 2-core CI machine at load ~6: 128 / 1,024 / 4,096 states took 0.3 / 0.4 / 1.0 s (B_S), 0.5 / 1.0 / 3.4 s
#: (B_C), 0.7 / 1.2 / 3.1 s (C), 0.3 / 0.7 / 2.1 s (iterator rollout); Problem A's one state 0.9 s.
FRESH_ICS = {"smoke": 128, "small": 1_024, "paper": 4_096}
REFERENCE = "scipy solve_ivp DOP853, rtol 1e-10, atol 1e-12, float64"


class UnknownTableError(ValueError):
    """A table number the report cannot reproduce; the message lists the ones it can."""


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """How one thesis table is reproduced: which study trains its models, and how rows are chosen."""

    table: int
    search: str                                    # search file in search_spaces/
    study: str | None                              # the file's study (None: its only one)
    analysis: str                                  # notable | pinn_pairs | window
    options: dict[str, Any] = dataclasses.field(default_factory=dict)   # option values the rows need
    #: architectures trained at the smoke and small budgets (paper: the study's whole grid)
    layers: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    what: str = ""
    #: the problems the thesis' rows came from: its public code's domain (physics.problems.CODE_VARIANTS;
    #: measured for C, assumed for B_S / B_C / the iterator), so ours are trained and measured there
    domain: str = "code"

    def problem(self, name: str) -> str:
        """The variant of the study's problem ``name`` that this table is compared on."""
        return code_variant(name) if self.domain == "code" else name


PLANS: dict[int, TablePlan] = {p.table: p for p in (
    TablePlan(14, "problem_a", None, "pinn_pairs", options={"train_split": "scarce"},
              layers={"smoke": ("silu-32,silu-16",),
                      "small": ("silu-16,silu-16", "silu-32,silu-16", "silu-32,silu-32", "silu-32,silu-16,tanh-8")},
              what="Problem A on the scarce set: PINN vs DDNN per architecture"),
    TablePlan(4, "problem_b_s", "architecture", "notable",
              layers={"smoke": ("elu-8,silu-8", "silu-8,tanh-32,silu-8"),
                      "small": ("elu-8,silu-8", "tanh-32,elu-8,silu-8", "silu-8,tanh-32,silu-8",
                                "silu-32,tanh-32,silu-32", "tanh-32,silu-32")},
              what="Problem B_S architecture grid: notable models"),
    TablePlan(7, "problem_b_c", "window", "window",
              layers={"smoke": ("silu-8,silu-8", "silu-32,tanh-32"),
                      "small": ("silu-8,silu-8", "silu-32,tanh-32", "tanh-32,silu-32,silu-8", "silu-64,elu-8,tanh-64")},
              what="Problem B_C: the same architectures on the time windows [0, 50] and [0, 5]"),
    TablePlan(8, "problem_b_c", "small_window_pool", "notable",
              layers={"smoke": ("silu-8,elu-8", "sin-16,silu-16,sin-16"),
                      "small": ("silu-8,elu-8", "sin-16,silu-16,sin-16", "sin-16,tanh-32,sin-16",
                                "sin-16,silu-8,elu-8", "tanh-32,tanh-32")},
              what="Problem B_C small window [0, 5]: notable models"),
    TablePlan(9, "problem_b_c_iter", "pool", "notable",
              layers={"smoke": ("tanh-8,silu-8", "elu-16,silu-8"),
                      "small": ("tanh-8,silu-8", "elu-16,silu-8", "elu-8,elu-16", "silu-16,tanh-16")},
              what="Problem B_C iterator pool: notable models by rollout error"),
    TablePlan(10, "problem_c", "grid", "notable",
              layers={"smoke": ("elu-8,tanh-8", "elu-8,silu-16,tanh-8"),
                      "small": ("elu-8,tanh-8", "elu-8,silu-16,tanh-8", "elu-16,tanh-16,sin-16", "silu-16,silu-16")},
              what="Problem C grid: notable models"),
)}


def get_plan(table: int | str) -> TablePlan:
    """The plan of ``table``; ``UnknownTableError`` lists the valid ones."""
    valid = ", ".join(str(t) for t in sorted(PLANS))
    try:
        number = int(str(table).strip().removeprefix("Table").removeprefix("table").strip())
    except ValueError:
        raise UnknownTableError(f"unknown table {table!r}: reproducible tables are {valid}") from None
    if number not in PLANS:
        raise UnknownTableError(f"unknown table {table!r}: reproducible tables are {valid}")
    return PLANS[number]


# ------------------------------------------------------------------------------ running the study


def restricted_space(plan: TablePlan, budget_name: str, *, executor: str | None = None):
    """(search space cut to the plan's study, options and budget architectures, budget)."""
    space = load_search_space(plan.search)
    names = [s.name for s in space.studies]
    study_name = plan.study or names[0]
    if study_name not in names:
        raise SearchSpaceError(f"{space.path}: no study {study_name!r} for Table {plan.table}; studies: {', '.join(names)}")
    study = next(s for s in space.studies if s.name == study_name)
    options = dict(study.options)
    for key, value in plan.options.items():
        if key not in options:
            raise SearchSpaceError(f"{space.path}: study {study_name!r} has no option {key!r} (Table {plan.table} needs "
                                   f"{key} = {value!r})")
        options[key] = (value,)
    layers = study.layers
    if budget_name in plan.layers:
        layers = LayerGrid(sequences=plan.layers[budget_name])
    axes = {**study.axes, "problem": tuple(dict.fromkeys(plan.problem(name) for name in study.axes["problem"]))}
    study = dataclasses.replace(study, layers=layers, options=options, axes=axes)
    space = dataclasses.replace(space, studies=(study,))
    if executor is not None:
        space = dataclasses.replace(space, resources=dataclasses.replace(space.resources, executor=executor))
    # the plan already chose the trials; the budget's even thinning of the grid would drop some
    budget = dataclasses.replace(space.budget(budget_name), max_trials=None)
    return space, budget


def run_study(plan: TablePlan, budget_name: str, *, tracking_uri: str, data_root: str, storage: str,
              executor: str | None, address: str | None, quiet: bool) -> dict[str, str]:
    """Train the plan's trials with the search; returns each trial's status (finished | diverged | error)."""
    from fhn_automl.search.runner import run_search  # imports Ray: not for --help or a read-only report

    space, budget = restricted_space(plan, budget_name, executor=executor)
    summary = run_search(SearchOptions(space=space, budget=budget, tracking_uri=tracking_uri, data_root=data_root,
                                       storage=storage, address=address, quiet=quiet))
    if summary.interrupted:
        raise RuntimeError(f"the search for Table {plan.table} was interrupted ({summary.statuses})")
    return dict(summary.statuses)


def matching_trials(plan: TablePlan, records: Sequence[Any]) -> list[Any]:
    """The finished trials of an experiment that belong to the plan's study and options."""
    space = load_search_space(plan.search)
    study = plan.study or space.studies[0].name
    problems = {plan.problem(name) for name in next(s for s in space.studies if s.name == study).axes["problem"]}
    out = []
    for record in records:
        params = record.params
        if params.get("study", study) != study or record.problem not in problems:
            continue
        if any(str(params.get(f"option.{k}")) != str(v) for k, v in plan.options.items()):
            continue
        out.append(record)
    return out


# ------------------------------------------------------------------------------ measuring our models


def fresh_workload(problem: Problem, n: int, seed: int = FRESH_IC_SEED):
    """Fresh initial states over the problem's whole window, a point every stored step (iterators:
    every network step to the rollout end). Problem A has one fixed state, so one trajectory."""
    from fhn_automl.post.benchmark import make_workload  # loads torch: the command's --help stays light

    if problem.fixed_initial_state is not None:
        n = 1
    t_end = problem.rollout_t_end if problem.kind == "iterator" and problem.rollout_t_end else problem.t_end
    return make_workload(problem, n, t_end=t_end, eval_every=problem.save_dt, seed=seed)


def measure_models(records: Sequence[Any], tracking_uri: str, n_fresh: int, *, quiet: bool = True) -> "pd.DataFrame":
    """One row per trial: its figures, the search's recorded errors and our errors against DOP853."""
    # these load torch: the command's --help and argument errors stay light
    from fhn_automl.learning.model_io import load_model, load_spec
    from fhn_automl.post.benchmark import reference_states, surrogate_errors
    from fhn_automl.post.compile import compile_surrogate

    frame = trials_frame(records).rename(columns={"mean_err": "recorded_mean_err", "max_err": "recorded_max_err"})
    # runs.MEAN_ERR_KEYS reads the best checkpoint's subset error first; the trainer's final_full_val_*
    # (training end, whole validation set) exists on runs since it was added, and model/ is then that model
    frame["best_subset_val_mean_err"] = frame["recorded_mean_err"]
    final_full = frame["final_full_val_mean_err"].notna()
    frame["model_state"] = ["training end" if f else "best validation checkpoint" for f in final_full]
    references: dict[str, tuple[Any, Any, float]] = {}
    errors: dict[str, list[float]] = {key: [] for key in ERROR_KEYS}
    with tempfile.TemporaryDirectory(prefix="fhn_reproduce_models_") as tmp:
        for position, record in enumerate(records):
            if record.problem not in references:
                workload = fresh_workload(get_problem(record.problem), n_fresh)  # a key from MLflow
                started = time.perf_counter()
                ref = reference_states(workload)
                references[record.problem] = (workload, ref, time.perf_counter() - started)
                _log(quiet, f"DOP853 reference for {record.problem}: {workload.n} fresh state(s) x "
                            f"{len(workload.eval_times)} times in {references[record.problem][2]:.2f} s")
            workload, ref, _ = references[record.problem]
            model_dir = download_model(tracking_uri, record.run_id, Path(tmp) / f"m{position}")
            spec = load_spec(model_dir)
            model = load_model(model_dir)
            surrogate = compile_surrogate(model, len(spec.inputs), backend="eager", device="cpu")
            measured = surrogate_errors(surrogate, spec.inputs, record.kind, workload, ref, batch_size=65_536)
            for key in ERROR_KEYS:
                errors[key].append(measured[key])
    for key in ERROR_KEYS:
        frame[key] = errors[key]
    frame.attrs["reference"] = {problem: {"n_states": w.n, "n_times": len(w.eval_times), "t_end": w.t_end,
                                          "every": w.eval_every, "seconds": s}
                                for problem, (w, _, s) in references.items()}
    return frame


# ------------------------------------------------------------------------------ side-by-side rows


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) >= 1e-2 or value == 0 else f"{value:.2e}"
    return str(value)


def in_code_measure(ours: "pd.DataFrame") -> "pd.DataFrame":
    """``ours`` with ``mean_err`` / ``max_err`` in the thesis code's measure (the measure its tables were
    printed in, physics.error_measures), so the thesis' rules ("smallest model under 0.01") and ratios
    apply as written; the eq. 3.3 figures stay as ``sum_mean_err`` / ``sum_max_err``."""
    if not len(ours) or "code_mean_err" not in ours:
        return ours.assign(sum_mean_err=ours.get("mean_err"), sum_max_err=ours.get("max_err"))
    return ours.assign(sum_mean_err=ours["mean_err"], sum_max_err=ours["max_err"], mean_err=ours["code_mean_err"],
                       max_err=ours["code_max_err"])


def _ours(pick: Any) -> dict[str, Any]:
    """Our picked model's errors in both measures (``pick`` from an ``in_code_measure`` frame)."""
    if pick is None:
        return {key: None for key in ("our_mean_err", "our_max_err", "our_sum_mean_err", "our_sum_max_err",
                                      "final_full_val_mean_err", "final_full_val_code_mean_err",
                                      "best_subset_val_mean_err", "model_state")}
    return {"our_mean_err": float(pick["mean_err"]), "our_max_err": float(pick["max_err"]),
            "our_sum_mean_err": float(pick["sum_mean_err"]), "our_sum_max_err": float(pick["sum_max_err"]),
            "final_full_val_mean_err": _number(pick["final_full_val_mean_err"]),
            "final_full_val_code_mean_err": _number(pick.get("final_full_val_code_mean_err", math.nan)),
            "best_subset_val_mean_err": _number(pick["best_subset_val_mean_err"]),
            "model_state": pick["model_state"]}


def notable_rows(thesis: "ThesisTable", ours: "pd.DataFrame") -> list[dict[str, Any]]:
    """Per thesis row: its model and ours under the same rule, in the thesis code's measure (the one its
    tables use), both measures of ours, and the ratio ours / thesis."""
    ours = in_code_measure(ours)
    rows = []
    for row in thesis.rows:
        rule = row["rule"]
        pick = pick_notable(ours, rule.kind, rule.value)
        rows.append({"note": row["note"], "rule": rule.label(), "thesis_layers": row["layers"],
                     "thesis_neurons": row["neurons"], "thesis_mean_err": row["mean_err"],
                     "our_layers": None if pick is None else pick["layers"],
                     "our_neurons": None if pick is None else int(pick["neurons"]), **_ours(pick),
                     "ratio": None if pick is None else float(pick["mean_err"]) / row["mean_err"]})
    return rows


def pinn_pair_rows(thesis: "ThesisTable", ours: "pd.DataFrame") -> list[dict[str, Any]]:
    """Table 14/15: every thesis row, with our model of the same architecture and kind when trained."""
    ours = in_code_measure(ours)
    rows = []
    for row in thesis.rows:
        kind = "pinn" if row["pinn"] else "ddnn"
        match = ours[(ours["layers"] == row["layers"]) & (ours["kind"] == kind)] if len(ours) else ours
        pick = match.sort_values("mean_err").iloc[0] if len(match) else None
        rows.append({"layers": row["layers"], "pinn": row["pinn"], "thesis_mean_err": row["mean_err"],
                     "thesis_max_err": row["max_err"], **_ours(pick),
                     "ratio": None if pick is None else float(pick["mean_err"]) / row["mean_err"]})
    trained = [r for r in rows if r["our_mean_err"] is not None]
    return trained + [r for r in rows if r["our_mean_err"] is None]


def window_rows(thesis: "ThesisTable", ours: "pd.DataFrame") -> list[dict[str, Any]]:
    summary = window_summary(in_code_measure(ours)) if len(ours) else None
    rows = []
    for row in thesis.rows:
        mine = None if summary is None else summary[summary["window"] == row["window"]]
        mine = None if mine is None or not len(mine) else mine.iloc[0]
        rows.append({"window": row["window"], "thesis_mean": row["mean_err_mean"], "thesis_std": row["mean_err_std"],
                     "thesis_best": row["best"], "thesis_worst": row["worst"],
                     "n": None if mine is None else int(mine["n"]),
                     "our_mean": None if mine is None else float(mine["mean"]),
                     "our_std": None if mine is None else float(mine["std"]),
                     "our_best": None if mine is None else float(mine["best"]),
                     "our_worst": None if mine is None else float(mine["worst"])})
    return rows


# ------------------------------------------------------------------------------ the report


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return markdown_table(list(header), [[_fmt(v) for v in r] for r in rows])


def _domain_sentence(plan: TablePlan, ours: "pd.DataFrame") -> str:
    """Which box our models train and are measured on (only the thesis-code variants have one to name)."""
    problems = sorted(set(ours["problem"])) if len(ours) else []
    code = [p for p in problems if p.endswith("_code")]
    if plan.domain != "code" or not problems:
        return ""
    if not code:  # Problem A: one fixed initial state, no box to vary
        return (f"Our models train and are measured on `{'`, `'.join(problems)}`, which has one fixed initial state: "
                "there is no domain variant.")
    return (f"Our models train and are measured on the thesis code's domain (`{'`, `'.join(code)}`: U0 in [-0.1, "
            "0.81], W0 in [0, 0.12]; problem C also t in [0, 20]; public code for C, an assumption for B_S, B_C and "
            "the iterator).")


def _budget_sentence(ours: "pd.DataFrame") -> str:
    """The read experiment's training budget per model, from its trials' own steps and batch size."""
    if not len(ours) or "steps" not in ours or "batch_size" not in ours:
        return "**Budget.** Not recorded on these runs."
    budgets = sorted({(int(s), int(b)) for s, b in zip(ours["steps"], ours["batch_size"])
                      if s is not None and b is not None and s == s and b == b})
    if not budgets:
        return "**Budget.** Not recorded on these runs."
    text = "; ".join(f"{s:,} steps x batch {b:,} ({s * b:.3g} samples)" for s, b in budgets)
    return f"**Budget.** Per model, as the read experiment's trials recorded it: {text}."


def report_markdown(plan: TablePlan, thesis: "ThesisTable", rows: list[dict[str, Any]], ours: "pd.DataFrame", *,
                    budget: str, experiment: str, mode: str, n_fresh: int, extra: str = "") -> str:
    read = mode == "read: --experiment"  # another search's trials: their own budget, not the --budget preset
    parts = [f"# Thesis Table {plan.table} reproduced ({f'experiment {experiment}' if read else f'{budget} budget'})", "",
             f"{thesis.title}. Source: {thesis.source}.", "",
             f"Study: `search_spaces/{plan.search}.yaml`" + (f", study `{plan.study}`" if plan.study else "")
             + "".join(f", {k} = {v}" for k, v in plan.options.items())
             + f"; MLflow experiment `{experiment}` ({mode}); {len(ours)} model(s).", "",
             "**Errors.** *thesis*: as printed, the error after training end on the thesis' whole validation set. "
             f"*ours*: the model each trial logged as `model/` (its state is in the column *model*: the network at "
             "training end, or, for runs older than the trainer's final_full_val_* metrics, the best validation "
             f"checkpoint) against {REFERENCE}, "
             f"on fresh initial states (uniform, seed {FRESH_IC_SEED}; the datasets use a Latin hypercube with seed 0; "
             f"up to {n_fresh} states, Problem A has its single fixed state), at every stored time point of the whole "
             "window (iterators: every network step of the rollout to t = 50): all points, no subset. "
             "*final full val*: the search's recorded error at training end on the whole validation set (the thesis' "
             "kind of figure, on the training data's distribution); *best subset val*: the best checkpoint's error on "
             "the validation subset the trainer watches.", "",
             "**Measures and domain.** The thesis' tables come from its public code (FACTS.md): its mean error is the "
             "mean of |out - target| over points and both outputs (half of eq. 3.3's |dU| + |dW|), its max error the "
             "largest single component. So thesis rows are compared with ours in that measure (*code*; the rules "
             "and the ratio use it), with eq. 3.3 (*sum*) beside it. "
             + _domain_sentence(plan, ours), ""]
    if read:
        parts += [_budget_sentence(ours), ""]
    elif budget != "paper":
        parts += [f"At the {budget} budget the models train for a fraction of the thesis' steps on a few of its "
                  "architectures: the comparison checks the pipeline, not the thesis' accuracy.", ""]
    if plan.analysis == "notable":
        parts += ["## Notable models, thesis beside ours", "", _markdown_table(
            ["thesis note", "rule", "thesis layers", "neurons", "thesis mean err", "our layers", "neurons",
             "our mean err (code)", "our max err (code)", "our mean err (sum)", "our max err (sum)", "model",
             "final full val (sum)", "best subset val (sum)", "ours / thesis (code)"],
            [[r["note"], r["rule"], r["thesis_layers"], r["thesis_neurons"], r["thesis_mean_err"], r["our_layers"],
              r["our_neurons"], r["our_mean_err"], r["our_max_err"], r["our_sum_mean_err"], r["our_sum_max_err"],
              r["model_state"], r["final_full_val_mean_err"], r["best_subset_val_mean_err"], r["ratio"]]
             for r in rows]), ""]
    elif plan.analysis == "pinn_pairs":
        parts += ["## Models, thesis beside ours", "", _markdown_table(
            ["layers", "PINN", "thesis mean err", "thesis max err", "our mean err (code)", "our max err (code)",
             "our mean err (sum)", "our max err (sum)", "model", "final full val (sum)", "best subset val (sum)",
             "ours / thesis (code)"],
            [[r["layers"], r["pinn"], r["thesis_mean_err"], r["thesis_max_err"], r["our_mean_err"], r["our_max_err"],
              r["our_sum_mean_err"], r["our_sum_max_err"], r["model_state"], r["final_full_val_mean_err"],
              r["best_subset_val_mean_err"], r["ratio"]]
             for r in rows]), ""]
    elif plan.analysis == "window":
        parts += ["## Per time window, thesis beside ours", "", _markdown_table(
            ["window", "thesis mean +- std", "thesis best", "thesis worst", "models", "our mean +- std (code)",
             "our best (code)", "our worst (code)"],
            [[r["window"], f"{_fmt(r['thesis_mean'])} +- {_fmt(r['thesis_std'])}", r["thesis_best"], r["thesis_worst"],
              r["n"], f"{_fmt(r['our_mean'])} +- {_fmt(r['our_std'])}", r["our_best"], r["our_worst"]]
             for r in rows]), ""]
    parts.append(extra)
    parts += ["## All our models", "", _markdown_table(
        ["layers", "problem", "kind", "neurons", "class", "our mean err (sum)", "our max err (sum)",
         "our mean err (code)", "our max err (code)", "model", "final full val (sum)",
         "best subset val (sum)", "steps", "run"],
        [[r.layers, r.problem, r.kind, r.neurons, r.shape_class, r.mean_err, r.max_err,
          getattr(r, "code_mean_err", None), getattr(r, "code_max_err", None), r.model_state,
          r.final_full_val_mean_err, r.best_subset_val_mean_err, r.steps, r.name] for r in ours.sort_values(["problem", "mean_err"]).itertuples()]),
        "", "The thesis' notes on this table: " + " ".join(thesis.notes) if thesis.notes else "", ""]
    reference = ours.attrs.get("reference", {})
    if reference:
        parts += ["Reference solves: " + "; ".join(
            f"{p}: {r['n_states']} state(s) x {r['n_times']} times to t = {r['t_end']:g} in {r['seconds']:.2f} s"
            for p, r in reference.items()), ""]
    return "\n".join(parts)


def t_test_markdown(ours: "pd.DataFrame") -> tuple[str, list[dict[str, Any]]]:
    """Figure 17/21's t-test on our models, beside the thesis' values."""
    frame = ours if "train_split" in ours else ours.assign(train_split="all")
    tests = pinn_ddnn_t_tests(frame)
    records = tests.to_dict("records")
    rows = [[r["train_split"], r["n_ddnn"], r["n_pinn"], r["ddnn_mean"], r["pinn_mean"], r["t"], r["p"], r["paired_t"],
             r["paired_p"], PROBLEM_A_T_TESTS.get(r["train_split"], {}).get("t"),
             PROBLEM_A_T_TESTS.get(r["train_split"], {}).get("p")] for r in records]
    text = ("## PINN vs DDNN t-test (thesis Figures 17 and 21)\n\nStudent's t of DDNN vs PINN mean errors (t > 0: "
            "DDNNs worse); paired over architectures trained both ways. A test needs two models of each kind.\n\n"
            + _markdown_table(["set", "DDNNs", "PINNs", "DDNN mean", "PINN mean", "t", "p", "paired t", "paired p",
                               "thesis t", "thesis p"], rows) + "\n")
    return text, records


def plot_reproduction(rows: list[dict[str, Any]], path: Path, *, title: str, label_key: str,
                      thesis_key: str, ours_key: str) -> Path:
    """Dot plot: one line per thesis row, the thesis' error (open) beside ours (filled), log scale."""
    plt = pyplot()
    shown = [r for r in rows if r.get(thesis_key) is not None]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(shown) + 1.5)))
    positions = list(range(len(shown)))
    ax.scatter([r[thesis_key] for r in shown], positions, facecolors="none", edgecolors="tab:blue", s=40,
               label="thesis (as printed)")
    mine = [(r[ours_key], y) for r, y in zip(shown, positions) if r.get(ours_key) is not None]
    if mine:
        ax.scatter([m[0] for m in mine], [m[1] for m in mine], c="tab:red", s=25, label="ours vs DOP853")
    ax.set_yticks(positions)
    ax.set_yticklabels([str(r[label_key]) for r in shown], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    return finish_figure(fig, ax, path, xlabel="mean |dU| + |dW|", ylabel="", xscale="log", yscale=None)


def _rows_for_plot(plan: TablePlan, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str, str, str]:
    if plan.analysis == "pinn_pairs":
        labelled = [{**r, "label": f"{r['layers']} {'PINN' if r['pinn'] else 'DDNN'}"} for r in rows]
        return labelled, "label", "thesis_mean_err", "our_mean_err"
    if plan.analysis == "window":
        labelled = []
        for r in rows:
            for stat in ("mean", "best", "worst"):
                labelled.append({"label": f"window {r['window']:g}: {stat}", "thesis": r[f"thesis_{stat}"],
                                 "ours": r[f"our_{stat}"]})
        return labelled, "label", "thesis", "ours"
    labelled = [{**r, "label": f"{r['note']} ({r['thesis_layers']})"} for r in rows]
    return labelled, "label", "thesis_mean_err", "our_mean_err"


# ------------------------------------------------------------------------------ the command


def _log(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"[reproduce] {message}", flush=True)


def _existing_trials(experiment: str, tracking_uri: str, plan: TablePlan) -> list[Any]:
    try:
        _, records = load_trials(experiment, tracking_uri)
    except (ExperimentNotFoundError, NoFinishedTrialsError):
        return []
    return matching_trials(plan, records)


@dataclasses.dataclass(frozen=True)
class ReproduceRequest:
    """One ``reproduce`` run, checked and resolved before any work: the table's plan, the budget, the
    report folder, the MLflow store, where the trials come from and how the study would train."""

    plan: TablePlan
    budget: str
    out: Path
    tracking_uri: str
    experiment: str | None = None   # read this experiment; None: the search's own (<search>-<budget>)
    rerun: bool = False             # train even when that experiment holds the study's trials
    data_root: str = "data"
    storage: str | None = None      # Tune state folder (default runs/reproduce/ray)
    executor: str | None = None
    address: str | None = None
    n_fresh: int = FRESH_ICS["smoke"]
    quiet: bool = False

    def log(self, message: str) -> None:
        _log(self.quiet, message)


def reproduce_request(table: int | str, *, budget: str = "smoke", out: Path | None = None,
                      tracking_uri: str | None = None, experiment: str | None = None, rerun: bool = False,
                      data_root: str = "data", storage: str | None = None, executor: str | None = None,
                      address: str | None = None, n_fresh: int | None = None, quiet: bool = False) -> ReproduceRequest:
    """The request of ``reproduce``'s arguments; a bad table, budget or report folder is refused here."""
    plan = get_plan(table)
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
    out = Path(out or Path("runs") / "reproduce" / f"table{plan.table}-{budget}")
    check_output_target(out)  # refuse a foreign folder before any training
    # reading needs a store that exists (a typo must not create an empty one); a run may create it
    tracking_uri = existing_store(tracking_uri) if experiment is not None else resolve_tracking_uri(tracking_uri)
    return ReproduceRequest(plan=plan, budget=budget, out=out, tracking_uri=tracking_uri, experiment=experiment,
                            rerun=rerun, data_root=data_root, storage=storage, executor=executor, address=address,
                            n_fresh=n_fresh or FRESH_ICS[budget], quiet=quiet)


def reproduce(request: ReproduceRequest) -> dict[str, Any]:
    """Run (or read) the table's study, measure, write the report; returns what was written and found."""
    started = time.perf_counter()
    experiment, mode, records = study_trials(request)
    train_seconds = time.perf_counter() - started
    request.log(f"measuring {len(records)} model(s) against DOP853 on fresh initial states")
    ours = measure_models(records, request.tracking_uri, request.n_fresh, quiet=request.quiet)
    thesis = TABLES[request.plan.table]
    rows, extra, tests = compare_rows(request.plan, thesis, ours)
    summary = {"table": request.plan.table, "budget": request.budget, "experiment": experiment, "mode": mode,
               "tracking_uri": request.tracking_uri, "n_models": len(ours), "fresh_ic_seed": FRESH_IC_SEED,
               "n_fresh_max": request.n_fresh, "reference": REFERENCE,
               "reference_solves": ours.attrs.get("reference", {}), "rows": rows, "t_tests": tests,
               "thesis_source": thesis.source,
               "seconds": {"train_or_read": train_seconds, "total": time.perf_counter() - started}}
    text = report_markdown(request.plan, thesis, rows, ours, budget=request.budget, experiment=experiment, mode=mode,
                           n_fresh=request.n_fresh, extra=extra)
    write_report(request, text, rows, ours, summary)
    summary["out"] = str(request.out)
    summary["run_id"] = _log_to_mlflow(request.tracking_uri, experiment, request.out, request.plan, request.budget,
                                       ours, quiet=request.quiet)
    request.log(f"report in {request.out / 'report.md'} (MLflow run {summary['run_id']})")
    return summary


def study_trials(request: ReproduceRequest) -> tuple[str, str, list[Any]]:
    """(experiment, how its trials were found, the study's finished trials): the named experiment's, an
    earlier search's of this file and budget, or those of a search run now."""
    plan, budget = request.plan, request.budget
    if request.experiment is not None:
        records = _existing_trials(request.experiment, request.tracking_uri, plan)
        if not records:
            raise NoFinishedTrialsError(f"experiment {request.experiment!r} in {request.tracking_uri} has no finished "
                                        f"trial of {plan.search} / {plan.study or 'its study'} {plan.options or ''}")
        return request.experiment, "read: --experiment", records
    experiment = experiment_name(plan.search, budget)
    records = [] if request.rerun else _existing_trials(experiment, request.tracking_uri, plan)
    if records:
        request.log(f"reading {len(records)} finished trial(s) of Table {plan.table}'s study from {experiment} "
                    "(--rerun trains the plan's architectures instead)")
        return experiment, "read: an earlier search of this file and budget", records
    request.log(f"training Table {plan.table}'s study ({plan.what}) at the {budget} budget")
    statuses = run_study(plan, budget, tracking_uri=request.tracking_uri, data_root=request.data_root,
                         storage=request.storage or str(Path("runs") / "reproduce" / "ray"), executor=request.executor,
                         address=request.address, quiet=request.quiet)
    records = _existing_trials(experiment, request.tracking_uri, plan)
    wanted = plan.layers.get(budget)
    if wanted:  # the same experiment may hold older trials of other architectures
        records = [r for r in records if r.layers in wanted] or records
    if not records:
        counts = {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))}
        raise NoFinishedTrialsError(f"the search for Table {plan.table} finished no trial with a model "
                                    f"({counts or 'no trials'}); see its log above")
    return experiment, "trained now", records


def compare_rows(plan: TablePlan, thesis: "ThesisTable",
                 ours: "pd.DataFrame") -> tuple[list[dict[str, Any]], str, list[dict[str, Any]] | None]:
    """(the thesis' rows beside ours, extra report text, t-tests) by the plan's analysis."""
    if plan.analysis == "notable":
        return notable_rows(thesis, ours), "", None
    if plan.analysis == "pinn_pairs":
        extra, tests = t_test_markdown(ours)
        return pinn_pair_rows(thesis, ours), extra, tests
    return window_rows(thesis, ours), "", None


def write_report(request: ReproduceRequest, text: str, rows: list[dict[str, Any]], ours: "pd.DataFrame",
                 summary: dict[str, Any]) -> None:
    """report.md, rows.csv, reproduction.json and reproduction.png, written whole into ``request.out``."""
    plot_rows, label_key, thesis_key, ours_key = _rows_for_plot(request.plan, rows)
    with staged_folder(request.out, "reproduce") as staging:
        (staging / "report.md").write_text(text)
        ours.to_csv(staging / "rows.csv", index=False)
        (staging / "reproduction.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        plot_reproduction(plot_rows, staging / "reproduction.png",
                          title=f"Thesis Table {request.plan.table} vs ours ({request.budget})", label_key=label_key,
                          thesis_key=thesis_key, ours_key=ours_key)


def _json_default(value: Any) -> Any:
    if hasattr(value, "label"):
        return value.label()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _log_to_mlflow(tracking_uri: str, experiment: str, out: Path, plan: TablePlan, budget: str,
                   ours: "pd.DataFrame", *, quiet: bool) -> str | None:
    """A run in the experiment with the report as artifacts; a tracking failure is reported, not fatal
    (the report is already on disk)."""
    try:
        from mlflow.tracking import MlflowClient


        client = MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(
            experiment, artifact_location=default_artifact_root(tracking_uri))
        run = client.create_run(experiment_id, run_name=f"reproduce-table{plan.table}-{budget}",
                                tags={ROLE_TAG: REPRODUCE_ROLE, THESIS_TABLE_TAG: str(plan.table)})
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        params = {"table": plan.table, "budget": budget, "search": plan.search, "study": plan.study or "main",
                  "fresh_ic_seed": FRESH_IC_SEED, "reference": REFERENCE, "n_models": len(ours)}
        metrics = {"best_mean_err_vs_dop853": float(ours["mean_err"].min()),
                   "median_mean_err_vs_dop853": float(ours["mean_err"].median())}
        if "code_mean_err" in ours:
            metrics.update({"best_code_mean_err_vs_dop853": float(ours["code_mean_err"].min()),
                            "median_code_mean_err_vs_dop853": float(ours["code_mean_err"].median())})
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                         metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)])
        client.log_artifacts(run.info.run_id, str(out), "reproduce")
        client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id
    except Exception as exc:  # the report is on disk; say what failed
        print(f"warning: the report was not logged to MLflow ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.reproduce", description=__doc__.split("\n\n")[1],
                                     epilog="\n\n".join(__doc__.split("\n\n")[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help=f"thesis table: one of {', '.join(str(t) for t in sorted(PLANS))}")
    parser.add_argument("--budget", choices=BUDGETS, default="smoke", help="scale of the study (default smoke)")
    parser.add_argument("--out", type=Path, help="report folder (default runs/reproduce/table<N>-<budget>); "
                        "a folder fhn_automl did not write is never replaced")
    parser.add_argument("--experiment", help="read this MLflow experiment's finished trials; train nothing")
    parser.add_argument("--rerun", action="store_true", help="train even when the experiment already holds the "
                        "study's trials")
    parser.add_argument("--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    parser.add_argument("--data-root", default="data", help="datasets folder (default ./data)")
    parser.add_argument("--storage", help="Tune state folder (default ./runs/reproduce/ray)")
    parser.add_argument("--executor", choices=("train", "function"), help="trial executor (default: the search "
                        "file's); function skips Ray Train's per-trial start-up")
    parser.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--n-fresh", type=positive_int,
                        help=f"fresh initial states for the reference (default {FRESH_ICS})")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        reproduce(reproduce_request(args.table, budget=args.budget, out=args.out, tracking_uri=args.tracking_uri,
                                    experiment=args.experiment, rerun=args.rerun, data_root=args.data_root,
                                    storage=args.storage, executor=args.executor, address=args.address,
                                    n_fresh=args.n_fresh, quiet=args.quiet))
    except (UnknownTableError, PostStageError, SearchSpaceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
