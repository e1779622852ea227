"""Model-based multi-objective search on the packed executor: Optuna asks for a pack at a time.

``search.algorithm: multi_objective`` with ``search.objectives`` and ``resources.executor: packed``:
a Tune ``Searcher`` (``PackSearcher``) whose every suggestion is a *pack*. It asks the Optuna study
(``objectives.make_sampler``: TPE, NSGA-II, GP or random, seeded) for architectures in the structured
space below; proposals wait in a bucket per depth (a pack has one depth) and a full bucket of
``pack_size`` becomes a pack (what is left in the buckets once ``num_samples`` are proposed becomes
the last, smaller packs). The pack trains them together (``search.packed_trial``); when it ends every
member's objectives are told back, its constraint violations set with ``Trial.set_constraint`` (which
TPE, NSGA-II and GP read). Tune runs packs concurrently as usual, so the packs being trained are the
sampler's pending trials.

The structured space (``suggest_layers``): ``depth`` first, then for each layer ``i < depth`` its
``activation_i`` and ``width_i`` (conditional dimensions, so a model-based sampler learns per-layer
effects). A ``choices`` list that is not every activation x width pair, and ``shape_classes``, are
constraints of the space: a proposal outside them is told ``FAIL`` at once (nothing is trained) and
asked again. An architecture already proposed is not trained twice: a finished one is told its known
values, a pending one ``FAIL``; after ``FALLBACK_AFTER`` such proposals in a row a random architecture
not tried yet is enqueued (``Study.enqueue_trial``), so a converged sampler cannot stall the search.
Every other field of the file must be single-valued, since the members of a pack share everything
but layers and seed (``learning.packed.MEMBER_KEYS``; checked on load); several ``seeds`` are sampled
as the ``seed`` dimension.

Measured latency (``search.latency``) is measured here on the driver per proposed architecture
(``latency.LatencyCache``, cached under the search folder), travels with the pack (each member reports
it, so MLflow has it beside MACs / parameters / neurons) and ranks members in in-pack Pareto halving
(``scheduler: moasha``). A member stopped by halving is told the error it had reached when stopped.

The query phase (``search.query_fraction``, ``search.query_phase``): its proposals wait in buckets of
their own and train in packs *without* halving. They are candidates for the constraint's answer, chosen
because they are cheap and likely to meet it; a rung early in training would judge them by an error they
have not reached yet (replayed on the fast 3,000-step B_S grid, halving + query: 0/5 seeds within 10 % of
the answer with halving on these packs, 3/5 without; benchmarks/RESULTS.md).

Resume: Tune checkpoints the searcher (``save`` / ``restore``: the study's trials, the buckets and the
packs in flight), so ``--resume`` continues the same study (with a freshly seeded sampler); a pack
restarted after a lost node is the same Tune trial and its members the same Optuna trials. (The
searcher's round trip is unit-tested; an end-to-end ``--resume`` of this path is not.)
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from fhn_automl.learning.architecture import parse_layers, shape_class
from fhn_automl.search.latency import LATENCY_METRIC, LatencyCache
from fhn_automl.search.objectives import MultiObjective, make_sampler
from fhn_automl.search.query_phase import MIN_OBSERVED, FeasibilityModel, candidates, known_cost, pick
from fhn_automl.search.space import LayerGrid, SearchSpace, TrialSpec, check_packed_multi_objective
from fhn_automl.search.trial import TrialPlan

logger = logging.getLogger(__name__)

#: After this many proposals in a row outside the space or repeating an architecture (no training spent
#: on them), a random architecture not proposed yet is enqueued: samplers such as TPE, once they have
#: converged, keep proposing the same few points of a small discrete space.
FALLBACK_AFTER = 20


def layer_dimensions(grid: LayerGrid) -> dict[str, list]:
    """The structured space of a layer grid: depths, activations and widths (or whole sequences)."""
    if grid.sequences:
        return {"layers": list(grid.sequences)}
    tokens = [parse_layers(choice)[0] for choice in grid.choices]
    return {"depth": list(grid.depths),
            "activation": list(dict.fromkeys(t.activation for t in tokens)),
            "width": list(dict.fromkeys(t.width for t in tokens))}


def suggest_layers(trial: Any, grid: LayerGrid) -> str | None:
    """Ask ``trial`` for an architecture (see the module docstring); None when it is outside the grid."""
    dims = layer_dimensions(grid)
    if "layers" in dims:
        return trial.suggest_categorical("layers", dims["layers"])
    depth = trial.suggest_categorical("depth", dims["depth"])
    tokens = [f"{trial.suggest_categorical(f'activation_{i}', dims['activation'])}-"
              f"{trial.suggest_categorical(f'width_{i}', dims['width'])}" for i in range(depth)]
    if any(token not in grid.choices for token in tokens):
        return None
    layers = ",".join(tokens)
    if grid.shape_classes is not None and shape_class(layers) not in grid.shape_classes:
        return None
    return layers


def packed_mo_template(space: SearchSpace, trials: list[TrialSpec]) -> tuple[TrialSpec, LayerGrid, list[int]]:
    """The trial every member is made from (layers, seed and index replaced), the layer grid and the
    seeds; ``SearchSpaceError`` names the field that a pack cannot sample."""
    check_packed_multi_objective(space, trials)
    study = next(s for s in space.studies if s.name == trials[0].study)
    return trials[0], study.layers, list(study.axes["seeds"])


class PackSearcher(Searcher):
    """Tune searcher whose suggestions are packs of Optuna trials (module docstring).

    Members of a pack must have one depth (``learning.packed``), so proposals wait in a bucket per
    depth; a pack is the first full bucket (``pack_size``), or, once ``n_models`` proposals are made,
    what is left in each bucket. Proposals waiting in a bucket are running trials to the sampler.
    """

    def __init__(self, *, space: SearchSpace, template: TrialSpec, grid: LayerGrid, seeds: list[int],
                 n_models: int, pack_size: int, halving: dict[str, Any] | None,
                 latency_cache: str | None = None) -> None:
        import optuna

        multi: MultiObjective = space.search.multi
        super().__init__()  # no metric for Tune to check: a pack reports its members' metrics under "members"
        self.multi = multi
        self.template = template.as_dict()
        self._problem = template.resolved_problem  # every member's (not saved: __init__ sets it before restore)
        self.grid = grid
        self.seeds = seeds
        self.n_models = n_models
        self.pack_size = pack_size
        self.halving = halving
        self.latency_cache = latency_cache
        self.study = optuna.create_study(directions=["minimize"] * len(multi.keys),
                                         sampler=make_sampler(multi.sampler, space.search.seed))
        self.seed = space.search.seed
        self.asked = 0  # members proposed so far (also the next member's index)
        # (depth, proposed by the query phase) -> [(spec, trial number)]
        self.buckets: dict[tuple[int, bool], list[tuple[dict[str, Any], int]]] = {}
        self.packs: dict[str, dict[str, int]] = {}  # Tune trial id -> {member name: Optuna trial number}
        self.n_packs = 0
        self.by_layers: dict[str, str] = {}  # architecture|seed -> the member name that trains it
        self.told: dict[str, list[float]] = {}  # member name -> values told
        self.exhausted = False
        self._latency: LatencyCache | None = None
        # the query phase (search.query_phase): from the query_after-th proposal on, the untried
        # architecture of largest expected improvement of the constraint's answer
        self.query_after = n_models - round(multi.query_fraction * n_models) if multi.query else n_models
        self.member_layers: dict[str, str] = {}  # member name -> layers
        self.query_observed: dict[str, float] = {}  # layers -> the constraint's metric, finished members
        self.query_proposals = 0  # proposals the query phase made

    # ------------------------------------------------------------------ Tune's Searcher interface

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        while not self.exhausted and self.asked < self.n_models and not any(
                len(bucket) >= self.pack_size for bucket in self.buckets.values()):
            picked = self._ask_one()
            if picked is None:
                self.exhausted = True
                break
            spec, number, from_query = picked
            self.buckets.setdefault((len(spec["layers"].split(",")), from_query), []).append((spec, number))
        if not any(self.buckets.values()):
            return Searcher.FINISHED
        key = max(self.buckets, key=lambda k: len(self.buckets[k]))  # full if any is, else the largest
        chosen, self.buckets[key] = self.buckets[key][:self.pack_size], self.buckets[key][self.pack_size:]
        members = [spec for spec, _ in chosen]
        self.packs[trial_id] = {spec["name"]: number for spec, number in chosen}
        cache = self._cache()
        latency = {spec["name"]: cache.get(self._problem, spec["layers"]) for spec in members} \
            if self.multi.needs_latency else {}
        pack = {"name": f"pack{self.n_packs:03d}_{members[0]['name']}"[:120], "trials": members,
                "halving": None if key[1] else self.halving, "latency": latency}
        self.n_packs += 1
        return {"pack": pack}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna

        numbers = self.packs.pop(trial_id, {})
        members = pack_members(result)
        for name, number in numbers.items():
            record = members.get(name)
            if record is not None and not error and self.multi.query and record.get("status") != "stopped_early":
                self.query_observed[self.member_layers.get(name, "")] = _value(record, self.multi.query[0].key)
            values = None if record is None or error else [_value(record, key) for key in self.multi.keys]
            if values is None or not all(math.isfinite(v) for v in values):
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
                continue
            self._constrain(number, self.multi.constraint_values(record))
            self.study.tell(number, values)
            self.told[name] = values

    def save(self, checkpoint_path: str) -> None:
        """The searcher's state with the study as its trials (some samplers, NSGA-II, hold locks that do
        not pickle); ``restore`` rebuilds the study from them with a fresh sampler of the same kind."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_latency", "study", "_problem")}
        state["study_trials"] = self.study.get_trials(deepcopy=False)
        Path(checkpoint_path).write_bytes(pickle.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        import optuna

        state = pickle.loads(Path(checkpoint_path).read_bytes())  # noqa: S301 (the searcher's own file)
        trials = state.pop("study_trials")
        self.__dict__.update(state)
        # a checkpoint written before the query phase had buckets of its own keyed them by depth alone
        self.buckets = {(k if isinstance(k, tuple) else (k, False)): v for k, v in self.buckets.items()}
        # seeded by the search seed and the history's length: a restored search samples reproducibly
        # (not the numbers an uninterrupted one would have drawn)
        self.study = optuna.create_study(directions=["minimize"] * len(self.multi.keys),
                                         sampler=make_sampler(self.multi.sampler, self.seed + len(trials)))
        self.study.add_trials(trials)  # in order, so trial numbers stay those the packs refer to
        self._latency = None

    # ------------------------------------------------------------------ internals

    def _cache(self) -> LatencyCache:
        if self._latency is None:
            self._latency = LatencyCache(self.latency_cache, self.multi.latency)
        return self._latency

    def _constrain(self, number: int, violations: list[float]) -> None:
        """``Trial.set_constraint`` on trial ``number`` (what TPE / NSGA-II / GP read as feasibility)."""
        import optuna

        if not self.multi.constraints:
            return
        storage = self.study._storage  # the Trial of ask() is not kept: it would travel in every checkpoint
        trial = optuna.trial.Trial(self.study, storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number))
        for constraint, value in zip(self.multi.constraints, violations):
            trial.set_constraint(str(constraint), value if not math.isnan(value) else math.inf)

    def _ask_one(self) -> tuple[dict[str, Any], int, bool] | None:
        """(member spec, Optuna trial number, proposed by the query phase) of the next proposal; None when
        every architecture of the space is proposed."""
        import optuna

        rejected = 0
        while True:
            from_query = False  # only the first ask may be the query phase's; a rejected one is not retried as it
            if rejected == 0 and self.asked >= self.query_after:
                params = self._query_params()
                if params is not None:
                    self.study.enqueue_trial(params)
                    self.query_proposals += 1
                    from_query = True
            if rejected == FALLBACK_AFTER:  # the sampler keeps proposing what it cannot have: enqueue a
                params = self._unseen_params()  # random architecture not tried yet (as a proposal of its own)
                if params is None:
                    logger.info("multi-objective search: every architecture of the space is proposed (%d)",
                                self.asked)
                    return None
                self.study.enqueue_trial(params)
            trial = self.study.ask()
            layers = suggest_layers(trial, self.grid)
            seed = trial.suggest_categorical("seed", self.seeds) if len(self.seeds) > 1 else self.seeds[0]
            if layers is None:  # outside the grid's choices or shape classes: costs no training
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                rejected += 1
                continue
            key = f"{layers}|{seed}"
            known = self.by_layers.get(key)
            if known is not None:  # never train an architecture twice
                if known in self.told:
                    values = dict(zip(self.multi.keys, self.told[known]))
                    self._constrain(trial.number, self.multi.constraint_values(values))
                    self.study.tell(trial, self.told[known])
                else:
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                rejected += 1
                continue
            spec = TrialSpec.from_dict({**self.template, "layers": layers, "seed": seed, "index": self.asked})
            self.asked += 1
            self.by_layers[key] = spec.name
            self.member_layers[spec.name] = layers
            return spec.as_dict(), trial.number, from_query

    def _query_params(self) -> dict[str, Any] | None:
        """Optuna parameters of the query phase's next architecture (``search.query_phase``), or None
        (too few finished members, or no untried architecture cheaper than the incumbent)."""
        constraint, target = self.multi.query
        observed = {k: v for k, v in self.query_observed.items() if k and math.isfinite(v)}
        if len(observed) < MIN_OBSERVED:
            return None
        proposed = {key.rpartition("|")[0] for key in self.by_layers}
        architectures = self.grid.expand()
        untried = candidates([a for a in architectures if a not in proposed], self.seed + self.asked)
        problem = self._problem
        n_in, n_out = len(problem.inputs), len(problem.outputs)

        def cost(layers: str) -> float:
            return known_cost(target, layers, n_in, n_out, lambda a: self._cache().get(problem, a))

        model = FeasibilityModel(architectures, constraint).fit(observed)
        meeting = [cost(k) for k, v in observed.items() if constraint.holds(v)]
        choice = pick({a: cost(a) for a in untried}, model.probability, min(meeting, default=None))
        if choice is None:
            return None
        if self.query_proposals == 0:  # on the console: a user sees where the search turns to the query
            print(f"[search] query phase from proposal {self.asked + 1} of {self.n_models}: the untried "
                  f"architectures most likely to answer '{constraint}' with a lower {target} (packs without "
                  "halving)", flush=True)
        return self._params_of(choice, self.seeds[0])

    def _unseen_params(self) -> dict[str, Any] | None:
        """Optuna parameters of a random architecture (and seed) not proposed yet; None when none is left."""
        import random

        unseen = [(layers, seed) for layers in self.grid.expand() for seed in self.seeds
                  if f"{layers}|{seed}" not in self.by_layers]
        if not unseen:
            return None
        layers, seed = random.Random(self.asked).choice(unseen)
        return self._params_of(layers, seed)

    def _params_of(self, layers: str, seed: int) -> dict[str, Any]:
        """The Optuna parameters that make ``suggest_layers`` (and the seed dimension) give these."""
        params: dict[str, Any] = {}
        if self.grid.sequences:
            params["layers"] = layers
        else:
            tokens = parse_layers(layers)
            params["depth"] = len(tokens)
            for i, token in enumerate(tokens):
                params[f"activation_{i}"] = token.activation
                params[f"width_{i}"] = token.width
        if len(self.seeds) > 1:
            params["seed"] = seed
        return params


def pack_members(result: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """{member name: its record} of a pack's result. Tune hands a searcher's ``on_trial_complete`` the
    result *flattened* (``members/<name>/<metric>``); the replay benchmark and the tests pass it nested."""
    if not result:
        return {}
    if isinstance(result.get("members"), Mapping):
        return dict(result["members"])
    members: dict[str, dict[str, Any]] = {}
    for key, value in result.items():
        head, _, rest = key.partition("/")
        name, _, metric = rest.partition("/")
        if head == "members" and name and metric:
            members.setdefault(name, {})[metric] = value
    return members


def _value(record: Mapping[str, Any], key: str) -> float:
    try:
        return float(record[key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def packed_mo_tune_setup(space: SearchSpace, trials: list[TrialSpec], plan: TrialPlan, concurrent: int,
                         num_samples: int, latency_cache: str | None) -> tuple[dict[str, Any], Any, int]:
    """Param space, ``TuneConfig`` (the ``PackSearcher``) and member count of a packed MO search."""
    from ray import tune

    template, grid, seeds = packed_mo_template(space, trials)
    halving = pack_halving(space, template)
    pack_size = space.resources.pack_size
    searcher = PackSearcher(space=space, template=template, grid=grid, seeds=seeds, n_models=num_samples,
                            pack_size=pack_size, halving=halving, latency_cache=latency_cache)

    def name_pack(trial: Any) -> str:
        return trial.config["pack"]["name"]

    # at most one pack per model (depth buckets may leave part-full packs); the searcher says FINISHED
    tune_config = tune.TuneConfig(search_alg=searcher, num_samples=num_samples, max_concurrent_trials=concurrent,
                                  trial_name_creator=name_pack, trial_dirname_creator=name_pack)
    return {"plan": plan.as_config()}, tune_config, num_samples


def pack_halving(space: SearchSpace, trial: TrialSpec) -> dict[str, Any] | None:
    """The in-pack halving of a pack of ``trial``-like members: None (``fifo``), by the metric
    (``asha``) or by MOASHA's Pareto rule (``moasha``; costs: the pack's measured latencies, else MACs)."""
    if space.scheduler.kind == "fifo":
        return None
    halving = {"grace_steps": space.scheduler.grace_steps(trial.steps, trial.val_every),
               "reduction_factor": space.scheduler.reduction_factor}
    if space.scheduler.kind == "moasha":
        multi = space.search.multi
        cost = next((k for k in multi.keys if k != space.search.metric), LATENCY_METRIC)
        halving["pareto"] = {"cost_metric": cost}
    return halving


def halving_from_pack(pack: Mapping[str, Any]) -> Any:
    """The ``learning.packed`` halving rule a pack asks for (``pack_halving``'s dict), or None."""
    from fhn_automl.learning.packed import Halving, ParetoHalving  # torch: only the pack's own process

    if not pack.get("halving"):
        return None
    rule = dict(pack["halving"])
    pareto = rule.pop("pareto", None)
    if pareto is None:
        return Halving(**rule)
    return ParetoHalving(**rule, costs=pack.get("latency") or None, cost_metric=pareto["cost_metric"])


def member_values(record: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    return {key: _value(record, key) for key in keys}


