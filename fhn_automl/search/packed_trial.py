"""``resources.executor: packed``: one Tune trial trains a *pack* of compatible trials together.

The search's grid is cut into packs by ``learning.packed.plan_packs`` (same problem, kind, batch size,
window, steps and every other training option; only the layers and seed differ; at most
``resources.pack_size`` each, similar widths together). A Tune trial runs ``learning.packed.train_pack``
on its pack in its own process, as the ``function`` executor runs ``train``; its reports carry every
member's metrics under ``members`` and the pack checkpoint (``pack_state.pt`` + each member's best and
final model), so ``--resume`` and a lost node restart the pack from its last validation.

On the driver ``PackMonitor`` turns each pack event into the events of its members and hands them to
the search's ``SearchMonitor``: every member still gets its own MLflow child run with its params,
curves, final metrics and model, exactly as a trial of the other executors. ``scheduler: asha``
becomes successive halving inside each pack (the same grace and reduction factor), since the members
of a pack run in lock-step, and ``scheduler: moasha`` the same by MOASHA's Pareto rule
(``learning.packed.ParetoHalving``, costed by the members' measured latency); Tune itself schedules
the packs FIFO (grids) or asks ``search.mo_packed.PackSearcher`` for them (multi-objective).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from fhn_automl.search.mo_packed import halving_from_pack, pack_halving
from fhn_automl.search.monitor import SearchMonitor
from fhn_automl.search.space import SearchSpace, TrialSpec
from fhn_automl.search.trial import TrialPlan, loop_config
from fhn_automl.search.worker import FINAL_FILE, ensure_data_on_this_node, restore_checkpoint, scalar_metrics

#: Folder of a member's files inside a pack's final checkpoint: ``members/<trial name>/model``.
MEMBERS_FOLDER = "members"

_LIVE_PACK_MONITORS: weakref.WeakValueDictionary[str, PackMonitor] = weakref.WeakValueDictionary()


def packed_tune_setup(space: SearchSpace, trials: list[TrialSpec], plan: TrialPlan,
                      concurrent: int) -> tuple[dict[str, Any], Any]:
    """Param space (one grid point per pack) and ``TuneConfig`` of a packed search (FIFO)."""
    from ray import tune

    from fhn_automl.learning.packed import plan_packs  # imports torch: not at this module's import (PackMonitor's)

    if space.search.algorithm != "grid":
        raise ValueError(f"resources.executor: packed trains a grid's trials in packs; {space.path.name} has "
                         f"search.algorithm: {space.search.algorithm} (use grid, or executor function / train)")
    configs = [loop_config(t, plan)["train_config"] for t in trials]
    packs = []
    latencies = plan.latency_ms
    for number, members in enumerate(plan_packs(configs, space.resources.pack_size)):
        first = min((trials[i] for i in members), key=lambda t: t.val_every)
        packs.append({"name": f"pack{number:03d}_{trials[members[0]].name}"[:120],
                      "trials": [trials[i].as_dict() for i in members], "halving": pack_halving(space, first),
                      "latency": {trials[i].name: latencies[trials[i].layers] for i in members
                                  if trials[i].layers in latencies}})

    def name_pack(trial: Any) -> str:
        return trial.config["pack"]["name"]

    param_space = {"pack": tune.grid_search(packs), "plan": plan.as_config()}
    tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrent,
                                  trial_name_creator=name_pack, trial_dirname_creator=name_pack)
    return param_space, tune_config


def packed_trial(config: dict[str, Any]) -> None:
    """The Tune trial of one pack: ``train_pack`` with Tune's reports and checkpoints (see the module)."""
    from ray import tune

    from fhn_automl.learning.packed import train_pack  # imports torch (see packed_tune_setup)

    pack, plan = config["pack"], TrialPlan.from_config(config["plan"])
    specs = [TrialSpec.from_dict(spec) for spec in pack["trials"]]
    names = [spec.name for spec in specs]
    loop_configs = [loop_config(spec, plan) for spec in specs]
    session = time.time()  # tells the driver when the pack was restarted (lost node, --resume)
    static = {name: {**loop["static_metrics"], "worker_session": session} for name, loop in zip(names, loop_configs)}
    for name, latency in (pack.get("latency") or {}).items():  # measured on the driver (search.latency)
        static[name]["latency_ms"] = latency
    configs = []
    for loop in loop_configs:
        train_config = dict(loop["train_config"])
        ensure_data_on_this_node(train_config)
        configs.append({**train_config, "out_dir": None})

    scratch = Path(tempfile.mkdtemp(prefix="fhn_automl_pack_"))
    resume_dir, finished = restore_checkpoint(tune.get_checkpoint(), scratch)
    if finished is not None:  # the pack had finished: say so again, with its members' models
        tune.report(finished, checkpoint=tune.Checkpoint.from_directory(str(resume_dir)))
        shutil.rmtree(scratch, ignore_errors=True)
        return

    def report(records: Mapping[str, Mapping[str, Any]], checkpoint_dir: str) -> None:
        members = {name: {**scalar_metrics(metrics), **static[name], "resumed": int(resume_dir is not None)}
                   for name, metrics in records.items()}
        step = max(int(metrics["step"]) for metrics in records.values())
        tune.report({"members": members, "step": step}, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    halving = halving_from_pack(pack)  # None, by the metric (asha) or by MOASHA's Pareto rule (moasha)
    result = train_pack(configs, report, names=names, out_dir=scratch / "pack", halving=halving,
                        checkpoint=resume_dir)

    final_dir = scratch / "final"
    members = {}
    for name, member in result["members"].items():
        if member.get("model_dir") and Path(member["model_dir"]).is_dir():
            shutil.copytree(member["model_dir"], final_dir / MEMBERS_FOLDER / name / "model")
        members[name] = {**scalar_metrics(member), **static[name], "final": 1}
    final = {"members": members, "final": 1, "step": max(int(m.get("step", 0)) for m in members.values()),
             "model_steps": result["model_steps"], "model_steps_saved": result["model_steps_saved"],
             "pack_wall_seconds": result["wall_seconds"]}
    final_dir.mkdir(parents=True, exist_ok=True)
    (final_dir / FINAL_FILE).write_text(json.dumps(final, default=str))
    tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(final_dir)))
    shutil.rmtree(scratch, ignore_errors=True)


def pack_member_records(config: Mapping[str, Any], results: list[dict[str, Any]],
                        trial_dir: Path) -> list[tuple[TrialSpec, list[dict[str, Any]], Path | None]]:
    """A pack trial's local record split by member, for ``replay``: each member's spec, its results
    (a diverged member's last one and every member's record in the pack's final report marked
    ``final``, as ``PackMonitor`` marks them) and the checkpoint folder that holds its model."""
    out = []
    for index, spec_dict in enumerate(config["pack"]["trials"]):
        spec = TrialSpec.from_dict(spec_dict)
        mine: list[dict[str, Any]] = []
        model: Path | None = None
        for result in results:
            metrics = result.get("members", {}).get(spec.name)
            if metrics is None:
                continue
            in_final = bool(result.get("final"))
            mine.append({**metrics, **({"final": 1} if in_final or metrics.get("status") == "diverged" else {})})
            folder = result.get("checkpoint_dir_name")  # Tune's name of the checkpoint reported with it
            if folder:
                model = trial_dir / folder / (f"{MEMBERS_FOLDER}/{spec.name}" if in_final else f"best/{index}")
        out.append((spec, mine, model if model is not None and model.exists() else None))
    return out


class _MemberTrial:
    """What ``SearchMonitor`` reads of a Tune trial, for one member of a pack trial."""

    def __init__(self, pack_trial: Any, spec: Mapping[str, Any], index: int) -> None:
        self.config = {"trial": dict(spec)}
        self.name = TrialSpec.from_dict(spec).name
        self.index = index
        self.trial_id = f"{pack_trial.trial_id}/{self.name}"
        self.pack_trial = pack_trial
        self.last_result: dict[str, Any] = {}
        self.in_final_report = False  # its files are in the pack's final checkpoint, not a validation one

    @property
    def error_file(self) -> Any:
        return getattr(self.pack_trial, "error_file", None)

    @property
    def error_msg(self) -> Any:
        return getattr(self.pack_trial, "error_msg", None)


class PackMonitor(Callback):
    """Tune callback of a packed search: splits each pack trial's events into its members' events for
    the search's ``SearchMonitor`` (MLflow child runs, progress), which does the rest.

    A member that leaves its pack early (stopped by in-pack halving, or diverged) is completed when the
    checkpoint of that report arrives (its best model is in it); the others when the pack ends. Pickles
    to a reference to the live monitor, like ``SearchMonitor``, so a restored search reattaches.
    """

    def __init__(self, monitor: SearchMonitor) -> None:
        self.monitor = monitor
        self.key = monitor.key
        self.members: dict[str, dict[str, _MemberTrial]] = {}
        self.pending: dict[str, list[_MemberTrial]] = {}
        _LIVE_PACK_MONITORS[self.key] = self

    def __reduce__(self):
        return (live_pack_monitor, (self.key,))

    def _members(self, trial: Any) -> dict[str, _MemberTrial]:
        if trial.trial_id not in self.members:
            specs = trial.config["pack"]["trials"]
            made = [_MemberTrial(trial, spec, index) for index, spec in enumerate(specs)]
            self.members[trial.trial_id] = {member.name: member for member in made}
        return self.members[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for member in self._members(trial).values():
            self.monitor.on_trial_start(iteration, trials, member)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        members = self._members(trial)
        for name, metrics in result.get("members", {}).items():
            member = members[name]
            status = metrics.get("status")
            if status == "diverged":
                metrics = {**metrics, "final": 1}  # SearchMonitor reads a diverged trial off its final
            member.last_result = dict(metrics)
            member.in_final_report = bool(result.get("final"))
            self.monitor.on_trial_result(iteration, trials, member, dict(metrics))
            if result.get("final") or status in ("stopped_early", "diverged"):
                self.pending.setdefault(trial.trial_id, []).append(member)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        path = getattr(checkpoint, "path", None)
        for member in self.pending.pop(trial.trial_id, []):
            if path:
                final = f"{path}/{MEMBERS_FOLDER}/{member.name}"
                best = f"{path}/best/{member.index}"  # learning.packed: <checkpoint>/best/<member index>
                self.monitor.last_checkpoint[member.name] = final if member.in_final_report else best
            self._complete(iteration, trials, member)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for member in self.pending.pop(trial.trial_id, []):
            self._complete(iteration, trials, member)
        for member in self._members(trial).values():
            self._complete(iteration, trials, member)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for member in self._members(trial).values():
            self.monitor.on_trial_error(iteration, trials, member)

    def _complete(self, iteration: int, trials: list, member: _MemberTrial) -> None:
        if member.name not in self.monitor.statuses:
            self.monitor.on_trial_complete(iteration, trials, member)


def live_pack_monitor(key: str) -> PackMonitor | None:
    """The pack monitor of the running search ``key`` (what a pickled ``PackMonitor`` turns into)."""
    return _LIVE_PACK_MONITORS.get(key)
