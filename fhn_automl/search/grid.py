"""The layer-sequence grid of the thesis (section 3.2.1).

An architecture is a sequence of (activation, width) layers. The thesis searches every ordered
combination, repetitions included, of a set of layer choices at each depth: ``len(choices) ** depth``
sequences per depth, optionally kept only when their shape class (rectangle, funnel, ...) is wanted.
Nothing here imports torch or Ray, so ``--dry-run`` and the grid tests stay instant.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

from fhn_automl.learning.architecture import parse_layer

#: One layer as written in search files and layer strings: ``"silu-32"``.
LayerToken = str


def layer_sequences(choices: Sequence[LayerToken], depths: Iterable[int], *,
                    shape_classes: Iterable[str] | None = None,
                    shape_class_of: Callable[[Sequence[int]], str] | None = None) -> Iterator[str]:
    """Yield layer strings (``"silu-16,tanh-32"``) for every ordered combination of ``choices``.

    Depths are visited in the order given and, within a depth, combinations in lexicographic order of
    the choice indices, so the enumeration (and hence trial numbering) is stable across runs.
    ``shape_classes`` keeps only sequences whose ``shape_class_of(widths)`` is one of them; it needs
    ``shape_class_of`` (the learning layer's ``shape_class``), passed in so this module stays light.
    """
    wanted = None if shape_classes is None else set(shape_classes)
    if wanted is not None and shape_class_of is None:
        raise ValueError("a shape-class filter needs shape_class_of")
    for depth in depths:
        for combination in itertools.product(choices, repeat=depth):
            if wanted is not None:
                widths = [layer_width(token) for token in combination]
                if shape_class_of(widths) not in wanted:
                    continue
            yield ",".join(combination)


def layer_width(token: LayerToken) -> int:
    """The width of one ``activation-width`` token (``"tanh-32"`` -> 32), by the notation's one parser."""
    return parse_layer(token).width


def count_layer_sequences(n_choices: int, depths: Iterable[int]) -> int:
    """Size of the unfiltered grid: the sum of ``n_choices ** depth`` (5 choices, {2, 3} -> 150)."""
    return sum(n_choices ** depth for depth in depths)


def evenly_spaced(items: Sequence, k: int) -> list:
    """``k`` items spread over ``items`` (first and last included): how a small budget samples a grid.

    Taking the first ``k`` would give ``k`` near-identical architectures; spreading them covers the
    studies and depths of the file at any budget.
    """
    n = len(items)
    if k >= n:
        return list(items)
    if k <= 1:
        return [items[0]] if k == 1 else []
    indices = sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in indices]
