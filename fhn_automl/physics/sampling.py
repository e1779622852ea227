"""Where the solver is asked for solutions: initial states spread over a problem's box.

Latin hypercube by default (scipy.stats.qmc): every one-dimensional projection is stratified, so
10,000 initial conditions cover U0, W0 and K evenly without the clumps and holes of plain uniform
draws. A uniform grid where a problem asks for one, and a single fixed point for problem A.
Samples come back as named columns, in the order of the ranges given.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc

from fhn_automl.physics.problems import Problem

Ranges = dict[str, tuple[float, float]]


def latin_hypercube(ranges: Ranges, n: int, seed: int | np.random.SeedSequence) -> dict[str, np.ndarray]:
    """``n`` Latin-hypercube points in the box ``ranges`` (float64 columns, in random order)."""
    _check_count(n)
    unit = _latin_hypercube_engine(len(ranges), _generator(seed)).random(n)
    return _scale(unit, ranges)


def uniform_grid(ranges: Ranges, n: int, seed: int | np.random.SeedSequence) -> dict[str, np.ndarray]:
    """``n`` points of the smallest regular grid with at least ``n`` nodes (cell centres), shuffled.

    When ``n`` is not a perfect power the grid has more nodes than asked for and a random subset of
    them is kept; the order is random either way, so the first rows can serve as a split.
    """
    _check_count(n)
    per_axis = math.ceil(round(n ** (1.0 / len(ranges)), 9))
    axis = (np.arange(per_axis) + 0.5) / per_axis
    nodes = np.stack([g.reshape(-1) for g in np.meshgrid(*([axis] * len(ranges)), indexing="ij")], axis=1)
    keep = _generator(seed).permutation(len(nodes))[:n]
    return _scale(nodes[keep], ranges)


def sample_initial_states(problem: Problem, n: int, seed: int | np.random.SeedSequence,
                          ranges: Ranges | None = None) -> dict[str, np.ndarray]:
    """``n`` initial states (and parameters) of ``problem`` by its sampling rule.

    Columns are the problem's sampled quantities: ``u0, w0[, k]`` for trajectory problems, ``u, w[, k]``
    for iterators; ``ranges`` overrides the box (e.g. a high-error region).
    """
    ranges = problem.initial_state_ranges() if ranges is None else ranges
    if problem.sampling == "fixed":
        if problem.fixed_initial_state is None:
            raise ValueError(f"{problem.name} samples a fixed initial state but has none")
        _check_count(n)
        u0, w0 = problem.fixed_initial_state
        return {"u0": np.full(n, u0), "w0": np.full(n, w0)}
    if problem.sampling == "grid":
        return uniform_grid(ranges, n, seed)
    return latin_hypercube(ranges, n, seed)


def _latin_hypercube_engine(dimensions: int, rng: np.random.Generator) -> qmc.LatinHypercube:
    try:
        return qmc.LatinHypercube(d=dimensions, rng=rng)
    except TypeError:  # scipy < 1.15 names the argument ``seed``
        return qmc.LatinHypercube(d=dimensions, seed=rng)


def _scale(unit: np.ndarray, ranges: Ranges) -> dict[str, np.ndarray]:
    lows = np.array([low for low, _ in ranges.values()])
    highs = np.array([high for _, high in ranges.values()])
    points = qmc.scale(unit, lows, highs) if len(ranges) else unit
    return {name: np.ascontiguousarray(points[:, column]) for column, name in enumerate(ranges)}


def _generator(seed: int | np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_count(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
