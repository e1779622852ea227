"""The model spec: everything needed to rebuild a trained surrogate without the training code.

A spec is JSON beside the ``state_dict`` (STYLE habit 6): the layer sequence, input names and raw
ranges (the network scales them to [-1, 1] itself), the output standardisation, the time windows
and a version. ``mlp.build_model(spec)`` turns it back into a module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fhn_automl.learning.architecture import LayerSpec, format_layers, parse_layers
from fhn_automl.learning.windows import WindowPlan

SPEC_VERSION = 1

ModelKind = Literal["ddnn", "pinn", "iter"]
WindowMode = Literal["none", "split", "chained"]
MODEL_KINDS: tuple[str, ...] = ("ddnn", "pinn", "iter")
WINDOW_MODES: tuple[str, ...] = ("none", "split", "chained")


@dataclass(frozen=True)
class ModelSpec:
    """A trained surrogate described as data.

    ``window_edges``: for ``split`` the boundaries t_0 < t_1 < ... < t_K of the K windows (one
    network each); for ``chained`` ``(0, T_w)``, the short window the one network was trained on,
    marched to ``horizon`` at inference. ``input_scaling`` False keeps the thesis' raw inputs.
    """

    #: ``Problem.key``: a registered name, or a model file's canonical ``beat:/PATH?...`` spec
    problem: str
    kind: str
    layers: tuple[LayerSpec, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ranges: dict[str, tuple[float, float]]
    input_scaling: bool = True
    output_mean: tuple[float, ...] = ()
    output_std: tuple[float, ...] = ()
    window_mode: str = "none"
    window_edges: tuple[float, ...] = ()
    horizon: float | None = None
    dt_net: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; known: {', '.join(MODEL_KINDS)}")
        if self.window_mode not in WINDOW_MODES:
            raise ValueError(f"unknown window mode {self.window_mode!r}; known: {', '.join(WINDOW_MODES)}")
        missing = [name for name in self.inputs if name not in self.ranges]
        if missing:
            raise ValueError(f"spec has no range for inputs {missing}")
        n_out = len(self.outputs)
        if not self.output_mean:
            object.__setattr__(self, "output_mean", (0.0,) * n_out)
        if not self.output_std:
            object.__setattr__(self, "output_std", (1.0,) * n_out)
        if len(self.output_mean) != n_out or len(self.output_std) != n_out:
            raise ValueError("output_mean / output_std need one entry per output")
        if self.window_mode != "none" and "t" not in self.inputs:
            raise ValueError("time windows need a 't' input")
        if self.window_mode == "split" and len(self.window_edges) < 3:
            raise ValueError("split windows need at least two windows (three edges)")
        if self.window_mode == "chained" and (len(self.window_edges) != 2 or self.horizon is None):
            raise ValueError("chained windows need window_edges=(0, T_w) and a horizon")
        if list(self.window_edges) != sorted(set(self.window_edges)):
            raise ValueError(f"window edges must increase strictly: {self.window_edges}")

    @property
    def n_in(self) -> int:
        return len(self.inputs)

    @property
    def n_out(self) -> int:
        return len(self.outputs)

    @property
    def n_networks(self) -> int:
        return WindowPlan(mode=self.window_mode, edges=self.window_edges).n_networks

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "problem": self.problem,
            "kind": self.kind,
            "layers": format_layers(self.layers),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "ranges": {name: list(bounds) for name, bounds in self.ranges.items()},
            "input_scaling": self.input_scaling,
            "output_mean": list(self.output_mean),
            "output_std": list(self.output_std),
            "window_mode": self.window_mode,
            "window_edges": list(self.window_edges),
            "horizon": self.horizon,
            "dt_net": self.dt_net,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        version = int(data.get("version", 0))
        if version > SPEC_VERSION:
            raise ValueError(f"spec version {version} is newer than this code understands ({SPEC_VERSION})")
        return cls(
            problem=data["problem"], kind=data["kind"], layers=parse_layers(data["layers"]),
            inputs=tuple(data["inputs"]), outputs=tuple(data["outputs"]),
            ranges={name: (float(lo), float(hi)) for name, (lo, hi) in data["ranges"].items()},
            input_scaling=bool(data.get("input_scaling", True)),
            output_mean=tuple(float(v) for v in data.get("output_mean", ())),
            output_std=tuple(float(v) for v in data.get("output_std", ())),
            window_mode=data.get("window_mode", "none"),
            window_edges=tuple(float(v) for v in data.get("window_edges", ())),
            horizon=None if data.get("horizon") is None else float(data["horizon"]),
            dt_net=None if data.get("dt_net") is None else float(data["dt_net"]),
            metadata=dict(data.get("metadata", {})), version=version,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        return cls.from_dict(json.loads(text))
