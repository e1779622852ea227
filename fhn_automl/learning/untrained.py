"""Untrained networks: the spec and the freshly initialised model of a problem and a layer sequence.

The inference study (thesis 4.4) times networks that were never trained: cost depends on the
architecture, not on the weights. The search's untrained sweep saves and logs them, the post-stage's
inference sweep and the benchmark time them; all build them here, so they are the same networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhn_automl.learning.architecture import LayerSpec, parse_layers
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import Problem

if TYPE_CHECKING:
    from collections.abc import Iterable

    from torch import nn


def untrained_spec(problem: Problem, layers: str | Iterable[LayerSpec], *,
                   seed: int | None = None) -> ModelSpec:
    """A plain (no windows) DDNN spec over the problem's inputs and outputs, marked untrained."""
    metadata: dict = {"untrained": True}
    if seed is not None:
        metadata["seed"] = seed
    return ModelSpec(problem=problem.key, kind="ddnn", layers=parse_layers(layers),
                     inputs=problem.inputs, outputs=problem.outputs,
                     ranges={name: problem.ranges[name] for name in problem.inputs},
                     metadata=metadata)


def untrained_model(problem: Problem, layers: str | Iterable[LayerSpec], *, seed: int) -> nn.Module:
    """The network of ``untrained_spec``, initialised from ``seed`` (same seed, same weights)."""
    import torch

    from fhn_automl.learning.mlp import build_model

    spec = untrained_spec(problem, layers, seed=seed)
    torch.manual_seed(seed)
    return build_model(spec)
