"""The MLflow Model Registry side: register the Pareto models, and pull them out for simulators.

One registered model per problem (named after the problem). An MLflow alias points at one version,
and a front has several models, so the front is the alias family ``pareto`` (the most accurate
model), ``pareto-2``, ``pareto-3``, ... in order of increasing error (= decreasing cost). A new
post-stage run moves the aliases to the new front and removes the ones it no longer needs; old
versions stay in the registry for history. Every version carries tags with its validation error,
its latency, the backend and the device the latency was measured on.

``pull_models`` writes, per model, what a simulator needs without fhn_automl installed: the
self-contained TorchScript file (``torch.jit.load(path)(x)``), the spec JSON, the raw TensorRT
engine where one was built, and a model card (inputs, ranges, units, error, latency, device).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhn_automl.post.errors import NoRegisteredModelsError
from fhn_automl.post.staging import staged_folder

DEFAULT_ALIAS = "pareto"
TAG_PREFIX = "fhn_automl."
ENGINE_FILE = "model.engine"
#: Units of the FHN variables: the thesis' model is dimensionless (it writes time in 'ms' loosely).
UNITS = {"t": "FHN time units (dimensionless; the thesis writes ms)", "u0": "dimensionless",
         "w0": "dimensionless", "u": "dimensionless", "w": "dimensionless", "k": "dimensionless (I = 0.08 + 0.04 k)",
         "u_next": "dimensionless", "w_next": "dimensionless"}


def registered_model_name(problem: str) -> str:
    """One registered model per problem, named after it (what ``pull PROBLEM`` takes)."""
    return problem


def alias_for(position: int, base: str = DEFAULT_ALIAS) -> str:
    """``pareto`` for the first (most accurate) front model, ``pareto-2``, ... after it."""
    return base if position == 0 else f"{base}-{position + 1}"


@dataclass(frozen=True)
class RegistrationRequest:
    """One front model to register: its trial run and the figures to tag it with."""

    run_id: str
    model_source: str            # artifact URI of the trial's model/ folder
    tags: dict[str, str]
    engine_source: str | None = None  # artifact URI of a serialised TensorRT engine, if built


def register_front(tracking_uri: str, problem: str, requests: Sequence[RegistrationRequest], *,
                   alias: str = DEFAULT_ALIAS) -> list[dict[str, Any]]:
    """Register (or re-tag) each front model and point the alias family at them, in the given order.

    A trial registered before keeps its version (no duplicate versions for the same run). On any
    failure the versions created by this call are deleted again, so the registry is never left with
    half a front.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name = registered_model_name(problem)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, tags={f"{TAG_PREFIX}problem": problem},
                                       description=f"Pareto-front surrogates of {problem} (fhn_automl post-stage)")
    created: list[str] = []
    registered: list[dict[str, Any]] = []
    try:
        for position, request in enumerate(requests):
            tags = {**request.tags, f"{TAG_PREFIX}pareto_rank": str(position + 1)}
            if request.engine_source:
                tags[f"{TAG_PREFIX}engine_uri"] = request.engine_source
            existing = client.search_model_versions(f"name='{name}' and run_id='{request.run_id}'")
            if existing:
                version = max(existing, key=lambda v: int(v.version)).version
                for key, value in tags.items():
                    client.set_model_version_tag(name, version, key, value)
            else:
                version = client.create_model_version(name, source=request.model_source, run_id=request.run_id,
                                                       tags=tags).version
                created.append(version)
            this_alias = alias_for(position, alias)
            client.set_registered_model_alias(name, this_alias, version)
            registered.append({"name": name, "version": version, "alias": this_alias, "run_id": request.run_id})
        stale = [a for a in client.get_registered_model(name).aliases
                 if _in_family(a, alias) and a not in {r["alias"] for r in registered}]
        for old in stale:
            client.delete_registered_model_alias(name, old)
    except Exception:
        for version in created:
            try:
                client.delete_model_version(name, version)
            except MlflowException:
                pass  # best effort: the original error is the one to report
        raise
    return registered


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


def model_card(spec: dict[str, Any], tags: dict[str, str], *, alias: str, version: str, problem: str) -> dict[str, Any]:
    """The facts a simulator author needs before trusting the file."""
    def tag(key: str) -> str | None:
        return tags.get(TAG_PREFIX + key)

    inputs = [{"name": n, "range": spec["ranges"].get(n), "units": UNITS.get(n, "dimensionless")}
              for n in spec["inputs"]]
    outputs = [{"name": n, "units": UNITS.get(n, "dimensionless")} for n in spec["outputs"]]
    iterator = spec.get("kind") == "iter"
    usage = ("x = torch.tensor(rows, dtype=torch.float32)  # shape (N, %d), columns %s\n"
             "y = torch.jit.load('model.ts')(x)            # shape (N, %d), columns %s"
             % (len(inputs), ", ".join(spec["inputs"]), len(outputs), ", ".join(spec["outputs"])))
    if iterator:
        usage += (f"\nstates = torch.jit.load('model.ts').rollout(x0, n_steps)  # every dt_net = {spec.get('dt_net')}"
                  " time units, shape (N, n_steps + 1, 2)")
    return {
        "problem": problem, "registered_model": registered_model_name(problem), "version": version, "alias": alias,
        "kind": spec.get("kind"), "layers": spec.get("layers"), "inputs": inputs, "outputs": outputs,
        "input_scaling": "done inside the model: pass raw values within the ranges above",
        "dt_net": spec.get("dt_net"), "window_mode": spec.get("window_mode"),
        "validation": {"mean_err": _float(tag("val_mean_err")), "max_err": _float(tag("val_max_err")),
                       "error_definition": "|u_pred - u_true| + |w_pred - w_true| per point, over the "
                                           "problem's whole validation set (iterators: every rollout to "
                                           "t = 50), of this model: the weights at the end of training",
                       "error_metric": "final_full_val_mean_err / final_full_val_max_err (the thesis' "
                                       "figure; fhn_automl.learning.validation.REPORTED_ERROR_METRIC)"},
        "latency": {"seconds_per_point": _float(tag("latency_s_per_point")), "batch_size": _int(tag("batch_size")),
                    "backend": tag("backend"), "device": tag("device"), "cost_basis": tag("cost_basis")},
        "size": {"neurons": _int(tag("neurons")), "macs_per_point": _int(tag("macs"))},
        "provenance": {"experiment": tag("experiment"), "run_id": tag("run_id"), "post_run_id": tag("post_run_id")},
        "usage": usage,
    }


def _float(value: str | None) -> float | None:
    return None if value in (None, "", "None") else float(value)


def _int(value: str | None) -> int | None:
    return None if value in (None, "", "None") else int(float(value))


def card_markdown(card: dict[str, Any]) -> str:
    val, lat = card["validation"], card["latency"]
    lines = [f"# {card['registered_model']} v{card['version']} (alias `{card['alias']}`)", "",
             f"- kind: {card['kind']}; layers: `{card['layers']}`; neurons: {card['size']['neurons']}; "
             f"multiply-adds per point: {card['size']['macs_per_point']}",
             f"- validation error (mean / max of |du| + |dw|): {val['mean_err']} / {val['max_err']}",
             f"- latency: {lat['seconds_per_point']} s per point at batch {lat['batch_size']}, backend "
             f"`{lat['backend']}`, measured on {lat['device']}",
             f"- {card['input_scaling']}", "", "## Inputs", ""]
    lines += [f"- `{i['name']}` in {i['range']} ({i['units']})" for i in card["inputs"]]
    lines += ["", "## Outputs", ""] + [f"- `{o['name']}` ({o['units']})" for o in card["outputs"]]
    lines += ["", "## Use (plain torch, no fhn_automl needed)", "", "```python", "import torch", card["usage"], "```",
              "", f"Provenance: experiment `{card['provenance']['experiment']}`, trial run "
              f"`{card['provenance']['run_id']}`, post-stage run `{card['provenance']['post_run_id']}`.", ""]
    return "\n".join(lines)


def pull_models(problem: str, to: str | os.PathLike, *, alias: str = DEFAULT_ALIAS,
                tracking_uri: str | None = None) -> list[Path]:
    """Write each front model of ``problem`` into its own folder under ``to``; returns the folders.

    Everything is written into a temporary sibling folder first and renamed into place at the end,
    so an interrupted pull leaves ``to`` as it was.
    """
    import mlflow.artifacts

    from fhn_automl.post.runs import resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(tracking_uri)
    versions = front_versions(tracking_uri, problem, alias)
    target = Path(to).resolve()
    with staged_folder(target, "pulling") as staging:
        index = []
        for alias_name, version in versions:
            spec_layers = version.tags.get(TAG_PREFIX + "layers", "model").replace(",", "_")
            folder = staging / f"{alias_name}_v{version.version}_{spec_layers}"
            downloads = staging / ".downloads" / folder.name
            source = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(downloads),
                                                              tracking_uri=tracking_uri))
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
            (folder / "model_card.json").write_text(json.dumps(card, indent=2))
            (folder / "model_card.md").write_text(card_markdown(card))
            index.append({"alias": alias_name, "version": version.version, "folder": folder.name,
                          "layers": spec.get("layers"), "val_mean_err": card["validation"]["mean_err"],
                          "latency_s_per_point": card["latency"]["seconds_per_point"]})
        shutil.rmtree(staging / ".downloads", ignore_errors=True)
        (staging / "index.json").write_text(json.dumps({"problem": problem, "alias": alias, "models": index}, indent=2))
    return [target / entry["folder"] for entry in index]
