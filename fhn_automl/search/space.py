"""Search-space files (``search_spaces/<name>.yaml``): loading, validation, expansion into trials.

A file describes one study of the thesis, or several (``studies:``) that share a problem and
settings. Every field is checked on load and an error names the file and the field, because a typo in a
paper-budget search should fail in a second, not after a day on a cluster. The format is documented in
``search_spaces/README.md``; the fields are:

- ``problem`` (a registered name, or ``beat:MODEL_FILE?OPTIONS``: a beat problem of a user's cell-model
  file, its path relative to the search file's folder; kept in the trials as its canonical, absolute spec),
  ``kind`` (``ddnn`` | ``pinn`` | ``iter`` | ``untrained``), ``batch_size``,
  ``extra_region``, ``window``, ``seeds``: a value or a list (a list is a grid axis);
- ``layers``: ``choices`` (``activation-width`` tokens) and ``depths`` -> the choices^depth grid, optional
  ``shape_classes`` filter; or explicit ``sequences``;
- ``options``: further keys of the learning layer's training config, each a value or a list;
- ``steps``, ``val_every``, ``recipe``, ``n_trajectories``: training and data at the paper budget;
- ``search`` (``grid`` | ``tpe`` | ``multi_objective``), ``scheduler`` (``fifo`` | ``asha``),
  ``resources`` (workers, CPUs and GPU fraction per worker), ``budgets`` (per-budget overrides).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fhn_automl._package_data import package_data_dir
from fhn_automl.learning.architecture import (MAX_HIDDEN_WEIGHTS, SHAPE_CLASSES, LayerNotationError, parse_layer,
                                              parse_layers, shape_class)
from fhn_automl.learning.config import MAX_BATCH_SIZE, MAX_STEPS, TrainConfig, parse_extra_region
from fhn_automl.learning.windows import parse_window
from fhn_automl.physics.problems import PROBLEMS, Problem, UnknownProblemError, get_problem, is_beat_spec, problem_name
from fhn_automl.search.budgets import BUDGET_FIELDS, BUDGET_NAMES, Budget, resolve_budget
from fhn_automl.search.grid import evenly_spaced, layer_sequences
from fhn_automl.search.objectives import check_moasha_cost, check_problem_metrics, parse_multi_objective

#: Where ``python -m fhn_automl.search NAME`` looks for ``NAME.yaml``: the repository's folder, or
#: its copy inside an installed wheel.
SEARCH_SPACES_DIR = package_data_dir("search_spaces")

KINDS = ("ddnn", "pinn", "iter", "untrained")
ALGORITHMS = ("grid", "tpe", "multi_objective")
SCHEDULERS = ("fifo", "asha", "moasha")
COST_METRICS = ("macs", "parameters", "neurons")
USE_GPU = ("auto", "always", "never")
EXECUTORS = ("train", "function", "packed")

#: The grid axes other than the layer sequence: file key -> trial parameter name.
AXES = {"problem": "problem", "kind": "kind", "batch_size": "batch_size",
        "extra_region": "extra_region", "window": "window", "seeds": "seed"}
_STUDY_KEYS = set(AXES) | {"layers", "options", "description", "steps", "val_every", "recipe",
                           "n_trajectories"}
_TOP_KEYS = _STUDY_KEYS | {"search", "scheduler", "resources", "budgets", "studies"}
#: Training-config keys that their own fields or the search set, so ``options`` may not.
_SET_BY_SEARCH = {"problem", "kind", "layers", "steps", "batch_size", "recipe", "val_every", "seed",
                  "device", "extra_region", "window", "data_dir", "out_dir"}


class SearchSpaceError(ValueError):
    """A search file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class LayerGrid:
    """Layer sequences: a choices^depth grid (optionally filtered by shape class) or explicit ones."""

    choices: tuple[str, ...] = ()
    depths: tuple[int, ...] = ()
    shape_classes: tuple[str, ...] | None = None
    sequences: tuple[str, ...] = ()

    def expand(self) -> list[str]:
        """All layer strings of this grid, in a stable order."""
        if self.sequences:
            return list(self.sequences)
        return list(layer_sequences(self.choices, self.depths, shape_classes=self.shape_classes,
                                    shape_class_of=shape_class if self.shape_classes is not None else None))


@dataclass(frozen=True)
class Study:
    """One grid of the file: the product of the layer sequences and every axis."""

    name: str
    description: str
    layers: LayerGrid
    axes: dict[str, tuple[Any, ...]]
    options: dict[str, tuple[Any, ...]]
    steps: int
    val_every: int
    recipe: str
    n_trajectories: int | None


@dataclass(frozen=True)
class SearchAlgorithm:
    """``grid`` tries every trial; ``tpe`` / ``multi_objective`` let Optuna pick ``num_samples``."""

    algorithm: str = "grid"
    num_samples: int = 1
    metric: str = "val_mean_err"
    #: the second objective of ``multi_objective``: an inference-cost proxy reported by every trial
    cost_metric: str = "macs"
    seed: int = 0
    #: ``objectives`` / ``constraints`` / ``sampler`` / ``latency`` (``search.objectives``), or None
    multi: Any = None


@dataclass(frozen=True)
class Scheduler:
    """``fifo`` trains every trial to the end; ``asha`` stops poor ones after ``grace_period`` steps."""

    kind: str = "fifo"
    #: as a fraction of a trial's steps, so budgets scale it with the steps
    grace_fraction: float = 0.1
    reduction_factor: int = 3

    def grace_steps(self, steps: int, val_every: int) -> int:
        """The first rung (ASHA's grace period, in-pack halving's first cut): ``grace_fraction`` of the
        steps, and never before the first validation, where the metric first exists."""
        return max(val_every, int(self.grace_fraction * steps))


@dataclass(frozen=True)
class Resources:
    """What one trial asks for: ``workers`` Ray Train workers of ``cpus_per_worker`` and a GPU share.

    ``gpus_per_worker`` below 1 packs several tiny models on one GPU. ``use_gpu: auto`` uses it when
    the cluster has GPUs and trains on CPU otherwise; ``always`` makes a GPU-less cluster an error.
    """

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    use_gpu: str = "auto"
    #: ``train``: a Ray Train trainer per trial (``TorchTrainer``: DDP over ``workers``, Train's own fault
    #: tolerance); ``function``: the trial's Tune function trains by itself (one process, no Train
    #: controller or worker group: ~1.5 s instead of ~10-20 s of start-up per trial); ``packed``: one
    #: Tune trial trains up to ``pack_size`` compatible trials together (``learning.packed``)
    executor: str = "train"
    pack_size: int = 16


@dataclass(frozen=True)
class SearchSpace:
    """A validated search file."""

    name: str
    path: Path
    description: str
    studies: tuple[Study, ...]
    search: SearchAlgorithm
    scheduler: Scheduler
    resources: Resources
    budget_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Every problem some trial trains on (each gets its dataset built once by the driver)."""
        seen: dict[str, None] = {}
        for study in self.studies:
            for problem in study.axes["problem"]:
                seen[problem] = None
        return list(seen)

    def budget(self, name: str) -> Budget:
        return resolve_budget(name, self.budget_overrides.get(name))

    def trials(self, budget: Budget | str = "paper") -> list[TrialSpec]:
        """The trials of the whole grid at ``budget``, numbered in a stable order.

        Budgets with ``max_trials`` keep that many, spread evenly over the grid so every study is
        touched. Model-based searches (Optuna) sample from this list instead of running all of it.
        """
        if isinstance(budget, str):
            budget = self.budget(budget)
        trials: list[TrialSpec] = []
        for study in self.studies:
            for layers in study.layers.expand():
                names = list(study.axes) + list(study.options)
                values = [study.axes[k] for k in study.axes] + [study.options[k] for k in study.options]
                for combination in itertools.product(*values):
                    chosen = dict(zip(names, combination))
                    axes = {AXES[k]: chosen[k] for k in study.axes}
                    options = {k: chosen[k] for k in study.options}
                    trials.append(TrialSpec(
                        index=len(trials), study=study.name, layers=layers, options=options,
                        steps=budget.steps or study.steps,
                        val_every=min(budget.val_every or study.val_every, budget.steps or study.steps),
                        recipe=budget.recipe or study.recipe,
                        n_trajectories=(budget.n_trajectories if budget.n_trajectories is not None
                                        else study.n_trajectories),
                        **axes))
        if budget.max_trials is not None and self.search.algorithm == "grid":
            trials = evenly_spaced(trials, budget.max_trials)
        return trials

    def select_trials(self, budget: Budget | str, study: str | None = None) -> list[TrialSpec]:
        """``trials(budget)``, restricted to one study when asked (``--study``)."""
        if study is None:
            return self.trials(budget)
        names = [s.name for s in self.studies]
        if study not in names:
            raise SearchSpaceError(f"{self.path}: no study {study!r}; studies: {', '.join(names)}")
        only = dataclasses.replace(self, studies=tuple(s for s in self.studies if s.name == study))
        return only.trials(budget)


@dataclass(frozen=True)
class TrialSpec:
    """One trial: the architecture, the training settings and a deterministic name."""

    index: int
    study: str
    problem: str
    kind: str
    layers: str
    batch_size: int
    extra_region: str | None
    window: str | None
    seed: int
    steps: int
    val_every: int
    recipe: str
    n_trajectories: int | None
    options: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def resolved_problem(self) -> Problem:
        """The ``Problem`` that ``problem`` (its key, as Tune's config and MLflow carry it) names, resolved once
        per trial: the search layer below this takes the object."""
        return get_problem(self.problem)

    @property
    def name(self) -> str:
        """Deterministic, so a restarted search finds its trials again (no timestamps, no hashes)."""
        layers = ".".join(token.replace("-", "") for token in self.layers.split(","))
        parts = [f"t{self.index:04d}", self.study, problem_name(self.problem).removeprefix("problem_"), self.kind,
                 layers, f"bs{self.batch_size}"]
        if self.extra_region:
            parts.append("xr" + _short(self.extra_region.partition(":")[0])[:8])
        if self.window not in (None, False):
            parts.append(f"w{self.window}")
        parts += [f"{k}{_short(v)}" for k, v in self.options.items()]
        parts.append(f"s{self.seed}")
        return "-".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "study": self.study, "problem": self.problem,
                "kind": self.kind, "layers": self.layers, "batch_size": self.batch_size,
                "extra_region": self.extra_region, "window": self.window, "seed": self.seed,
                "steps": self.steps, "val_every": self.val_every, "recipe": self.recipe,
                "n_trajectories": self.n_trajectories, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        data = dict(data)
        data.pop("name", None)
        return cls(**data)


def _short(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "", str(value))[:16]


# --------------------------------------------------------------------------------------- loading


def resolve_search_file(name_or_path: str | Path) -> Path:
    """``problem_b_s`` -> ``search_spaces/problem_b_s.yaml``; a path is taken as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.exists():
            raise SearchSpaceError(f"{candidate}: no such search file")
        return candidate.resolve()
    path = SEARCH_SPACES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SEARCH_SPACES_DIR.glob("*.yaml")))
        raise SearchSpaceError(f"no search file {name_or_path!r} in {SEARCH_SPACES_DIR}; "
                               f"known: {known}")
    return path


#: Most layer sequences one grid may expand to (choices^depth summed over depths), checked on the
#: counts before anything is enumerated: ``depths: [40]`` once ran the driver out of memory.
MAX_GRID_SEQUENCES = 1_000_000
#: Deepest layer sequence a grid may ask for.
MAX_DEPTH = 32


class _SearchFileLoader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``1e6`` is a number: YAML 1.1 needs a dot (``1.0e6``) and would
    hand the trainer the string '1e6' (YAML 1.2 and every user read it as a float).

    Stricter than YAML in two ways a search file never needs: anchors / aliases are refused (an
    "alias bomb" of nested aliases expands to billions of items), and a key written twice in one
    mapping is an error (YAML keeps the last silently, so the first setting would be lost unseen)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not allowed in a search file "
                                              "(write the value out)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"key {key!r} appears twice (first at line {seen[key].line + 1})", key_node.start_mark)
                if isinstance(key, typing.Hashable):
                    seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_SearchFileLoader.yaml_implicit_resolvers = {  # a copy, so yaml.SafeLoader itself is left alone
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_SearchFileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_search_space(name_or_path: str | Path, *, problem: str | None = None) -> SearchSpace:
    """Read and validate a search file; any problem raises ``SearchSpaceError`` naming the field.

    ``problem`` (the search CLI's ``--problem``): the file's grid on that problem instead of its own (every
    study's), e.g. a beat problem of a user's model file on ``tp06_beat.yaml``'s grid; a relative model
    path is taken from the working directory. The search is then named ``<file>-<problem name>``, so its
    MLflow experiment and Tune state are its own."""
    if problem is not None:
        try:
            problem = get_problem(problem).key
        except UnknownProblemError as exc:
            raise SearchSpaceError(f"--problem: {exc}") from None
    path = resolve_search_file(name_or_path)
    if path.is_dir():
        raise SearchSpaceError(f"{path}: is a folder, not a search file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SearchSpaceError(f"{path}: not a text (UTF-8) file: byte {exc.start} cannot be read; "
                               "a search file is YAML") from None
    except OSError as exc:
        raise SearchSpaceError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        raw = yaml.load(text, Loader=_SearchFileLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{path}: not valid YAML: {exc}") from None
    if problem is None or not isinstance(raw, Mapping):
        return parse_search_space(raw, path)
    raw = {**raw, "problem": problem}
    if isinstance(raw.get("studies"), Mapping):
        raw["studies"] = {name: ({k: v for k, v in study.items() if k != "problem"} if isinstance(study, Mapping)
                                 else study) for name, study in raw["studies"].items()}
    space = parse_search_space(raw, path)
    return dataclasses.replace(space, name=f"{space.name}-{problem_name(problem)}")


def parse_search_space(raw: Any, path: Path) -> SearchSpace:
    """Validate the parsed YAML of ``path`` (split out so tests can feed mappings)."""
    check = _Checker(path)
    if not isinstance(raw, Mapping):
        raise check.error("(top level)", "must be a mapping of fields", raw)
    check.known_keys("(top level)", raw, _TOP_KEYS)
    for required in ("problem", "kind", "layers"):
        if required not in raw and not _all_studies_set(raw, required):
            raise check.error(required, "is required", None)

    shared = {k: v for k, v in raw.items() if k in _STUDY_KEYS}
    studies_raw = raw.get("studies")
    if studies_raw is None:
        studies = [_parse_study(check, "main", shared, prefix="")]
    else:
        if not isinstance(studies_raw, Mapping) or not studies_raw:
            raise check.error("studies", "must be a non-empty mapping of study name -> fields",
                              studies_raw)
        studies = []
        for study_name, overrides in studies_raw.items():
            prefix = f"studies.{study_name}."
            if not re.fullmatch(r"[A-Za-z0-9_]+", str(study_name)):
                raise check.error(f"studies.{study_name}", "study names use letters, digits and _",
                                  study_name)
            if not isinstance(overrides, Mapping):
                raise check.error(prefix[:-1], "must be a mapping of fields", overrides)
            check.known_keys(prefix[:-1], overrides, _STUDY_KEYS)
            studies.append(_parse_study(check, str(study_name), {**shared, **overrides},
                                        prefix=prefix))

    space = SearchSpace(
        name=path.stem, path=path, description=str(raw.get("description", "")).strip(),
        studies=tuple(studies), search=_parse_search(check, raw.get("search", {})),
        scheduler=_parse_scheduler(check, raw.get("scheduler", {})),
        resources=_parse_resources(check, raw.get("resources", {})),
        budget_overrides=_parse_budgets(check, raw.get("budgets", {})))
    check_problem_names(path, space.problems)
    if space.search.algorithm != "grid" and space.resources.executor == "packed" and not (
            space.search.algorithm == "multi_objective" and space.search.multi is not None):
        raise check.error("resources.executor", "packed trains a grid's trials in packs: it needs "
                          "search.algorithm: grid, or multi_objective with search.objectives",
                          space.resources.executor)
    if space.search.algorithm == "multi_objective" and space.search.multi is not None and \
            space.resources.executor == "packed":
        check_packed_multi_objective(space)
    raw_search = raw.get("search", {})
    if raw_search.get("query_fraction") and space.resources.executor != "packed":
        raise check.error("search.query_fraction", "the query phase is the packed executor's searcher's "
                          "(resources.executor: packed)", raw_search["query_fraction"])
    if space.scheduler.kind == "moasha" and space.search.multi is None:
        raise check.error("scheduler.type", "moasha (Pareto halving) needs search.objectives", "moasha")

    check_problem_metrics(check, space.search.multi, space.problems,
                          {problem: get_problem(problem).kind for problem in space.problems})
    if space.scheduler.kind == "moasha":
        check_moasha_cost(check, space.search.multi, space.search.metric)
    if space.search.algorithm != "grid" and any(s.axes["kind"] == ("untrained",) for s in studies):
        raise check.error("search.algorithm", "untrained sweeps have no error to optimise: use grid",
                          space.search.algorithm)
    return space


def check_packed_multi_objective(space: Any, trials: Sequence[Any] | None = None) -> None:
    """A packed multi-objective search samples layers and seeds only (a pack shares everything else) and
    one study: ``SearchSpaceError`` naming the file and the field otherwise. Called on load (the axes)
    and by the runner before anything is written (the studies a run selects)."""
    for study in space.studies:
        prefix = "" if len(space.studies) == 1 else f"studies.{study.name}."
        fields = {**{k: v for k, v in study.axes.items() if k != "seeds"},
                  **{f"options.{k}": v for k, v in study.options.items()}}
        for key, values in fields.items():
            if len(values) > 1:
                raise SearchSpaceError(
                    f"{space.path}: field '{prefix}{key}' has several values {list(values)}; the members of a "
                    "pack share everything but layers and seed, so a packed multi-objective search takes one "
                    "value (or use executor: function)")
    if trials is not None and len({t.study for t in trials}) > 1:
        raise SearchSpaceError(f"{space.path}: field 'studies': a packed multi-objective search samples one "
                               f"study at a time; pass --study (studies: {', '.join(s.name for s in space.studies)})")


def _all_studies_set(raw: Mapping, key: str) -> bool:
    studies = raw.get("studies")
    return isinstance(studies, Mapping) and bool(studies) and all(
        isinstance(s, Mapping) and key in s for s in studies.values())


class _Checker:
    """Builds errors that name the file and the field, and checks the common value shapes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, field_name: str, problem: str, value: Any) -> SearchSpaceError:
        got = "" if value is None else f" (got {value!r})"
        return SearchSpaceError(f"{self.path}: field '{field_name}' {problem}{got}")

    def known_keys(self, where: str, mapping: Mapping, allowed: set[str]) -> None:
        unknown = sorted(set(map(str, mapping)) - allowed)
        if unknown:
            field_name = unknown[0] if where == "(top level)" else f"{where}.{unknown[0]}"
            raise self.error(field_name, f"is not a known field; known: {', '.join(sorted(allowed))}",
                             None)

    def as_list(self, field_name: str, value: Any) -> list:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise self.error(field_name, "must not be an empty list", value)
        return items

    def positive_int(self, field_name: str, value: Any, maximum: int | None = None) -> int:
        written = value
        if isinstance(value, float) and value.is_integer():  # steps: 1e6
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.error(field_name, "must be a positive integer", value)
        if maximum is not None and value > maximum:
            raise self.error(field_name, f"must be at most {maximum:,}", written)
        return value


def _parse_study(check: _Checker, name: str, fields_: Mapping[str, Any], prefix: str) -> Study:
    for required in ("problem", "kind", "layers"):
        if required not in fields_:
            raise check.error(prefix + required, "is required", None)

    problems = _check_problems(check, prefix + "problem",
                               [str(p) for p in check.as_list(prefix + "problem", fields_["problem"])])
    kinds = check.as_list(prefix + "kind", fields_["kind"])
    for kind in kinds:
        if kind not in KINDS:
            raise check.error(prefix + "kind", f"must be one of {', '.join(KINDS)}", kind)
    batch_sizes = [check.positive_int(prefix + "batch_size", b, MAX_BATCH_SIZE)
                   for b in check.as_list(prefix + "batch_size", fields_.get("batch_size", 128))]
    extra = [None if value in (False, None, "none") else value
             for value in check.as_list(prefix + "extra_region", fields_.get("extra_region", None))]
    for value in extra:
        if value is True or (value is not None and not isinstance(value, str)):
            raise check.error(prefix + "extra_region",
                              "must be false or a region the learning layer knows (a preset such as "
                              "unstable_equilibrium, 'physics:u0=0.35:0.45', 'data:SET'), or a list "
                              "of them", value)
        _check_with_learning(check, prefix + "extra_region", "extra_region", value, problems)
    windows = [None if value in (False, None, "none") else value
               for value in check.as_list(prefix + "window", fields_.get("window", None))]
    for value in windows:
        if value is not None and not isinstance(value, str):
            raise check.error(prefix + "window",
                              "must be none, 'split:N', 'split:EDGES' or 'chained:T', or a list of them",
                              value)
        _check_with_learning(check, prefix + "window", "window", value, problems)
    seeds = check.as_list(prefix + "seeds", fields_.get("seeds", 0))
    for value in seeds:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise check.error(prefix + "seeds", "must be non-negative integers", value)

    options_raw = fields_.get("options", {}) or {}
    if not isinstance(options_raw, Mapping):
        raise check.error(prefix + "options", "must be a mapping of training-config key -> value(s)",
                          options_raw)
    options: dict[str, tuple[Any, ...]] = {}
    for key, value in options_raw.items():
        if key in _SET_BY_SEARCH:
            raise check.error(f"{prefix}options.{key}", "is set by its own field or by the search",
                              None)
        options[str(key)] = tuple(_check_option(check, f"{prefix}options.{key}", str(key), item, problems)
                                  for item in check.as_list(f"{prefix}options.{key}", value))

    steps = check.positive_int(prefix + "steps", fields_.get("steps", 1_000_000), MAX_STEPS)
    val_every = check.positive_int(prefix + "val_every", fields_.get("val_every", 10_000), MAX_STEPS)
    recipe = fields_.get("recipe", "paper")
    if recipe not in ("fast", "paper"):
        raise check.error(prefix + "recipe", "must be fast or paper", recipe)
    n_traj = fields_.get("n_trajectories")
    if n_traj is not None:
        check.positive_int(prefix + "n_trajectories", n_traj)

    return Study(
        name=name, description=str(fields_.get("description", "")).strip(),
        layers=_parse_layers(check, prefix + "layers", fields_["layers"]),
        axes={"problem": tuple(problems), "kind": tuple(kinds), "batch_size": tuple(batch_sizes),
              "extra_region": tuple(extra), "window": tuple(windows), "seeds": tuple(seeds)},
        options=options, steps=steps, val_every=val_every, recipe=recipe, n_trajectories=n_traj)


def _check_option(check: _Checker, field_name: str, key: str, value: Any, problems: Sequence[str]) -> Any:
    """One ``options`` value judged by the learning layer's ``TrainConfig``: its fields, their types
    and its own checks (``threads >= 1``, ``lr > 0``, ...), so a bad value fails on load, not in
    every trial. Returns the value, an integral float (``1e6``) as an int where the field is one."""
    hints = typing.get_type_hints(TrainConfig)
    if key not in hints:
        raise check.error(field_name, "is not a key of the learning layer's training config; known: "
                          + ", ".join(sorted(set(hints) - _SET_BY_SEARCH)), None)
    hint = hints[key]
    if isinstance(value, Mapping) and typing.get_origin(hint) is tuple:
        value = (value,)  # a list of mappings is a grid axis; each of its items is a one-item tuple
    if isinstance(value, float) and value.is_integer() and _accepts(hint, int) and not _accepts(hint, float):
        value = int(value)
    if not _matches(value, hint):
        raise check.error(field_name, f"must be of type {_type_name(hint)}", value)
    try:
        TrainConfig.from_mapping({"problem": problems[0], key: value})
    except (ValueError, TypeError) as exc:  # its messages already show the value
        raise check.error(field_name, str(exc), None) from None
    return value


def _accepts(hint: Any, kind: type) -> bool:
    return hint is kind or kind in typing.get_args(hint)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a field's annotation (classes the field parses itself pass)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping) or hint is dict:
        return isinstance(value, Mapping)
    return True


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "").replace("collections.abc.", "")


def _check_with_learning(check: _Checker, field_name: str, what: str, value: Any,
                         problems: Sequence[str]) -> None:
    """Let the learning layer's own parser judge an extra region or a window, naming the field.

    Those parsers (like ``architecture``'s names) import no torch, so every search file is checked
    in full on the driver, even one without torch.
    """
    if value is None:
        return
    try:
        if what == "extra_region":
            parse_extra_region(value)
        else:
            for problem in problems:
                parse_window(value, get_problem(problem).t_span)
    except ValueError as exc:
        raise check.error(field_name, str(exc), value) from None


def _check_problems(check: _Checker, field_name: str, problems: Sequence[str]) -> list[str]:
    """The problems as trials carry them: registered names as written, a model file's ``beat:`` spec made
    canonical (absolute path from the search file's folder, so a Ray worker in another folder finds it)."""
    keys = []
    for problem in problems:
        if is_beat_spec(problem):
            try:
                keys.append(get_problem(problem, base_dir=check.path.parent).key)
            except UnknownProblemError as exc:  # ProblemSpecError: names the file, the option, the value
                raise check.error(field_name, str(exc), None) from None
        elif problem not in PROBLEMS:
            raise check.error(field_name, f"names no problem; known: {', '.join(sorted(PROBLEMS))}; or a model "
                              "file's beat problem, beat:MODEL_FILE?vary=P1,P2", problem)
        else:
            keys.append(problem)
    return keys


def check_problem_names(path: Path, problems: Sequence[str]) -> None:
    """Different problems of one search need different names: the name keys their dataset folders and
    registered models. Two beat specs of files with one stem (or one file, other options) collide."""
    by_name: dict[str, str] = {}
    for problem in problems:
        name = problem_name(problem)
        if by_name.setdefault(name, problem) != problem:
            raise SearchSpaceError(f"{path}: field 'problem': {by_name[name]!r} and {problem!r} are both named "
                                   f"{name!r} (it names their datasets and registered models); give one "
                                   f"another with the spec option name=NAME")


def _parse_layers(check: _Checker, field_name: str, raw: Any) -> LayerGrid:
    if not isinstance(raw, Mapping):
        raise check.error(field_name, "must be a mapping with 'choices' and 'depths', or 'sequences'",
                          raw)
    check.known_keys(field_name, raw, {"choices", "depths", "shape_classes", "sequences"})
    if "sequences" in raw:
        if "choices" in raw or "depths" in raw:
            raise check.error(field_name, "takes either 'sequences' or 'choices' + 'depths'", None)
        sequences = check.as_list(field_name + ".sequences", raw["sequences"])
        canonical = []
        for sequence in sequences:
            canonical.append(",".join(_check_layer_token(check, field_name + ".sequences", token)
                                      for token in str(sequence).replace(" ", "").split(",")))
            try:
                parse_layers(canonical[-1])  # its size as a whole (hidden weights)
            except LayerNotationError as exc:
                raise check.error(field_name + ".sequences", str(exc), None) from None
        return LayerGrid(sequences=tuple(canonical))
    if "choices" not in raw or "depths" not in raw:
        raise check.error(field_name, "needs both 'choices' and 'depths' (or 'sequences')", None)
    choices = [_check_layer_token(check, field_name + ".choices", str(c).replace(" ", ""))
               for c in check.as_list(field_name + ".choices", raw["choices"])]
    if len(set(choices)) != len(choices):
        raise check.error(field_name + ".choices", "lists a layer twice", choices)
    depths = [check.positive_int(field_name + ".depths", d, MAX_DEPTH)
              for d in check.as_list(field_name + ".depths", raw["depths"])]
    n_sequences = sum(len(choices) ** d for d in depths)  # counted, not enumerated
    if n_sequences > MAX_GRID_SEQUENCES:
        raise check.error(field_name + ".depths", f"makes {n_sequences:.3g} layer sequences from {len(choices)} "
                          f"choices, more than {MAX_GRID_SEQUENCES:,}; use fewer choices or depths", depths)
    widest = max(parse_layer(token).width for token in choices)
    if max(depths) > 1 and widest * widest * (max(depths) - 1) > MAX_HIDDEN_WEIGHTS:
        raise check.error(field_name, f"its deepest sequence of its widest layer ({max(depths)} x {widest}) has "
                          f"more than {MAX_HIDDEN_WEIGHTS:.3g} hidden weights (1 GiB of float32)", None)
    shape_classes = raw.get("shape_classes")
    if shape_classes is not None:
        shape_classes = [str(s) for s in check.as_list(field_name + ".shape_classes", shape_classes)]
        for shape in shape_classes:
            if shape not in SHAPE_CLASSES:
                raise check.error(field_name + ".shape_classes",
                                  f"must be among {', '.join(sorted(SHAPE_CLASSES))}", shape)
    grid = LayerGrid(choices=tuple(choices), depths=tuple(depths),
                     shape_classes=None if shape_classes is None else tuple(shape_classes))
    if shape_classes is not None and not grid.expand():
        raise check.error(field_name + ".shape_classes", "leaves no layer sequence in the grid",
                          shape_classes)
    return grid


def _check_layer_token(check: _Checker, field_name: str, token: str) -> str:
    """The canonical form of one layer token (``SiLU-32`` -> ``silu-32``), parsed by the learning layer's
    one parser of the notation, so a search file takes exactly what the trainer takes."""
    try:
        return str(parse_layer(token))
    except LayerNotationError as error:
        raise check.error(field_name, f"is not a layer (activation-width, e.g. silu-32): {error}", token) from None


def _parse_search(check: _Checker, raw: Any) -> SearchAlgorithm:
    if not isinstance(raw, Mapping):
        raise check.error("search", "must be a mapping", raw)
    check.known_keys("search", raw, {"algorithm", "num_samples", "metric", "cost_metric", "seed", "objectives",
                                     "constraints", "sampler", "latency", "query_fraction"})
    algorithm = raw.get("algorithm", "grid")
    if algorithm not in ALGORITHMS:
        raise check.error("search.algorithm", f"must be one of {', '.join(ALGORITHMS)}", algorithm)
    num_samples = raw.get("num_samples", 1)
    if algorithm != "grid":
        if "num_samples" not in raw:
            raise check.error("search.num_samples", f"is required for {algorithm}", None)
        check.positive_int("search.num_samples", num_samples)
    metric = raw.get("metric", "val_mean_err")
    if metric not in ("val_mean_err", "val_max_err"):
        raise check.error("search.metric", "must be val_mean_err or val_max_err", metric)
    cost = raw.get("cost_metric", "macs")
    if cost not in COST_METRICS:
        raise check.error("search.cost_metric", f"must be one of {', '.join(COST_METRICS)}", cost)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise check.error("search.seed", "must be an integer", seed)

    multi = parse_multi_objective(check, raw, metric)
    return SearchAlgorithm(algorithm=algorithm, num_samples=int(num_samples), metric=metric,
                           cost_metric=cost, seed=seed, multi=multi)


def _parse_scheduler(check: _Checker, raw: Any) -> Scheduler:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise check.error("scheduler", "must be fifo, asha or a mapping", raw)
    check.known_keys("scheduler", raw, {"type", "grace_fraction", "reduction_factor"})
    kind = raw.get("type", "fifo")
    if kind not in SCHEDULERS:
        raise check.error("scheduler.type", f"must be one of {', '.join(SCHEDULERS)}", kind)
    grace = raw.get("grace_fraction", 0.1)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 < grace <= 1:
        raise check.error("scheduler.grace_fraction",
                          "must be a fraction of the trial's steps in (0, 1]", grace)
    reduction = raw.get("reduction_factor", 3)
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 2:
        raise check.error("scheduler.reduction_factor", "must be an integer >= 2", reduction)
    return Scheduler(kind=kind, grace_fraction=float(grace), reduction_factor=reduction)


def _parse_resources(check: _Checker, raw: Any) -> Resources:
    if not isinstance(raw, Mapping):
        raise check.error("resources", "must be a mapping", raw)
    check.known_keys("resources", raw, {"workers", "cpus_per_worker", "gpus_per_worker", "use_gpu",
                                        "executor", "pack_size"})
    workers = check.positive_int("resources.workers", raw.get("workers", 1))
    cpus = raw.get("cpus_per_worker", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not math.isfinite(cpus) or cpus <= 0:
        raise check.error("resources.cpus_per_worker", "must be a positive number", cpus)
    gpus = raw.get("gpus_per_worker", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not math.isfinite(gpus) or gpus < 0 or (
            gpus > 1 and gpus != int(gpus)):
        raise check.error("resources.gpus_per_worker",
                          "must be a fraction in [0, 1] or a whole number of GPUs", gpus)
    use_gpu = raw.get("use_gpu", "auto")
    if use_gpu not in USE_GPU:
        raise check.error("resources.use_gpu", f"must be one of {', '.join(USE_GPU)}", use_gpu)
    if use_gpu == "always" and gpus == 0:
        raise check.error("resources.gpus_per_worker", "must be > 0 when use_gpu is always", gpus)
    executor = raw.get("executor", "train")
    if executor not in EXECUTORS:
        raise check.error("resources.executor", f"must be one of {', '.join(EXECUTORS)}", executor)
    if executor in ("function", "packed") and workers != 1:
        raise check.error("resources.workers", f"must be 1 with executor: {executor} (several workers "
                          "per trial is data-parallel training: use executor: train)", workers)
    if "pack_size" in raw and executor != "packed":
        raise check.error("resources.pack_size", "only applies to executor: packed", raw["pack_size"])
    pack_size = check.positive_int("resources.pack_size", raw.get("pack_size", Resources.pack_size))
    return Resources(workers=workers, cpus_per_worker=float(cpus), gpus_per_worker=float(gpus),
                     use_gpu=use_gpu, executor=executor, pack_size=pack_size)


def _parse_budgets(check: _Checker, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        raise check.error("budgets", "must be a mapping of budget name -> overrides", raw)
    parsed: dict[str, dict[str, Any]] = {}
    for budget_name, overrides in raw.items():
        where = f"budgets.{budget_name}"
        if budget_name not in BUDGET_NAMES:
            raise check.error(where, f"is not a budget; budgets: {', '.join(BUDGET_NAMES)}", None)
        if not isinstance(overrides, Mapping):
            raise check.error(where, "must be a mapping", overrides)
        check.known_keys(where, overrides, set(BUDGET_FIELDS))
        for key, value in overrides.items():
            if key == "recipe":
                if value not in ("fast", "paper"):
                    raise check.error(f"{where}.recipe", "must be fast or paper", value)
            elif value is not None:
                check.positive_int(f"{where}.{key}", value)
        parsed[str(budget_name)] = dict(overrides)
    return parsed
