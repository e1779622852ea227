"""A Ray Tune scheduler that stops trials on a Pareto criterion: asynchronous successive halving whose
rungs promote by non-dominated sorting of (error at the rung, cost), MOASHA's rule (Schmucker et al.
2021). Tune's own ASHA takes one metric and Optuna's pruners refuse multi-objective studies, hence this.

Rungs are ``grace_period * reduction_factor**k`` below ``max_t`` (ASHA's). When a trial first reports
at or past a rung, its (error, cost) joins the rung's record and the record is ordered by
``learning.multi_objective.pareto_order`` (front by front, crowding distance as the tie-break); the
trial goes on when it is among the first ``ceil(n / reduction_factor)`` of the ``n`` recorded there, and
stops otherwise. Like ASHA it decides on what has reached the rung so far (asynchronous): the first
trials at a rung always go on. One bracket, as ``search.runner`` uses ASHA.

The cost is the trial's ``cost_attr`` result (e.g. ``latency_ms``, the measured latency each trial
reports with its first result; ``macs_per_eval`` where latency is not measured). In-pack halving uses
the same order (``learning.packed.ParetoHalving``).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from fhn_automl.learning.multi_objective import pareto_order


def rung_milestones(grace_period: int, reduction_factor: float, max_t: int) -> list[int]:
    """The rungs (ascending): ``grace_period * reduction_factor**k`` up to and including ``max_t``."""
    out: list[int] = []
    k = 0
    while True:
        rung = int(round(grace_period * reduction_factor ** k))
        if rung > max_t:
            return out
        if not out or rung > out[-1]:
            out.append(rung)
        k += 1


class ParetoASHAScheduler(FIFOScheduler):
    """MOASHA for Tune: see the module docstring. Both objectives are minimised."""

    def __init__(self, *, time_attr: str = "step", metric: str = "val_mean_err", cost_attr: str = "latency_ms",
                 max_t: int, grace_period: int, reduction_factor: float = 3) -> None:
        if grace_period < 1 or max_t < grace_period:
            raise ValueError(f"need 1 <= grace_period <= max_t, got {grace_period} and {max_t}")
        if not reduction_factor > 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor}")
        super().__init__()
        self._time_attr = time_attr
        self._metric = metric
        self._mode = "min"
        self._cost_attr = cost_attr
        self._reduction_factor = float(reduction_factor)
        self.milestones = rung_milestones(grace_period, reduction_factor, max_t)
        #: rung -> trial id -> (error at the rung, cost)
        self.recorded: dict[int, dict[str, tuple[float, float]]] = {m: {} for m in self.milestones}
        self._costs: dict[str, float] = {}
        self.num_stopped = 0

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if mode not in (None, "min"):
            return False
        return metric in (None, self._metric)

    def decide(self, trial_id: str, step: float, error: float, cost: float) -> str:
        """CONTINUE or STOP for a result of ``trial_id`` at ``step`` (the unit-testable core)."""
        for milestone in reversed(self.milestones):
            recorded = self.recorded[milestone]
            if step < milestone:
                continue
            if trial_id in recorded:
                return TrialScheduler.CONTINUE  # decided at this rung already
            recorded[trial_id] = (error, cost)
            ids = list(recorded)
            order = pareto_order([recorded[i] for i in ids])
            keep = max(1, math.ceil(len(ids) / self._reduction_factor))
            promoted = {ids[i] for i in order[:keep]}
            if trial_id in promoted:
                return TrialScheduler.CONTINUE
            self.num_stopped += 1
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._cost_attr in result:
            self._costs[trial.trial_id] = float(result[self._cost_attr])
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        cost = self._costs.get(trial.trial_id, math.inf)
        return self.decide(trial.trial_id, float(result[self._time_attr]), float(result[self._metric]), cost)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._costs.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._costs.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        sizes = ", ".join(f"{m}: {len(self.recorded[m])}" for m in self.milestones)
        return f"Using ParetoASHA (MOASHA): num_stopped={self.num_stopped}; rungs {sizes}"
