"""Layer notation, shape classes and counts on the thesis' own examples (Tables 4, 8, 9, 10)."""

import pytest

from fhn_automl.learning.activations import ACTIVATION_REGISTRY
from fhn_automl.learning.architecture import (ACTIVATIONS, LayerNotationError, LayerSpec, architecture_figures,
                                              count_macs, count_neurons, count_parameters, format_layers,
                                              parse_layers, shape_class)


@pytest.mark.parametrize("layers, expected_class, neurons", [
    ("(SILU-32, TANH-32, SILU-32)", "rectangle", 96),   # Table 4: best B_S model
    ("(ELU-8, SILU-8)", "rectangle", 16),               # Table 4
    ("(TANH-32, ELU-8, SILU-8)", "funnel", 48),         # Table 4
    ("(SIN-16, SILU-8, ELU-8)", "funnel", 32),          # Table 8
    ("(SIN-16, TANH-32, SIN-16)", "diamond", 64),       # Table 8
    ("(ELU–8, SILU–16, TANH–8)", "diamond", 32),        # Table 10 (en-dashes as printed)
    ("(SIN-16, SILU-16, SIN-16)", "rectangle", 48),     # Table 8
    ("(ELU-16, SILU-8)", "funnel", 24),                 # Table 9
    ("silu-8,silu-16,tanh-32", "bottleneck", 56),
    ("silu-32,tanh-8,silu-32", "bowtie", 72),
    ("silu-8,tanh-32,silu-16", "diamond", 56),        # any larger middle; 3 layers never irregular
    ("silu-8,tanh-16,silu-8,tanh-16", "irregular", 48),
    ("sin-16", "rectangle", 16),
])
def test_thesis_examples(layers, expected_class, neurons):
    parsed = parse_layers(layers)
    assert shape_class(parsed) == expected_class
    assert count_neurons(parsed) == neurons


def test_rectangle_takes_precedence_over_funnel_and_bottleneck():
    assert shape_class([16, 16, 16]) == "rectangle"
    assert shape_class([16, 16, 8]) == "funnel"
    assert shape_class([8, 16, 16]) == "bottleneck"


def test_notation_round_trip_and_forms():
    layers = parse_layers("silu-32,tanh-32,silu-32")
    assert layers == (LayerSpec("silu", 32), LayerSpec("tanh", 32), LayerSpec("silu", 32))
    assert format_layers(layers) == "silu-32,tanh-32,silu-32"
    assert parse_layers(format_layers(layers)) == layers
    assert parse_layers([("SiLU", 32), "tanh-32", LayerSpec("silu", 32)]) == layers
    assert parse_layers("nn.LeakyReLU-8, sigmoid-4, sin-2")[0] == LayerSpec("leakyrelu", 8)


@pytest.mark.parametrize("text, bad", [
    ("silu-32,tanx-32", "tanx-32"),
    ("silu-32,tanh-0", "tanh-0"),
    ("silu-32,tanh32", "tanh32"),
    ("silu-32,tanh-3.5", "tanh-3.5"),
])
def test_bad_tokens_are_named(text, bad):
    with pytest.raises(LayerNotationError, match=bad):
        parse_layers(text)


def test_empty_is_rejected():
    with pytest.raises(LayerNotationError):
        parse_layers([])
    with pytest.raises(LayerNotationError):
        parse_layers("silu-8,,tanh-8")


def test_counts():
    layers = parse_layers("silu-32,tanh-32,silu-32")
    # 3 -> 32 -> 32 -> 32 -> 2
    assert count_macs(layers, 3, 2) == 3 * 32 + 32 * 32 * 2 + 32 * 2
    assert count_parameters(layers, 3, 2) == count_macs(layers, 3, 2) + 32 * 3 + 2


def test_figures_count_every_window_network():
    """A split model holds one network per window: neurons and parameters count all of them, MACs
    stay one evaluation's (one window network runs per point)."""
    one = architecture_figures("silu-32,tanh-16", 3, 2)
    split = architecture_figures("silu-32,tanh-16", 3, 2, n_networks=4)
    assert one["neurons"] == 48 and one["networks"] == 1
    assert one["parameters"] == count_parameters(parse_layers("silu-32,tanh-16"), 3, 2)
    assert split["neurons"] == 4 * 48 and split["parameters"] == 4 * one["parameters"]
    assert split["macs"] == one["macs"] == 3 * 32 + 32 * 16 + 16 * 2
    assert split["depth"] == 2 and split["widths"] == [32, 16] and split["shape_class"] == "funnel"
    assert split["activations"] == ["silu", "tanh"]


def test_every_registered_activation_parses_by_name_and_alias():
    for row in ACTIVATION_REGISTRY.values():
        for spelling in (row.name, row.name.upper(), *row.aliases):
            assert parse_layers(f"{spelling}-4")[0] == LayerSpec(row.name, 4)
    assert ACTIVATIONS == tuple(ACTIVATION_REGISTRY)
