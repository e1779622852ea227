"""The MLflow Model Registry side: register the Pareto models, and pull them out for simulators.

One registered model per problem, ``fhn_automl.<problem>`` (e.g. ``fhn_automl.problem_b_s``). An
MLflow alias points at one version, and a front has several models, so the front is the alias family
``pareto`` (the most accurate model), ``pareto-2``, ``pareto-3``, ... in order of increasing error
(= decreasing cost). Each version is the trial's MLflow (pyfunc) model where the search logged one
(``mlflow.pyfunc.load_model("models:/fhn_automl.problem_b_s@pareto")`` works), else its ``model/``
artifact folder (runs logged before MLflow models were). Every version carries tags with its
validation error, its latency, the backend and the device the latency was measured on.

Registering never makes the deployed front worse: a post-stage merges its front with the one the
aliases point at now, keeps the Pareto front of the union (``fhn_automl.post.pareto``) and moves the
aliases to it. A worse later search (fewer steps, a smoke test) therefore adds nothing, a better one
displaces exactly the models it dominates, and a model that leaves the front keeps its version for
history. Latencies are compared only between models timed on the same device and backend; when the
old front was timed elsewhere, the merge compares multiply-adds instead (the tag
``fhn_automl.merge_cost_basis`` of each version says which). Errors are each model's validation error on
its own search's validation set (same problem and distribution; the size may differ).

``pull_models`` writes, per model, what a simulator needs without fhn_automl installed: the
self-contained TorchScript file (``torch.jit.load(path)(x)``), the spec JSON, the raw TensorRT
engine where one was built, and a model card (inputs, ranges, units, error, latency, device). For a
``beat`` problem of an N-state cell model (``tp06_beat``, ``ms_beat``) the version's tags and the card
also carry the physiology metrics on the validation cells (``physiology_tags``: V RMSE, APD90 / APD50 /
max dV/dt / resting-potential errors), the outputs' units (``BeatSetup.units``) and what the inputs are:
``t`` in ms since the cycle start, and scale factors of the named model parameters.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhn_automl.learning.digests import file_digests
from fhn_automl.learning.physiology import PHYSIOLOGY_METRICS, VOLTAGE_METRICS
from fhn_automl.physics.problems import BeatSetup, StateSetup, UnknownProblemError, get_problem, problem_name
from fhn_automl.post.errors import NoRegisteredModelsError
from fhn_automl.post.integrity import recorded_digests, verify_model_files
from fhn_automl.post.pareto import Candidate, pareto_front
from fhn_automl.post.runs import resolve_tracking_uri
from fhn_automl.search.tracking_tags import MLFLOW_MODEL_FILES, TAG_PREFIX
from fhn_automl.post.staging import staged_folder
from fhn_automl.search.tracking import trial_model_id

DEFAULT_ALIAS = "pareto"
#: The alias family of smoke-budget searches (CI-sized models, errors ~1e-2 to 0.7): the same registered
#: model, but never ``@pareto``, the deployment name that ``serve`` and ``pull`` default to.
SMOKE_ALIAS = "smoke"
ENGINE_FILE = "model.engine"
#: Units of the FHN variables: the thesis' model is dimensionless (it writes time in 'ms' loosely).
UNITS = {"t": "FHN time units (dimensionless; the thesis writes ms)", "u0": "dimensionless",
         "w0": "dimensionless", "u": "dimensionless", "w": "dimensionless", "k": "dimensionless (I = 0.08 + 0.04 k)",
         "u_next": "dimensionless", "w_next": "dimensionless"}


REGISTERED_PREFIX = "fhn_automl."
#: A beat problem's physiology figures as version tags: ``fhn_automl.val_<name>`` of the trial's
#: ``final_full_val_<name>`` metric (``learning.physiology``).
PHYSIOLOGY_TAG_PREFIX = "val_"
#: Units of the physiology figures (``V`` stands for the voltage output's unit)
_PHYSIOLOGY_UNITS = {"v_rmse": "V", "v_rmse_max_cell": "V", "apd90_err_pct": "%", "apd90_max_err_pct": "%",
                     "apd50_err_pct": "%", "max_dvdt_err_pct": "%", "rest_err": "V", "ap_mismatch_cells": "cells",
                     "other_rmse_pct": "% of the output's range"}


def registered_model_name(problem: str) -> str:
    """``fhn_automl.<problem>``: one registered model per problem (``pull PROBLEM`` takes either); a ``beat:``
    spec registers under its safe name (``physics.problems.problem_name``)."""
    problem = problem_name(problem)
    return problem if problem.startswith(REGISTERED_PREFIX) else REGISTERED_PREFIX + problem


def alias_for(position: int, base: str = DEFAULT_ALIAS) -> str:
    """``pareto`` for the first (most accurate) front model, ``pareto-2``, ... after it."""
    return base if position == 0 else f"{base}-{position + 1}"


@dataclass(frozen=True)
class RegistrationRequest:
    """One front model to register: its trial run and the figures to tag it with."""

    run_id: str
    model_source: str            # artifact URI of the trial's model/ folder (used without an MLflow model)
    tags: dict[str, str]
    engine_source: str | None = None  # artifact URI of a serialised TensorRT engine, if built


@dataclass(frozen=True)
class _Entry:
    """A model competing for the front: a version registered before, or a new request."""

    run_id: str
    mean_err: float
    macs: int
    time_per_point_s: float | None
    time_range: tuple[float, float] | None     # (min, max) of the interleaved timings, where recorded
    timed_on: tuple[str | None, str | None]    # (device, backend) the latency was measured on
    version: str | None = None                 # set for versions registered before
    request: RegistrationRequest | None = None


def _tag(tags: dict[str, str], key: str) -> str | None:
    return tags.get(TAG_PREFIX + key)


def _entry(tags: dict[str, str], run_id: str, **extra: Any) -> _Entry:
    """A model's figures from its tags; without an error it cannot compete (infinite error)."""
    mean_err, macs = _float(_tag(tags, "val_mean_err")), _int(_tag(tags, "macs"))
    return _Entry(run_id=run_id, mean_err=math.inf if mean_err is None else mean_err,
                  macs=0 if macs is None else macs, time_per_point_s=_float(_tag(tags, "latency_s_per_point")),
                  time_range=_range(_float(_tag(tags, "latency_s_per_point_min")),
                                    _float(_tag(tags, "latency_s_per_point_max"))),
                  timed_on=(_tag(tags, "device"), _tag(tags, "backend")), **extra)


def merged_front(current: Sequence[_Entry], new: Sequence[_Entry], *, time_rtol: float) -> tuple[list[_Entry], str]:
    """The Pareto front of the registered front and the new models, in front order, and its cost basis.

    A model in both (a post-stage run again on the same search) counts once, with the new figures.
    Latencies of models timed on another device or backend than the new ones are dropped, so the
    comparison falls back to multiply-adds rather than mixing machines. Of identical points the one
    registered before stays (no new version for a tie).
    """
    new_runs = {entry.run_id for entry in new}
    entries = [e for e in current if e.run_id not in new_runs] + list(new)
    reference = {e.timed_on for e in new}
    comparable = len(reference) == 1 and all(e.timed_on in reference for e in entries)
    candidates = [Candidate(key=e.run_id, mean_err=e.mean_err, macs=e.macs,
                            time_per_point_s=e.time_per_point_s if comparable else None,
                            time_range=e.time_range if comparable else None) for e in entries]
    front = pareto_front(candidates, time_rtol=time_rtol)
    return [entries[i] for i in front.unique_front()], front.cost_basis


def _ensure_registered_model(client: Any, name: str, problem: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={f"{TAG_PREFIX}problem": problem},
                                       description=f"Pareto-front surrogates of {problem} (fhn_automl post-stage)")


def _current_front(client: Any, name: str, alias: str) -> tuple[dict[str, str], list[_Entry]]:
    """(alias -> version of the whole alias family, the versions the family points at, in order)."""
    model = client.get_registered_model(name)
    aliases = dict(model.aliases) if isinstance(model.aliases, dict) else {}
    family = sorted((a for a in aliases if _in_family(a, alias)), key=lambda a: _family_order(a, alias))
    entries = []
    for name_alias in family:
        version = client.get_model_version(name, aliases[name_alias])
        entries.append(_entry(dict(version.tags), version.run_id or "", version=str(version.version)))
    return {a: str(aliases[a]) for a in family}, entries


def _model_source(client: Any, request: RegistrationRequest) -> tuple[str, str | None]:
    """(source URI, logged-model id): the trial's MLflow model where it has one.

    The source is the logged model's artifact location rather than ``models:/<id>``: given the
    latter, MLflow 3.17's SQL registry looks the model up through the process-wide tracking URI
    instead of this client's (a TODO in its code), and fails for any other store.
    """
    model_id = trial_model_id(client, request.run_id)
    if model_id is None:
        return request.model_source, None
    return client.get_logged_model(model_id).artifact_location, model_id


def register_front(tracking_uri: str, problem: str, requests: Sequence[RegistrationRequest], *,
                   alias: str = DEFAULT_ALIAS, time_rtol: float = 0.05) -> list[dict[str, Any]]:
    """Merge the new front models with the registered front and point the alias family at the result.

    ``requests`` carry the tags ``fhn_automl.val_mean_err``, ``macs``, ``latency_s_per_point``,
    ``device`` and ``backend`` that the merge compares (module docstring). Only new models that
    reach the merged front get a version; a trial registered before keeps its version (no duplicate
    versions for the same run). Returns one dict per model of the merged front, in alias order, with
    ``new`` True for the models of ``requests`` (registered now, or re-tagged when registered before)
    and False for the ones kept from the front registered before. On any failure the versions created by this
    call are deleted and the aliases put back, so the registry never holds half a front.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = registered_model_name(problem)
    _ensure_registered_model(client, name, problem)
    before, current = _current_front(client, name, alias)
    new = [_entry(r.tags, r.run_id, request=r) for r in requests]
    front, cost_basis = merged_front(current, new, time_rtol=time_rtol)
    created: list[str] = []
    registered: list[dict[str, Any]] = []
    try:
        for position, entry in enumerate(front):
            rank_tags = {f"{TAG_PREFIX}pareto_rank": str(position + 1), f"{TAG_PREFIX}merge_cost_basis": cost_basis}
            version = entry.version
            if entry.request is not None:
                tags = {**entry.request.tags, **rank_tags}
                if entry.request.engine_source:
                    tags[f"{TAG_PREFIX}engine_uri"] = entry.request.engine_source
                existing = client.search_model_versions(f"name='{name}' and run_id='{entry.run_id}'")
                if existing:
                    version = str(max(existing, key=lambda v: int(v.version)).version)
                else:
                    source, model_id = _model_source(client, entry.request)
                    version = str(client.create_model_version(name, source=source, run_id=entry.run_id, tags=tags,
                                                              model_id=model_id).version)
                    created.append(version)
            else:
                tags = rank_tags
            for key, value in tags.items():
                client.set_model_version_tag(name, version, key, value)
            this_alias = alias_for(position, alias)
            client.set_registered_model_alias(name, this_alias, version)
            registered.append({"name": name, "version": version, "alias": this_alias, "run_id": entry.run_id,
                               "new": entry.request is not None})
        for old in set(before) - {r["alias"] for r in registered}:
            client.delete_registered_model_alias(name, old)
    except BaseException:  # Ctrl-C too: nothing is left half-registered
        _restore_aliases(client, name, alias, before)
        for version in created:
            try:
                client.delete_model_version(name, version)
            except MlflowException:
                pass  # best effort: the original error is the one to report
        raise
    return registered


def _restore_aliases(client: Any, name: str, alias: str, before: dict[str, str]) -> None:
    """Point the alias family back where it was before a failed registration (best effort)."""
    try:
        now = client.get_registered_model(name).aliases
        for old in [a for a in now if _in_family(a, alias) and a not in before]:
            client.delete_registered_model_alias(name, old)
        for name_alias, version in before.items():
            client.set_registered_model_alias(name, name_alias, version)
    except Exception:  # the registration's own error is the one to report
        pass


def _in_family(candidate: str, base: str) -> bool:
    return candidate == base or re.fullmatch(rf"{re.escape(base)}-\d+", candidate) is not None


def _family_order(alias: str, base: str) -> int:
    return 1 if alias == base else int(alias.rsplit("-", 1)[1])


def front_versions(tracking_uri: str, problem: str, alias: str = DEFAULT_ALIAS) -> list[tuple[str, Any]]:
    """[(alias, ModelVersion)] of the alias family, in front order; raises when there are none."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = registered_model_name(problem)
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        raise NoRegisteredModelsError(
            f"no registered model {name!r} in {tracking_uri} (registered: {', '.join(known) or 'none'}); run "
            f"the post-stage on a finished search first: python -m fhn_automl.post EXPERIMENT") from None
    aliases = model.aliases if isinstance(model.aliases, dict) else {}
    family = sorted((a for a in aliases if _in_family(a, alias)), key=lambda a: _family_order(a, alias))
    if not family:
        raise NoRegisteredModelsError(
            f"registered model {name!r} has no version with alias {alias!r} (aliases: "
            f"{', '.join(sorted(aliases)) or 'none'}); run the post-stage (python -m fhn_automl.post EXPERIMENT)")
    return [(a, client.get_model_version_by_alias(name, a)) for a in family]


def download_version_files(version: Any, dst: str | os.PathLike, tracking_uri: str) -> Path:
    """A registered version's model files (``spec.json``, ``model.ts``, ``weights.pt``) under ``dst``.

    Versions registered from a trial's MLflow model hold them in its ``fhn_automl/`` folder; versions
    registered before MLflow models were logged point at the run's ``model/`` folder itself. The files
    are checked against the digests recorded on the version's run (``ModelDigestError``), so a swapped
    ``model.ts`` is never pulled or benchmarked.
    """
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dst),
                                                     tracking_uri=tracking_uri))
    local = local / MLFLOW_MODEL_FILES if (local / MLFLOW_MODEL_FILES).is_dir() else local
    expected = recorded_digests(MlflowClient(tracking_uri=tracking_uri), version.run_id) if version.run_id else None
    verify_model_files(local, expected, what=f"registered {version.name} v{version.version} (run {version.run_id})")
    return local


def _beat_setup(problem: str) -> Any:
    """The ``BeatSetup`` of ``problem``, or None (not a beat problem, or no longer a known one)."""
    setup = _problem_setup(problem)
    return setup if isinstance(setup, BeatSetup) else None


def physiology_tags(problem: str, metrics: dict[str, float]) -> dict[str, str]:
    """Version tags of a beat problem's physiology metrics (``fhn_automl.val_v_rmse``, ...) from a trial
    run's metrics; empty for other problems, and for a run that lacks them (logged before they existed)."""
    if _beat_setup(problem) is None:
        return {}
    return {f"{TAG_PREFIX}{PHYSIOLOGY_TAG_PREFIX}{name}": str(metrics[f"final_full_val_{name}"])
            for name in PHYSIOLOGY_METRICS if f"final_full_val_{name}" in metrics}


def _beat_card(beat: Any, tags: dict[str, str]) -> dict[str, Any]:
    """The card's ``beat`` section: the cell model, what the inputs are, the physiology figures."""
    voltage_units = beat.units.get(beat.voltage_output, "dimensionless")
    # the voltage's figures always (None where a run lacks one); the other outputs' where the problem has them
    figures = {name: _float(tags.get(f"{TAG_PREFIX}{PHYSIOLOGY_TAG_PREFIX}{name}")) for name in PHYSIOLOGY_METRICS
               if name in VOLTAGE_METRICS or len(beat.outputs) > 1}
    return {
        "cell_model": beat.cell_model, "scaled_parameters": list(beat.scaled),
        "scale_range": list(beat.scale_range), "period_ms": beat.period, "prepacing_beats": beat.n_prepace,
        "inputs": (f"t: ms since the start of the paced beat's cycle (0 to {beat.period:g}); "
                   + ", ".join(f"{n}_scale" for n in beat.scaled)
                   + f": scale factors of the {beat.cell_model} parameters {', '.join(beat.scaled)} "
                   "(each multiplies the parameter's default value; 1 = the default cell), the other parameters "
                   "at their defaults"),
        "beat": (f"one beat at a {beat.period:g} ms cycle length (the model's stimulus protocol), after "
                 f"{beat.n_prepace} pre-pacing beats from its default state ({beat.method}, dt {beat.dt:g} ms)"),
        "voltage_output": beat.voltage_output,
        "physiology": {**figures,
                       "units": {name: voltage_units if unit == "V" else unit
                                 for name, unit in _PHYSIOLOGY_UNITS.items() if name in figures},
                       "definition": "this model's beats against the dataset's (the problem's solver) on the "
                                     "validation cells (parameter sets drawn apart from the training cells), "
                                     "at the stored 1 ms spacing; APD / dV/dt errors: mean (and for APD90 the "
                                     "largest) relative error over the cells in %; rest_err: mean |V_rest "
                                     "error|; ap_mismatch_cells: cells where one trace has an action potential "
                                     "and the other not; other_rmse_pct (problems with outputs besides V, "
                                     "e.g. Ca_i): each such output's RMSE as % of its range over the "
                                     "validation cells, the largest (fhn_automl.learning.physiology)",
                       "metrics": "final_full_val_<name> of the trial's MLflow run"},
    }


def _problem_setup(problem: str) -> Any:
    """The ``BeatSetup`` or ``StateSetup`` of an N-state model's problem, or None (FitzHugh-Nagumo, or unknown)."""
    try:
        found = get_problem(problem)
    except UnknownProblemError:
        return None
    return found.beat or found.state


def _units(name: str, beat: Any) -> str:
    """Units of input or output ``name``; ``beat``: the problem's ``BeatSetup`` / ``StateSetup`` (or None)."""
    if beat is None:
        return UNITS.get(name, "dimensionless")
    if isinstance(beat, StateSetup):  # a cell_state problem: t, then each output's initial value
        if name == "t":
            return "ms since the initial state"
        if name in beat.initial_inputs:
            return f"{beat.units.get(name[:-1], 'dimensionless')} (initial value of {name[:-1]})"
        return beat.units.get(name, "dimensionless")
    if name == "t":
        return "ms since the start of the beat's cycle"
    if name in beat.scale_inputs:
        parameter = name.removesuffix("_scale")
        return f"scale factor of {beat.cell_model}'s {parameter}: 1 = its default value"
    return beat.units.get(name, "dimensionless")


def model_card(spec: dict[str, Any], tags: dict[str, str], *, alias: str, version: str, problem: str) -> dict[str, Any]:
    """The facts a simulator author needs before trusting the file."""
    def tag(key: str) -> str | None:
        return tags.get(TAG_PREFIX + key)

    setup = _problem_setup(problem)  # once: a beat: spec reads its model file
    beat = setup if isinstance(setup, BeatSetup) else None
    inputs = [{"name": n, "range": spec["ranges"].get(n), "units": _units(n, setup)} for n in spec["inputs"]]
    outputs = [{"name": n, "units": _units(n, setup)} for n in spec["outputs"]]
    iterator = spec.get("kind") == "iter"
    usage = ("x = torch.tensor(rows, dtype=torch.float32)  # shape (N, %d), columns %s\n"
             "y = torch.jit.load('model.ts')(x)            # shape (N, %d), columns %s"
             % (len(inputs), ", ".join(spec["inputs"]), len(outputs), ", ".join(spec["outputs"])))
    if iterator:
        usage += (f"\nstates = torch.jit.load('model.ts').rollout(x0, n_steps)  # every dt_net = {spec.get('dt_net')}"
                  " time units, shape (N, n_steps + 1, 2)")
    point_error = None
    if setup is None:
        error_definition = ("|u_pred - u_true| + |w_pred - w_true| per point, over the problem's whole validation "
                            "set (iterators: every rollout to t = 50), of this model: the weights at the end of "
                            "training")
    else:  # an N-state model's beat or initial-state problem: its own outputs and units
        units = ", ".join(_units(n, setup) for n in spec["outputs"])
        point_error = " + ".join(f"|d{n}|" for n in spec["outputs"]) + f", {units}"
        over = ("every validation cell's beat" if beat is not None
                else "every validation trajectory (fresh initial states)")
        error_definition = (" + ".join(f"|{n}_pred - {n}_true|" for n in spec["outputs"])
                            + f" ({units}) per point, over {over}, of this model: the weights at the end of training")
    card = {
        "problem": problem, "registered_model": registered_model_name(problem), "version": version, "alias": alias,
        "kind": spec.get("kind"), "layers": spec.get("layers"), "inputs": inputs, "outputs": outputs,
        "input_scaling": "done inside the model: pass raw values within the ranges above",
        "dt_net": spec.get("dt_net"), "window_mode": spec.get("window_mode"),
        "validation": {"mean_err": _float(tag("val_mean_err")), "max_err": _float(tag("val_max_err")),
                       "error_definition": error_definition,
                       "error_metric": "final_full_val_mean_err / final_full_val_max_err (the thesis' "
                                       "figure; fhn_automl.learning.validation.REPORTED_ERROR_METRIC)",
                       "code_mean_err": _float(tag("val_code_mean_err")),
                       "code_max_err": _float(tag("val_code_max_err")),
                       "code_error_definition": "the thesis' public code's measure of the same model: mean of "
                                                "|out - true| over points and both outputs (half of mean_err), "
                                                "largest single component (fhn_automl.physics.error_measures)"},
        "latency": {"seconds_per_point": _float(tag("latency_s_per_point")), "batch_size": _int(tag("batch_size")),
                    "backend": tag("backend"), "device": tag("device"), "cost_basis": tag("cost_basis")},
        "size": {"neurons": _int(tag("neurons")), "macs_per_point": _int(tag("macs"))},
        "provenance": {"experiment": tag("experiment"), "run_id": tag("run_id"), "post_run_id": tag("post_run_id")},
        "usage": usage,
    }
    if point_error is not None:
        card["validation"]["point_error"] = point_error
    if beat is not None:
        card["beat"] = _beat_card(beat, tags)
    return card


def _range(low: float | None, high: float | None) -> tuple[float, float] | None:
    return None if low is None or high is None else (low, high)


def _float(value: str | None) -> float | None:
    return None if value in (None, "", "None") else float(value)


def _int(value: str | None) -> int | None:
    return None if value in (None, "", "None") else int(float(value))


def card_markdown(card: dict[str, Any]) -> str:
    val, lat = card["validation"], card["latency"]
    lines = [f"# {card['registered_model']} v{card['version']} (alias `{card['alias']}`)", "",
             f"- kind: {card['kind']}; layers: `{card['layers']}`; neurons: {card['size']['neurons']}; "
             f"multiply-adds per point: {card['size']['macs_per_point']}",
             f"- validation error (mean / max of {val.get('point_error', '|du| + |dw|')}): {val['mean_err']} / "
             f"{val['max_err']}",
             f"- the same in the thesis code's measure (mean of |out - true| over points and outputs / largest "
             f"component): {val.get('code_mean_err')} / {val.get('code_max_err')}",
             f"- latency: {lat['seconds_per_point']} s per point at batch {lat['batch_size']}, backend "
             f"`{lat['backend']}`, measured on {lat['device']}",
             f"- {card['input_scaling']}", "", "## Inputs", ""]
    lines += [f"- `{i['name']}` in {i['range']} ({i['units']})" for i in card["inputs"]]
    lines += ["", "## Outputs", ""] + [f"- `{o['name']}` ({o['units']})" for o in card["outputs"]]
    if card.get("beat"):
        lines += _beat_markdown(card["beat"])
    lines += ["", "## Use (plain torch, no fhn_automl needed)", "", "```python", "import torch", card["usage"], "```",
              "", f"Provenance: experiment `{card['provenance']['experiment']}`, trial run "
              f"`{card['provenance']['run_id']}`, post-stage run `{card['provenance']['post_run_id']}`.", ""]
    return "\n".join(lines)


def _beat_markdown(beat: dict[str, Any]) -> list[str]:
    """The card's beat section: the model and inputs, then the physiology figures as a table."""
    physiology = beat["physiology"]
    units = physiology["units"]
    lines = ["", f"## Beat of {beat['cell_model']}", "", f"- inputs: {beat['inputs']}", f"- {beat['beat']}",
             "", "## Physiology on the validation cells", "", "| metric | value | units |", "|---|---|---|"]
    lines += [f"| `{name}` | {physiology.get(name)} | {unit} |" for name, unit in units.items()]
    return lines + ["", physiology["definition"] + "."]


def pull_models(problem: str, to: str | os.PathLike, *, alias: str = DEFAULT_ALIAS,
                tracking_uri: str | None = None) -> list[Path]:
    """Write each front model of ``problem`` into its own folder under ``to``; returns the folders.

    Everything is written into a temporary sibling folder first and renamed into place at the end,
    so an interrupted pull leaves ``to`` as it was.
    """
    import mlflow.artifacts

    tracking_uri = resolve_tracking_uri(tracking_uri)
    problem = problem.removeprefix(REGISTERED_PREFIX)  # either spelling names the same registered model
    versions = front_versions(tracking_uri, problem, alias)
    target = Path(to).resolve()
    with staged_folder(target, "pulling") as staging:
        index = []
        for alias_name, version in versions:
            spec_layers = version.tags.get(TAG_PREFIX + "layers", "model").replace(",", "_")
            folder = staging / f"{alias_name}_v{version.version}_{spec_layers}"
            downloads = staging / ".downloads" / folder.name
            source = download_version_files(version, downloads, tracking_uri)
            folder.mkdir()
            for name in ("model.ts", "spec.json"):
                if not (source / name).exists():
                    raise NoRegisteredModelsError(f"{problem} v{version.version} has no {name} at {version.source}")
                shutil.copy2(source / name, folder / name)
            if (source / "weights.pt").exists():  # lets fhn_automl users rebuild it with load_model
                shutil.copy2(source / "weights.pt", folder / "weights.pt")
            engine_uri = version.tags.get(TAG_PREFIX + "engine_uri")
            if engine_uri:
                engine = Path(mlflow.artifacts.download_artifacts(artifact_uri=engine_uri, dst_path=str(downloads / "e"),
                                                                  tracking_uri=tracking_uri))
                shutil.copy2(engine, folder / ENGINE_FILE)
            spec = json.loads((folder / "spec.json").read_text())
            card = model_card(spec, dict(version.tags), alias=alias_name, version=version.version, problem=problem)
            card["files"] = sorted(p.name for p in folder.iterdir()) + ["model_card.json", "model_card.md"]
            card["sha256"] = file_digests(folder)  # bench --model-dir checks a pulled folder against these
            (folder / "model_card.json").write_text(json.dumps(card, indent=2))
            (folder / "model_card.md").write_text(card_markdown(card))
            index.append({"alias": alias_name, "version": version.version, "folder": folder.name,
                          "layers": spec.get("layers"), "val_mean_err": card["validation"]["mean_err"],
                          "latency_s_per_point": card["latency"]["seconds_per_point"]})
        shutil.rmtree(staging / ".downloads", ignore_errors=True)
        (staging / "index.json").write_text(json.dumps({"problem": problem, "alias": alias, "models": index}, indent=2))
    return [target / entry["folder"] for entry in index]
