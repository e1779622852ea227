"""Non-dominated sorting, crowding distance and 2-D hypervolume: the ranking of multi-objective halving.

MOASHA's promotion rule (Schmucker et al. 2021, "Multi-objective asynchronous successive halving"):
at a rung, the candidates are ordered by non-dominated sorting of their objective vectors (all
minimised), front by front; inside a front by crowding distance, largest first (the boundary points of
a front have infinite distance, so the extremes of each front go first), so the survivors spread along
the front instead of crowding at one end. The top ``ceil(n / eta)`` of that order go on.

Plain Python on sequences of floats: the learning layer's in-pack halving (``packed.ParetoHalving``)
and the search layer's Tune scheduler (``search.moasha``) share it, and the tests feed it hand-made
points. A point with a NaN or infinite objective is worst in all of them, so a diverged candidate never
survives a finite one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _clean(point: Sequence[float]) -> tuple[float, ...]:
    """A point with a missing, NaN or infinite objective (a diverged run) becomes worst in every
    objective, so a cheap architecture that diverged never outranks a finite one."""
    values = [math.nan if value is None else float(value) for value in point]
    if not all(math.isfinite(value) for value in values):
        return tuple(math.inf for _ in values)
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` in every objective and strictly better in one (minimisation)."""
    a, b = _clean(a), _clean(b)
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def non_dominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of ``points`` split into fronts: front 0 is dominated by nobody, front k only by
    members of fronts < k (Deb et al.'s fast non-dominated sort; O(M n^2), n is a rung's size)."""
    pts = [_clean(p) for p in points]
    n = len(pts)
    dominated_by_me: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(pts[i], pts[j]):
                dominated_by_me[i].append(j)
                count[j] += 1
            elif dominates(pts[j], pts[i]):
                dominated_by_me[j].append(i)
                count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by_me[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within its own set (one front): per objective, the
    normalised gap between its neighbours; the extremes of each objective get infinity."""
    pts = [_clean(p) for p in points]
    n = len(pts)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(len(pts[0])):
        order = sorted(range(n), key=lambda i: (pts[i][k], i))
        low, high = pts[order[0]][k], pts[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = high - low
        if not math.isfinite(span) or span <= 0:
            continue
        for position in range(1, n - 1):
            i = order[position]
            distance[i] += (pts[order[position + 1]][k] - pts[order[position - 1]][k]) / span
    return distance


def pareto_order(points: Sequence[Sequence[float]]) -> list[int]:
    """All indices of ``points``, best first: by front, then by crowding distance (largest first),
    then by the first objective, then by index (so equal inputs give a deterministic order)."""
    pts = [_clean(p) for p in points]
    order: list[int] = []
    for front in non_dominated_fronts(pts):
        crowd = crowding_distances([pts[i] for i in front])
        ranked = sorted(range(len(front)), key=lambda j: (-crowd[j], pts[front[j]][0], front[j]))
        order += [front[j] for j in ranked]
    return order


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (front 0), sorted by the first objective."""
    fronts = non_dominated_fronts(points)
    if not fronts:
        return []
    pts = [_clean(p) for p in points]
    return sorted(fronts[0], key=lambda i: (pts[i], i))


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Area dominated by ``points`` (two minimised objectives) and bounded by ``reference``; points
    not strictly better than the reference in both objectives add nothing."""
    rx, ry = float(reference[0]), float(reference[1])
    inside = sorted((x, y) for x, y in (_clean(p)[:2] for p in points) if x < rx and y < ry)
    area = 0.0
    best_y = ry
    for x, y in inside:  # by the first objective; each point adds the strip below the best y so far
        if y < best_y:
            area += (rx - x) * (best_y - y)
            best_y = y
    return area
