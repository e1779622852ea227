"""The two measures every error of a surrogate is reported in: one home for their definitions.

A model's error against a target is summarised from the absolute differences ``|out - target|`` of
its outputs, one row per point, one column per output (U, W for FitzHugh-Nagumo):

* ``sum`` — the thesis text, eq. 3.3: the error of a point is ``|dU| + |dW|`` (the row's sum); the
  model's ``mean_err`` / ``max_err`` are that sum's mean and max over the points.
* ``code`` — the thesis' public code (``../shared/FACTS.md``, "The thesis' public code"), which is
  what its tables were measured with: ``code_mean_err`` is the mean of ``|out - target|`` over the
  points *and* the outputs (half of ``mean_err`` for two outputs), ``code_max_err`` the largest
  single-component error (between ``max_err / 2`` and ``max_err``).

Ranking, Pareto fronts and registration keep one stated metric, the ``sum`` form of the reported
error (``learning.validation.REPORTED_ERROR_METRIC``); the ``code`` form stands beside it wherever an
error is reported so that thesis rows are compared in their own measure.

Works on NumPy arrays and torch tensors alike (only ``sum(1)``, ``max()`` and ``shape`` are used),
so the physics layer needs no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: measure name -> what it is, for reports and ``--help``
ERROR_MEASURES = {
    "sum": "thesis eq. 3.3: |dU| + |dW| per point, mean and max over points",
    "code": "thesis code: mean of |out - target| over points and outputs (half the sum's mean for 2 outputs), "
            "max of a single component",
}
#: the summary keys, ``sum`` measure first
ERROR_KEYS = ("mean_err", "max_err", "code_mean_err", "code_max_err")


class UnknownErrorMeasureError(ValueError):
    """A measure name that is not one of ``ERROR_MEASURES``."""


def check_measure(name: str) -> str:
    """``name`` if it is a known measure, else ``UnknownErrorMeasureError`` naming the choices."""
    if name not in ERROR_MEASURES:
        raise UnknownErrorMeasureError(f"unknown error measure {name!r}; choose one of {', '.join(ERROR_MEASURES)}")
    return name


def measure_keys(name: str) -> tuple[str, str]:
    """The (mean, max) summary keys of measure ``name``."""
    return ("mean_err", "max_err") if check_measure(name) == "sum" else ("code_mean_err", "code_max_err")


@dataclass
class ErrorSummary:
    """Running totals of both measures over batches of absolute differences ``(points, outputs)``."""

    total_sum: float = 0.0       # sum over points of the row sums
    worst_sum: float = 0.0       # max over points of the row sums
    worst_component: float = 0.0
    points: int = 0
    outputs: int = 0

    def add(self, abs_diff: Any) -> "ErrorSummary":
        """Take a batch ``(n, n_out)`` of ``|out - target|`` (NumPy or torch); returns ``self``."""
        if len(abs_diff.shape) != 2:
            raise ValueError(f"absolute differences must be (points, outputs), got shape {tuple(abs_diff.shape)}")
        n, n_out = int(abs_diff.shape[0]), int(abs_diff.shape[1])
        if self.outputs and n_out != self.outputs:
            raise ValueError(f"batches disagree on the number of outputs: {self.outputs} then {n_out}")
        self.outputs = n_out
        if n == 0:
            return self
        sums = abs_diff.sum(1)
        self.total_sum += float(sums.double().sum() if hasattr(sums, "double") else sums.astype("float64").sum())
        self.worst_sum = max(self.worst_sum, float(sums.max()))
        self.worst_component = max(self.worst_component, float(abs_diff.max()))
        self.points += n
        return self

    def metrics(self) -> dict[str, float]:
        """``mean_err``, ``max_err`` (eq. 3.3) and ``code_mean_err``, ``code_max_err`` (thesis code);
        NaN for an empty summary."""
        if not self.points:
            return {key: math.nan for key in ERROR_KEYS}
        mean = self.total_sum / self.points
        return {"mean_err": mean, "max_err": self.worst_sum, "code_mean_err": mean / self.outputs,
                "code_max_err": self.worst_component}


def error_metrics(abs_diff: Any) -> dict[str, float]:
    """Both measures of one array of ``|out - target|``, shape ``(points, outputs)``."""
    return ErrorSummary().add(abs_diff).metrics()
