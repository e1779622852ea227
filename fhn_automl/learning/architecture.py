"""Layer-sequence MLP architectures as data: the ``silu-32,tanh-32,silu-32`` notation, shape classes, counts.

The thesis (3.2, 3.2.1) describes every network as a sequence of hidden layers, each an
(activation, width) pair. Keeping that description as plain data lets the search layer build spaces
out of it, the post-stage group models by shape and size, and a saved spec rebuild the network.

Shape classes (thesis 4.2.1) and the precedence used here, first match wins:

1. ``rectangle``  every width equal (a single layer is a rectangle). Checked first because an
   all-equal sequence is also non-increasing and non-decreasing.
2. ``funnel``     widths never increase (``32,16,8``, ``16,8,8``).
3. ``bottleneck`` widths never decrease (``8,16,32``). The thesis' word for "progressively larger".
4. ``bowtie``     three layers, middle smaller than both ends (``32,8,32``).
5. ``diamond``    three layers, middle larger than both ends (``8,16,8``).
6. ``irregular``  everything else (``16,8,16,8``; only 4+ layers can be irregular), so every model
   has a class.

Activations are the rows of ``activations.ACTIVATION_REGISTRY``. This module imports no torch, so
search files are validated on a driver that has none.

The thesis is not self-consistent about bowtie and diamond: Table 4 calls (SiLU-8, Tanh-32, SiLU-8)
a bowtie while Table 8 calls (Sin-16, Tanh-32, Sin-16) a diamond and the text defines bowtie as "a
smaller middle layer". We follow the text's definition (and Tables 8 and 10).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhn_automl.learning.activations import ACTIVATIONS, canonical_activation

__all__ = ["ACTIVATIONS", "SHAPE_CLASSES", "LayerNotationError", "LayerSpec", "architecture_figures",
           "count_macs", "count_neurons", "count_parameters", "format_layers", "parse_layers",
           "shape_class"]

SHAPE_CLASSES: tuple[str, ...] = ("rectangle", "funnel", "bottleneck", "bowtie", "diamond", "irregular")


class LayerNotationError(ValueError):
    """A layer-sequence string or pair that cannot be parsed; the message names the bad token."""


#: Widest hidden layer accepted anywhere (search files, ``train --layers``, a model's spec.json): a
#: width of 2e9 once filled 23 GB before Ray's OOM killer stopped it. 16384 is 64x the thesis' widest.
MAX_LAYER_WIDTH = 16_384
#: Most hidden-to-hidden weights in one sequence (2^28: 1 GiB of float32, before optimiser state);
#: checked on the notation, before a tensor is allocated.
MAX_HIDDEN_WEIGHTS = 1 << 28


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer: a canonical activation name and a positive width."""

    activation: str
    width: int

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise LayerNotationError(
                f"unknown activation {self.activation!r}; known: {', '.join(ACTIVATIONS)}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise LayerNotationError(f"layer width must be a positive integer, got {self.width!r}")
        if self.width > MAX_LAYER_WIDTH:
            raise LayerNotationError(f"layer width {self.width} is too wide: at most {MAX_LAYER_WIDTH} "
                                     f"({self.activation}-{self.width})")

    def __str__(self) -> str:
        return f"{self.activation}-{self.width}"


_TOKEN = re.compile(r"^\s*([A-Za-z_.]+)\s*[-–:]\s*(\S+?)\s*$")


def parse_layer(token: str) -> LayerSpec:
    """One ``activation-width`` token (``'silu-32'``, ``'SiLU-32'``, ``'swish-32'``) -> ``LayerSpec``: the
    one parser of the layer notation (search files, the grid, the trainer and the CLI all use it)."""
    return _parse_token(token)


def _parse_token(token: str) -> LayerSpec:
    cleaned = token.strip().strip("()[]").strip()
    match = _TOKEN.match(cleaned)
    if not match:
        raise LayerNotationError(
            f"bad layer token {token.strip()!r}: expected ACTIVATION-WIDTH such as 'silu-32'")
    name, width_text = match.groups()
    activation = canonical_activation(name)
    if activation is None:
        raise LayerNotationError(
            f"bad layer token {token.strip()!r}: unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    if not width_text.isdigit() or int(width_text) < 1:
        raise LayerNotationError(
            f"bad layer token {token.strip()!r}: width {width_text!r} is not a positive integer")
    if len(width_text) > 9 or int(width_text) > MAX_LAYER_WIDTH:  # checked before int() of a huge string
        raise LayerNotationError(
            f"bad layer token {token.strip()!r}: width {width_text} is too wide: at most {MAX_LAYER_WIDTH}")
    return LayerSpec(activation, int(width_text))


def parse_layers(layers: str | Iterable[str | LayerSpec | Sequence]) -> tuple[LayerSpec, ...]:
    """Parse ``'silu-32,tanh-32,silu-32'`` (also the thesis' ``(SiLU-32, Tanh-32)``) into LayerSpecs.

    Lists of tokens, of ``LayerSpec`` and of ``(activation, width)`` pairs are accepted too, so a
    search-space file can write either form. An empty sequence is an error: a surrogate needs at
    least one hidden layer.
    """
    if isinstance(layers, str):
        text = layers.strip()
        if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
            text = text[1:-1]
        tokens: list = [tok for tok in text.split(",")]
        if any(not tok.strip() for tok in tokens):
            raise LayerNotationError(f"empty layer token in {layers!r}")
        parsed = tuple(_parse_token(tok) for tok in tokens)
    else:
        items = []
        for item in layers:
            if isinstance(item, LayerSpec):
                items.append(item)
            elif isinstance(item, str):
                items.append(_parse_token(item))
            elif isinstance(item, Sequence) and len(item) == 2:
                items.append(_parse_token(f"{item[0]}-{item[1]}"))
            else:
                raise LayerNotationError(f"bad layer entry {item!r}: expected 'act-width' or (act, width)")
        parsed = tuple(items)
    if not parsed:
        raise LayerNotationError("a layer sequence needs at least one hidden layer")
    weights = sum(a.width * b.width for a, b in zip(parsed, parsed[1:]))
    if weights > MAX_HIDDEN_WEIGHTS:
        raise LayerNotationError(f"layer sequence {format_layers(parsed)[:80]} has {weights:.3g} hidden weights, "
                                 f"above the limit {MAX_HIDDEN_WEIGHTS:.3g} (1 GiB of float32)")
    return parsed


def format_layers(layers: Iterable[LayerSpec]) -> str:
    """The canonical notation, e.g. ``silu-32,tanh-32,silu-32`` (inverse of ``parse_layers``)."""
    return ",".join(str(layer) for layer in layers)


def _widths(layers: Iterable[LayerSpec | int] | str) -> list[int]:
    if isinstance(layers, str):
        layers = parse_layers(layers)
    return [layer.width if isinstance(layer, LayerSpec) else int(layer) for layer in layers]


def shape_class(layers: Iterable[LayerSpec | int] | str) -> str:
    """The shape class of a layer sequence (or of a list of widths); see the module docstring."""
    widths = _widths(layers)
    if not widths:
        raise LayerNotationError("a layer sequence needs at least one hidden layer")
    pairs = list(zip(widths, widths[1:]))
    if all(a == b for a, b in pairs):
        return "rectangle"
    if all(a >= b for a, b in pairs):
        return "funnel"
    if all(a <= b for a, b in pairs):
        return "bottleneck"
    if len(widths) == 3:
        first, middle, last = widths
        if middle < first and middle < last:
            return "bowtie"
        if middle > first and middle > last:
            return "diamond"
    return "irregular"


def count_neurons(layers: Iterable[LayerSpec | int] | str) -> int:
    """Hidden neurons: the thesis' size measure (Tables 4, 8-10)."""
    return sum(_widths(layers))


def count_parameters(layers: Iterable[LayerSpec | int] | str, n_in: int, n_out: int) -> int:
    """Weights and biases of the MLP n_in -> hidden layers -> n_out."""
    sizes = [n_in, *_widths(layers), n_out]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def count_macs(layers: Iterable[LayerSpec | int] | str, n_in: int, n_out: int) -> int:
    """Multiply-adds of one evaluation (one input point); activations and biases not counted."""
    sizes = [n_in, *_widths(layers), n_out]
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def architecture_figures(layers: Iterable[LayerSpec] | str, n_in: int, n_out: int, *,
                         n_networks: int = 1) -> dict[str, Any]:
    """The figures of a surrogate: what MLflow params, training metrics and the post-stage report.

    ``n_networks`` is the number of networks of the same layers the surrogate holds (a ``split``
    time-window model has one per window): neurons and parameters count every one of them, while
    ``macs`` stays the cost of one evaluation, which runs exactly one network.
    """
    parsed = parse_layers(layers) if isinstance(layers, str) else tuple(layers)
    if n_networks < 1:
        raise ValueError(f"n_networks must be >= 1, got {n_networks}")
    return {"depth": len(parsed),
            "widths": [layer.width for layer in parsed],
            "activations": [layer.activation for layer in parsed],
            "shape_class": shape_class(parsed), "networks": n_networks,
            "neurons": count_neurons(parsed) * n_networks,
            "parameters": count_parameters(parsed, n_in, n_out) * n_networks,
            "macs": count_macs(parsed, n_in, n_out)}
