"""The query phase of a constrained multi-objective search: the last part of the budget answers the
question the user asked.

A search file with ``constraints: ["error <= 1e-3"]`` and ``objectives: [error, latency]`` asks "the
fastest model with error <= 1e-3" (``objectives.answer_queries``). A multi-objective sampler spreads its
proposals over the whole front; near one bound it is as good as chance. But the objective the query
minimises is, for latency, MACs, parameters and neurons, *known before training* (latency is measured
on the driver in a second or less), and only the constraint's metric is unknown. So once
``1 - query_fraction`` of ``num_samples`` are proposed by the sampler, each further proposal is the
untried architecture with the largest expected improvement of the query's answer:

    P(architecture meets the constraint) x max(incumbent cost - its cost, 0)

(the constrained expected improvement for a known objective; the incumbent is the cheapest finished
model that meets the constraint, or, before there is one, just above the most costly candidate).
P comes from a ridge regression of the constraint's metric (log10 when positive) on the architecture's
one-hot features (depth; per layer position, activation and width), fitted on the finished members
told so far, with the regression's predictive spread. When no untried architecture is cheaper than
the incumbent, or fewer than ``MIN_OBSERVED`` members have finished, the sampler proposes as before.

Measured with ``benchmarks/search_efficiency.py`` (B_S 252-model grid replayed from its curves); the
figures are in the issue 19 note of 2026-12-05 and not yet in ``benchmarks/RESULTS.md``.

Only the first constraint whose query minimises a known-before-training objective is targeted;
the others still reach the sampler as constraints. Large spaces: at most ``MAX_CANDIDATES`` untried
architectures (a seeded random subset) are scored per proposal, since each one's latency is measured.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fhn_automl.learning.architecture import architecture_figures, parse_layers
from fhn_automl.search.latency import LATENCY_METRIC
from fhn_automl.search.objectives import Constraint

#: finished members needed before the feasibility model is fitted
MIN_OBSERVED = 8
#: untried architectures scored per proposal at most (each needs its cost, latency measured)
MAX_CANDIDATES = 512
RIDGE = 1.0
_FIGURE = {"macs_per_eval": "macs", "n_parameters": "parameters", "n_neurons": "neurons"}


def known_cost(key: str, layers: str, n_in: int, n_out: int, latency: Callable[[str], float]) -> float:
    """The value of the known-before-training objective ``key`` for ``layers``."""
    if key == LATENCY_METRIC:
        return float(latency(layers))
    return float(architecture_figures(layers, n_in, n_out)[_FIGURE[key]])


class FeasibilityModel:
    """P(an architecture meets ``constraint``) from a ridge regression on one-hot layer features."""

    def __init__(self, architectures: Sequence[str], constraint: Constraint) -> None:
        tokens = [parse_layers(layers) for layers in architectures]
        self.depths = sorted({len(t) for t in tokens})
        self.activations = sorted({tok.activation for t in tokens for tok in t})
        self.widths = sorted({tok.width for t in tokens for tok in t})
        self.max_depth = max(self.depths)
        self.constraint = constraint
        self._fit: tuple[Any, Any, float, bool] | None = None  # (beta, (A'A + rI)^-1, sigma, log scale)

    def features(self, layers: str) -> list[float]:
        tokens = parse_layers(layers)
        row = [1.0] + [float(len(tokens) == d) for d in self.depths[1:]]
        for i in range(self.max_depth):
            token = tokens[i] if i < len(tokens) else None
            row += [float(token is not None and token.activation == a) for a in self.activations]
            row += [float(token is not None and token.width == w) for w in self.widths]
        return row

    def fit(self, observed: Mapping[str, float]) -> FeasibilityModel:
        import numpy as np

        values = [v for v in observed.values() if math.isfinite(v)]
        names = [k for k, v in observed.items() if math.isfinite(v)]
        log = bool(values) and min(values) > 0 and self.constraint.bound > 0
        a = np.array([self.features(k) for k in names], dtype=float)
        y = np.array([math.log10(v) if log else v for v in values], dtype=float)
        inverse = np.linalg.inv(a.T @ a + RIDGE * np.eye(a.shape[1]))
        beta = inverse @ a.T @ y
        residual = y - a @ beta
        effective = float(np.trace(a @ inverse @ a.T))  # parameters the ridge fit really used
        sigma = math.sqrt(max(float(residual @ residual) / max(len(y) - effective, 1.0), 1e-8))
        self._fit = (beta, inverse, sigma, log)
        return self

    def probability(self, layers: str) -> float:
        import numpy as np

        assert self._fit is not None, "fit() first"
        beta, inverse, sigma, log = self._fit
        x = np.array(self.features(layers), dtype=float)
        mean = float(x @ beta)
        spread = sigma * math.sqrt(1.0 + float(x @ inverse @ x))
        bound = math.log10(self.constraint.bound) if log else self.constraint.bound
        below = 0.5 * (1.0 + math.erf((bound - mean) / (spread * math.sqrt(2.0))))
        return below if self.constraint.op in ("<=", "<") else 1.0 - below


def pick(costs: Mapping[str, float], probability: Callable[[str], float], incumbent: float | None) -> str | None:
    """The candidate of largest expected improvement ``P x max(incumbent - cost, 0)`` (ties: cheaper,
    then by name); None when no candidate is cheaper than the incumbent."""
    if not costs:
        return None
    ceiling = incumbent if incumbent is not None else max(costs.values()) * (1 + 1e-6) + 1e-12
    scores = {k: probability(k) * max(ceiling - c, 0.0) for k, c in costs.items() if c < ceiling}
    if not scores or max(scores.values()) <= 0.0:
        return None
    return min(scores, key=lambda k: (-scores[k], costs[k], k))


def candidates(untried: Sequence[str], seed: int) -> list[str]:
    """At most ``MAX_CANDIDATES`` of ``untried`` (a seeded random subset when there are more)."""
    if len(untried) <= MAX_CANDIDATES:
        return list(untried)
    return random.Random(seed).sample(list(untried), MAX_CANDIDATES)
