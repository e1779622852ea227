"""Objectives, constraints and the Optuna sampler of a multi-objective search file.

``search:`` may name what is optimised and what must hold::

    search:
      algorithm: multi_objective
      objectives: [error, latency]          # minimised, any reported metric
      constraints: ["error <= 1e-3"]        # each also a query answered at the end of the search
      sampler: tpe                          # tpe | nsga2 | gp | random (Optuna's, seeded)
      query_fraction: 0.5                   # packed executor: the last half of num_samples answers the query
      latency: {device: cpu, backend: eager, batch: 4096, repeats: 20, warmup: 5, threads: 1}

``error`` is the file's ``search.metric`` (``val_mean_err`` unless set); ``latency`` is the measured
latency (``search.latency``); the other names are the metrics every trial reports (``REPORTED``), and,
on ``beat`` problems only (``tp06_beat``, ``ms_beat``), their physiology metrics (``BEAT_METRICS``, by
the full name or the short one: ``v_rmse``, ``apd90_err_pct``, ``apd90_max_err_pct``, ``apd50_err_pct``,
``max_dvdt_err_pct``, ``rest_err``, ...)::

      objectives: [v_rmse, latency]
      constraints: ["apd90_err_pct <= 1"]

Each is checked on load, and an error names the file and the field; a physiology metric on a problem
that is not a beat is refused there (``check_problem_metrics``), not left to report NaN. The figures
that exist only at a trial's end (``final_full_*``, physiology included) are fine as objectives and
constraints (Optuna is told the trial's final result) but cannot be MOASHA's cost, which ranks rungs
during training.

At the end of a search each constraint is a query: "the fastest model with error <= 1e-3" is the
finished model that meets it with the least of the *other* objective (``answer_queries``). Where that
objective is known before training (latency, macs, parameters, neurons; ``KNOWN_BEFORE_TRAINING``), the
packed executor's searcher spends the last ``query_fraction`` of ``num_samples`` (default
``DEFAULT_QUERY_FRACTION``; 0 turns it off) on that query (``search.query_phase``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fhn_automl.learning.multi_objective import pareto_front
# the names only: learning.physiology imports torch inside its functions, so validation stays torch-free
from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS
from fhn_automl.search.latency import BACKENDS, LATENCY_METRIC, LatencyTarget

#: Physiology metrics (``learning.physiology``) that trials on a ``beat`` problem report at their end.
BEAT_METRICS = tuple(f"final_full_val_{name}" for name in PHYSIOLOGY_METRICS)
#: objective / constraint name -> the result key it reads ("error" is resolved to ``search.metric``)
ALIASES = {"latency": LATENCY_METRIC, "macs": "macs_per_eval", "parameters": "n_parameters",
           "neurons": "n_neurons", **{name: f"final_full_val_{name}" for name in PHYSIOLOGY_METRICS}}
#: Metrics every trial reports (learning layer's ``report``, ``model_counts``), usable by name; the
#: ``BEAT_METRICS`` only on beat problems.
REPORTED = ("val_mean_err", "val_max_err", "best_val_mean_err", "best_val_max_err", "final_full_val_mean_err",
            "final_full_val_max_err", "macs_per_eval", "n_parameters", "n_neurons", "train_seconds",
            LATENCY_METRIC, *BEAT_METRICS)
#: Result keys a trial reports only once, at its end (the model at training end on the whole validation set).
END_ONLY_PREFIX = "final_full_"
SAMPLERS = ("tpe", "nsga2", "gp", "random")
#: objectives whose value is known without training (``search.query_phase`` ranks candidates by them)
KNOWN_BEFORE_TRAINING = (LATENCY_METRIC, "macs_per_eval", "n_parameters", "n_neurons")
DEFAULT_QUERY_FRACTION = 0.5
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``name op bound`` on a reported metric; ``key`` is the result key ``name`` reads."""

    name: str
    key: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        return value is not None and math.isfinite(value) and _OPERATORS[self.op](value, self.bound)

    def violation(self, value: float) -> float:
        """Optuna's convention: <= 0 when satisfied, the distance to the bound otherwise."""
        if value is None or not math.isfinite(value):
            return math.inf
        return value - self.bound if self.op in ("<=", "<") else self.bound - value

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class MultiObjective:
    """The objectives (names and result keys, all minimised), constraints, sampler and latency target."""

    names: tuple[str, ...]
    keys: tuple[str, ...]
    constraints: tuple[Constraint, ...] = ()
    sampler: str = "tpe"
    latency: LatencyTarget | None = None
    #: the share of num_samples the packed searcher spends on ``query`` (0 when there is none)
    query_fraction: float = 0.0

    @property
    def query(self) -> tuple[Constraint, str] | None:
        """The constraint the query phase answers and the known-before-training objective its query
        minimises (as ``answer_queries`` reads it), or None when no query has such an objective."""
        for constraint in self.constraints:
            target = query_target(constraint, self.keys)
            if target != constraint.key and target in KNOWN_BEFORE_TRAINING \
                    and constraint.key not in KNOWN_BEFORE_TRAINING:
                return constraint, target
        return None

    @property
    def needs_latency(self) -> bool:
        return LATENCY_METRIC in self.keys or any(c.key == LATENCY_METRIC for c in self.constraints)

    def constraint_values(self, result: Mapping[str, Any]) -> list[float]:
        return [c.violation(_number(result.get(c.key))) for c in self.constraints]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def resolve_name(name: str, error_metric: str) -> str | None:
    """The result key an objective / constraint name reads, or None when no trial reports it."""
    if name == "error":
        return error_metric
    key = ALIASES.get(name, name)
    return key if key in REPORTED else None


def parse_multi_objective(check: Any, raw: Mapping[str, Any], error_metric: str) -> MultiObjective | None:
    """The multi-objective fields of ``search:`` (``check`` is the search file's checker, whose errors
    name the file and the field); None when the file names no ``objectives``."""
    if "objectives" not in raw:
        for key in ("constraints", "sampler", "latency"):
            if key in raw:
                raise check.error(f"search.{key}", "needs search.objectives", raw[key])
        return None
    objectives = raw["objectives"]
    if not isinstance(objectives, (list, tuple)) or len(objectives) < 2:
        raise check.error("search.objectives", "must be a list of at least two metrics, e.g. [error, latency]",
                          objectives)
    known = ("error, latency, macs, parameters, neurons, " + ", ".join(REPORTED[:-len(BEAT_METRICS)])
             + "; on beat problems also " + ", ".join(PHYSIOLOGY_METRICS) + " (or final_full_val_<name>)")
    keys = []
    for name in objectives:
        key = resolve_name(str(name), error_metric)
        if key is None:
            raise check.error("search.objectives", f"names a metric no trial reports; known: {known}", name)
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise check.error("search.objectives", "names a metric twice", objectives)
    constraints = []
    raw_constraints = raw.get("constraints", [])
    if not isinstance(raw_constraints, (list, tuple)):
        raw_constraints = [raw_constraints]
    for text in raw_constraints:
        match = _CONSTRAINT.match(str(text)) if isinstance(text, str) else None
        if match is None:
            raise check.error("search.constraints", "each must read 'metric <= number' (or <, >=, >), "
                              "e.g. 'error <= 1e-3'", text)
        name, op, bound = match.groups()
        key = resolve_name(name, error_metric)
        if key is None:
            raise check.error("search.constraints", f"names a metric no trial reports ({name!r}); known: {known}",
                              text)
        constraints.append(Constraint(name=name, key=key, op=op, bound=float(bound)))
    sampler = raw.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise check.error("search.sampler", f"must be one of {', '.join(SAMPLERS)}", sampler)
    latency = _parse_latency(check, raw.get("latency", {}))
    multi = MultiObjective(names=tuple(map(str, objectives)), keys=tuple(keys), constraints=tuple(constraints),
                           sampler=sampler, latency=latency)
    fraction = raw.get("query_fraction")
    if fraction is None:
        fraction = DEFAULT_QUERY_FRACTION if multi.query is not None else 0.0
    elif isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise check.error("search.query_fraction", "must be a number in [0, 1): the share of num_samples "
                          "spent on the constraint's query", fraction)
    elif fraction > 0 and multi.query is None:
        raise check.error("search.query_fraction", "needs a constraint on a trained metric (e.g. 'error <= "
                          "1e-3') whose query minimises an objective known before training (latency, macs, "
                          "parameters, neurons: put it first among the other objectives)", fraction)
    return replace(multi, query_fraction=float(fraction))


def check_problem_metrics(check: Any, multi: MultiObjective | None, problems: Sequence[str],
                          problem_kinds: Mapping[str, str]) -> None:
    """Refuse a physiology metric (``BEAT_METRICS``) as an objective or constraint of a search that trains
    on a problem that is not a ``beat`` one (its trials never report it); ``problem_kinds``: problem ->
    ``Problem.kind``. The error names the field, the metric and the problem."""
    if multi is None:
        return
    others = [p for p in problems if problem_kinds.get(p) != "beat"]
    if not others:
        return
    fields = [("search.objectives", name, key) for name, key in zip(multi.names, multi.keys)]
    fields += [("search.constraints", str(c), c.key) for c in multi.constraints]
    for field_name, written, key in fields:
        if key in BEAT_METRICS:
            raise check.error(field_name, f"names {key.removeprefix('final_full_val_')!r}, a physiology metric of "
                              f"beat problems (tp06_beat, ms_beat), but problem {others[0]!r} is not a beat: its "
                              f"trials never report it", written)


def check_moasha_cost(check: Any, multi: MultiObjective | None, error_metric: str) -> None:
    """MOASHA ranks each rung by (error, cost) during training: its cost (the first objective other than
    ``error``) must be a figure reported before the end, not a ``final_full_*`` one."""
    if multi is None:
        return
    cost = next((k for k in multi.keys if k != error_metric), None)
    if cost is not None and cost.startswith(END_ONLY_PREFIX):
        name = multi.names[multi.keys.index(cost)]
        raise check.error("scheduler.type", f"moasha ranks rungs during training by (error, {name}), but {name} "
                          "is reported only at a trial's end; use fifo (or asha), or put a cost reported from "
                          "the start (latency, macs, parameters, neurons) second in search.objectives", "moasha")


def _parse_latency(check: Any, raw: Any) -> LatencyTarget:
    if not isinstance(raw, Mapping):
        raise check.error("search.latency", "must be a mapping (device, backend, batch, repeats, warmup, "
                          "threads)", raw)
    check.known_keys("search.latency", raw, {"device", "backend", "batch", "repeats", "warmup", "threads"})
    device = str(raw.get("device", "cpu"))
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise check.error("search.latency.device", "must be cpu, cuda or cuda:N", device)
    backend = raw.get("backend", "eager")
    if backend not in BACKENDS:
        raise check.error("search.latency.backend", f"must be one of {', '.join(BACKENDS)}", backend)
    warmup = raw.get("warmup", 5)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise check.error("search.latency.warmup", "must be an integer >= 0", warmup)
    return LatencyTarget(device=device, backend=backend,
                         batch=check.positive_int("search.latency.batch", raw.get("batch", 4096)),
                         repeats=check.positive_int("search.latency.repeats", raw.get("repeats", 20)),
                         warmup=warmup, threads=check.positive_int("search.latency.threads", raw.get("threads", 1)))


def make_sampler(name: str, seed: int) -> Any:
    """Optuna's multi-objective sampler ``name``, seeded. Constraints reach it through
    ``Trial.set_constraint`` (Optuna 5's replacement of ``constraints_func``), which TPE, NSGA-II and
    GP read; random sampling ignores them."""
    import optuna

    if name == "tpe":
        # multivariate + group: the per-layer dimensions exist only below their depth (conditional)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        if not hasattr(optuna.samplers, "GPSampler"):
            raise ValueError(f"sampler gp: this optuna ({optuna.__version__}) has no GPSampler; use tpe or nsga2")
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


# ----------------------------------------------------------------------------- end of a search


@dataclass(frozen=True)
class Model:
    """A finished model's objective values (what the front and the queries read)."""

    name: str
    layers: str
    values: dict[str, float]


def front(models: Sequence[Model], keys: Sequence[str]) -> list[Model]:
    """The non-dominated models over ``keys`` (all minimised), sorted by the first key."""
    usable = [m for m in models if all(math.isfinite(_number(m.values.get(k))) for k in keys)]
    return [usable[i] for i in pareto_front([[m.values[k] for k in keys] for m in usable])]


def query_target(constraint: Constraint, keys: Sequence[str]) -> str:
    """The objective a constraint's query minimises: the first objective other than the constrained one
    (the constrained one itself when it is the only objective)."""
    others = [k for k in keys if k != constraint.key] or list(keys)
    return others[0]


def answer_queries(models: Sequence[Model], spec: MultiObjective) -> list[tuple[Constraint, str, Model | None]]:
    """Per constraint: (constraint, the objective minimised under it, the best model or None)."""
    answers = []
    for constraint in spec.constraints:
        target = query_target(constraint, spec.keys)
        meeting = [m for m in models if constraint.holds(_number(m.values.get(constraint.key)))
                   and math.isfinite(_number(m.values.get(target)))]
        best = min(meeting, key=lambda m: (m.values[target], m.name), default=None)
        answers.append((constraint, target, best))
    return answers


def describe_answer(constraint: Constraint, target: str, model: Model | None) -> str:
    """``fastest model with error <= 0.001: t0012-... (silu-32,silu-32): latency_ms 0.41, ...``"""
    what = "fastest" if target == LATENCY_METRIC else f"least {target}"
    if model is None:
        return f"{what} model with {constraint}: none of the finished models meets it"
    values = ", ".join(f"{k} {v:.4g}" for k, v in model.values.items())
    return f"{what} model with {constraint}: {model.name} ({model.layers}): {values}"


def front_table(models: Sequence[Model], keys: Sequence[str]) -> str:
    """The front as a console table, one model a line."""
    rows = [["model", "layers", *keys]] + [[m.name, m.layers, *(f"{m.values[k]:.4g}" for k in keys)] for m in models]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def front_figure(models: Sequence[Model], front_models: Sequence[Model], keys: Sequence[str], path: Any) -> Any:
    """A scatter of every model over the first two objectives with the front drawn as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, y_key = keys[1], keys[0]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = [m.values.get(x_key) for m in models]
    ys = [m.values.get(y_key) for m in models]
    ax.scatter(xs, ys, s=12, color="0.6", label="finished models")
    line = sorted(front_models, key=lambda m: m.values[x_key])
    ax.step([m.values[x_key] for m in line], [m.values[y_key] for m in line], where="post",
            color="C3", marker="o", label="Pareto front")
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def models_from_results(results: Any, keys: Sequence[str], name_of: Callable[[Mapping[str, Any]], str],
                        extra: Sequence[str] = ()) -> list[Model]:
    """Finished models of a Tune ``ResultGrid`` (packs split into members): their objective values.
    ``name_of`` names a member from its trial spec (``TrialSpec.from_dict(spec).name``). A model needs a
    finite value of every objective in ``keys``; the ``extra`` keys (what the constraints read, when it is
    not an objective) come along as they are, NaN where a model lacks them."""
    models = []
    for result in results:
        metrics = getattr(result, "metrics", None) or {}
        config = getattr(result, "config", None) or {}
        if "pack" in config:
            layers_of = {name_of(spec): spec["layers"] for spec in config["pack"]["trials"]}
        else:
            spec = config.get("trial") or {**config.get("template", {}), **config.get("sampled", {})}
            layers_of = {"trial": spec.get("layers", "?")}
        records = metrics.get("members") or ({"trial": metrics} if metrics else {})
        for name, record in records.items():
            if record.get("status") in ("diverged", "stopped_early", "error"):
                continue
            values = {key: _number(record.get(key)) for key in keys}
            if all(math.isfinite(v) for v in values.values()):
                values.update({key: _number(record.get(key)) for key in extra if key not in values})
                if name == "trial":
                    name = Path(str(getattr(result, "path", "trial"))).name
                    layers = layers_of["trial"]
                else:
                    layers = layers_of.get(name, "?")
                models.append(Model(name=name, layers=str(layers), values=values))
    return models


def report_front(tracker: Any, spec: MultiObjective, models: Sequence[Model], folder: Path, *,
                 quiet: bool = False) -> dict[str, Any]:
    """End of a multi-objective search: the front as a console table and a figure on the parent run,
    each constraint query answered (printed, and ``front.txt`` on the parent run). Returns the answers."""
    front_models = front(models, spec.keys)
    lines = [f"Pareto front ({' vs '.join(spec.keys)}) of {len(models)} finished model(s):",
             front_table(front_models, spec.keys)]
    answers = answer_queries(models, spec)
    lines += [describe_answer(*answer) for answer in answers]
    text = "\n".join(lines)
    if not quiet:
        print(text, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "front.txt").write_text(text + "\n")
    figure = front_figure(models, front_models, spec.keys, folder / "front.png") if front_models else None
    if tracker is not None and getattr(tracker, "parent_run_id", None):
        try:  # a tracking hiccup loses the figure, never the search (the files stay in ``folder``)
            tracker.client.log_artifact(tracker.parent_run_id, str(folder / "front.txt"), "front")
            if figure is not None:
                tracker.client.log_artifact(tracker.parent_run_id, str(figure), "front")
            for i, (constraint, _, best) in enumerate(answers):
                tracker.client.set_tag(tracker.parent_run_id, f"fhn.query.{i}",
                                       describe_answer(constraint, _, best)[:5000])
        except Exception as exc:  # noqa: BLE001 (MLflow raises many kinds)
            print(f"[search] could not log the front to MLflow: {exc}", flush=True)
    return {"front": [m.name for m in front_models],
            "answers": {str(c): (None if m is None else m.name) for c, _, m in answers}}
