"""Where the solver is asked for solutions: initial states spread over a problem's box.

Latin hypercube by default (scipy.stats.qmc): every one-dimensional projection is stratified, so
10,000 initial conditions cover U0, W0 and K evenly without the clumps and holes of plain uniform
draws. A uniform grid where a problem asks for one, and a single fixed point for problem A.
Samples come back as named columns, in the order of the ranges given.

Marching models (the iterator, chained windows) also meet the states the dynamics *visit* from the
domain, which leave its box (``problems`` module docstring): :func:`sample_visited_states` draws those,
and :func:`sample_iterator_states` mixes them with the homogeneous box for an iterator's pairs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import qmc

from fhn_automl.physics.euler import iter_euler_chunks
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


#: Stored-state spacing of the visited-state draws: the time at which a trajectory is stopped is a
#: multiple of it (fine against dt_net = 2 and the limit cycle's ~12 time-unit period).
VISITED_SAVE_DT = 0.1
#: Trajectories solved at once by the visited-state sampler (bounds memory at ~25 MB per chunk).
VISITED_CHUNK = 4_096


def sample_visited_states(problem: Problem, n: int, seed: int | np.random.SeedSequence, *,
                          horizon: float | None = None, backend: str = "cpu") -> dict[str, np.ndarray]:
    """``n`` states the dynamics visit: forward Euler (the problem's ``solver_dt``, float64) from
    Latin-hypercube initial states of the domain, each stopped at a uniformly random stored time in
    [0, ``horizon``] (default: the rollout horizon of an iterator, else ``t_end``).

    Columns as :func:`sample_initial_states` (``u, w[, k]`` for iterators), k kept from the start.
    """
    _check_count(n)
    streams = _seed_sequence(seed).spawn(2)
    starts = latin_hypercube(problem.initial_state_ranges(), n, streams[0])
    names = list(starts)
    u_name, w_name = names[0], names[1]
    horizon = horizon if horizon is not None else (problem.rollout_t_end or problem.t_end)
    save_every = max(1, round(VISITED_SAVE_DT / problem.solver_dt))
    n_steps = round(horizon / problem.solver_dt)
    n_saved = n_steps // save_every + 1
    stop = _generator(streams[1]).integers(0, n_saved, size=n)
    k = starts.get("k", np.zeros(n))
    u = np.empty(n)
    w = np.empty(n)
    for rows, U, W in iter_euler_chunks(problem.model, starts[u_name], starts[w_name], problem.i_app(k),
                                        chunk_size=VISITED_CHUNK, dt=problem.solver_dt, n_steps=n_steps,
                                        save_every=save_every, backend=backend, dtype=np.float64,
                                        reuse_buffers=True):
        picks = stop[rows]
        U, W = (array if isinstance(array, np.ndarray) else array.get() for array in (U, W))  # CuPy -> host
        u[rows] = U[np.arange(len(picks)), picks]
        w[rows] = W[np.arange(len(picks)), picks]
    out = {u_name: u, w_name: w}
    if "k" in starts:
        out["k"] = starts["k"]
    return out


def sample_iterator_states(problem: Problem, n: int, seed: int | np.random.SeedSequence, *,
                           backend: str = "cpu") -> dict[str, np.ndarray]:
    """An iterator's pair states: ``visited_fraction`` of them from :func:`sample_visited_states`,
    the rest homogeneous in the domain (the thesis' set), in random order."""
    _check_count(n)
    streams = _seed_sequence(seed).spawn(3)
    n_visited = int(round(problem.visited_fraction * n))
    parts = []
    if n - n_visited:
        parts.append(sample_initial_states(problem, n - n_visited, streams[0]))
    if n_visited:
        parts.append(sample_visited_states(problem, n_visited, streams[1], backend=backend))
    order = _generator(streams[2]).permutation(n)
    return {name: np.concatenate([part[name] for part in parts])[order] for name in parts[0]}


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


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def _generator(seed: int | np.random.SeedSequence) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_count(n: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"the number of samples must be a positive integer, got {n!r}")
