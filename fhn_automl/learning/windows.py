"""Time-domain splitting (thesis 3.4.1): parsing the window option.

Two modes:

* ``split``: K networks, one per window, tied by the continuity loss (eq. 3.20) at the interfaces,
  evaluated by picking the window that holds t (``mlp.SplitWindowSurrogate``). Written
  ``split:4`` (4 equal windows over the problem's time span) or ``split:0,5,20,50`` (the edges).
* ``chained``: one network trained on [0, T_w] with the initial state as input, marched at inference
  (``mlp.ChainedWindowSurrogate``). Written ``chained:5``.

``None`` / ``"none"`` means one network over the whole span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WindowPlan:
    """How the time axis is split: ``mode`` and the edges (``chained``: ``(0, T_w)``)."""

    mode: str = "none"
    edges: tuple[float, ...] = ()

    @property
    def n_networks(self) -> int:
        """Networks a model with this plan holds: one per window for ``split``, else one."""
        return len(self.edges) - 1 if self.mode == "split" else 1

    @property
    def interfaces(self) -> tuple[float, ...]:
        """Interior edges where neighbouring split networks must agree."""
        return self.edges[1:-1] if self.mode == "split" else ()

    def describe(self) -> str:
        if self.mode == "split":
            return "split:" + ",".join(f"{edge:g}" for edge in self.edges)
        if self.mode == "chained":
            return f"chained:{self.edges[1]:g}"
        return "none"


def parse_window(option: str | Mapping[str, Any] | None, t_span: tuple[float, float]) -> WindowPlan:
    """A ``WindowPlan`` from the CLI / config form; errors say what a valid option looks like."""
    if option is None or option is False or option == "none" or option == "":
        return WindowPlan()
    t0, t1 = float(t_span[0]), float(t_span[1])
    if isinstance(option, Mapping):
        mode = option.get("mode")
        if mode == "split" and "edges" in option:
            edges = tuple(float(e) for e in option["edges"])
        elif mode == "split" and "n" in option:
            edges = _equal_edges(int(option["n"]), t0, t1)
        elif mode == "chained" and "length" in option:
            edges = (t0, t0 + float(option["length"]))
        else:
            raise ValueError(f"bad window option {dict(option)!r}: use {{'mode': 'split', 'n': 4}}, "
                             "{'mode': 'split', 'edges': [...]} or {'mode': 'chained', 'length': 5}")
    else:
        mode, _, argument = str(option).partition(":")
        try:
            if mode == "split" and "," in argument:
                edges = tuple(float(e) for e in argument.split(","))
            elif mode == "split":
                edges = _equal_edges(int(argument), t0, t1)
            elif mode == "chained":
                edges = (t0, t0 + float(argument))
            else:
                raise ValueError(f"unknown window mode {mode!r}")
        except ValueError as error:
            raise ValueError(f"bad window option {option!r} ({error}): use 'split:4', 'split:0,5,20,50' or "
                             "'chained:5'") from None
    if list(edges) != sorted(set(edges)):
        raise ValueError(f"window edges must increase strictly, got {edges}")
    if mode == "split":
        if len(edges) < 3:
            raise ValueError(f"split windows need at least two windows, got edges {edges}")
        if abs(edges[0] - t0) > 1e-9 or abs(edges[-1] - t1) > 1e-9:
            raise ValueError(f"split window edges must start at {t0:g} and end at {t1:g}, got {edges}")
    if mode == "chained" and not (t0 < edges[1] <= t1):
        raise ValueError(f"chained window length must be in (0, {t1 - t0:g}], got {edges[1] - t0:g}")
    return WindowPlan(mode=mode, edges=edges)


def _equal_edges(n: int, t0: float, t1: float) -> tuple[float, ...]:
    if n < 2:
        raise ValueError(f"split needs at least 2 windows, got {n}")
    return tuple(t0 + (t1 - t0) * k / n for k in range(n + 1))
