"""The activation registry: every activation a hidden layer may use, defined once.

One row per activation holds its canonical name (the layer notation's ``silu`` in ``silu-32``), the
spellings the notation also accepts (thesis and torch class names), a factory of its torch module
(TorchScript-able: it goes into the saved ``model.ts``) and its value-and-derivative, which the
forward-mode time tangent of the PINN residual uses (``mlp.SurrogateMLP.time_tangent``).

This module imports torch only when a network is built or run, so the names and aliases serve the
search-file validation on a driver without torch (``architecture`` and ``search.space`` read them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Slope of LeakyReLU for negative inputs (torch's default).
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """One activation: ``module()`` a fresh torch module, ``value_and_slope(z)`` sigma(z), sigma'(z)."""

    name: str
    aliases: tuple[str, ...]
    module: Callable[[], Any]
    value_and_slope: Callable[[Any], tuple[Any, Any]]


@functools.cache
def _sin_class() -> type:
    """The periodic activation module of the thesis (SIN layers in Tables 8 and 10).

    Made on first use so that this module imports without torch; reachable as ``activations.Sin``
    (module ``__getattr__`` below), which is where pickle and TorchScript look it up.
    """
    import torch

    class Sin(torch.nn.Module):
        """sin(x), element-wise."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sin(x)

    Sin.__module__ = __name__
    Sin.__qualname__ = "Sin"
    return Sin


def __getattr__(name: str) -> Any:  # PEP 562: ``activations.Sin`` without importing torch up front
    if name == "Sin":
        return _sin_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch() -> Any:
    import torch

    return torch


def _silu(z: Any) -> tuple[Any, Any]:
    s = _torch().sigmoid(z)
    a = z * s
    return a, _torch().addcmul(s, a, 1.0 - s)  # s (1 + z (1 - s)) in fewer operations


def _tanh(z: Any) -> tuple[Any, Any]:
    a = _torch().tanh(z)
    return a, 1.0 - a * a


def _elu(z: Any) -> tuple[Any, Any]:
    torch = _torch()
    a = torch.nn.functional.elu(z)
    return a, torch.where(z > 0, torch.ones_like(z), a + 1.0)


def _relu(z: Any) -> tuple[Any, Any]:
    return _torch().relu(z), (z > 0).to(z.dtype)


def _leakyrelu(z: Any) -> tuple[Any, Any]:
    torch = _torch()
    slope = torch.where(z > 0, torch.ones_like(z), torch.full_like(z, LEAKY_SLOPE))
    return z * slope, slope


def _sigmoid(z: Any) -> tuple[Any, Any]:
    s = _torch().sigmoid(z)
    return s, s * (1.0 - s)


def _sin(z: Any) -> tuple[Any, Any]:
    torch = _torch()
    return torch.sin(z), torch.cos(z)


#: The registry, in the order the thesis lists activations; ``sin`` is its periodic activation.
ACTIVATION_REGISTRY: dict[str, Activation] = {row.name: row for row in (
    Activation("silu", ("swish", "nn.silu"), lambda: _torch().nn.SiLU(), _silu),
    Activation("tanh", ("nn.tanh",), lambda: _torch().nn.Tanh(), _tanh),
    Activation("elu", ("nn.elu",), lambda: _torch().nn.ELU(), _elu),
    Activation("relu", ("nn.relu",), lambda: _torch().nn.ReLU(), _relu),
    Activation("leakyrelu", ("leaky_relu", "nn.leakyrelu"), lambda: _torch().nn.LeakyReLU(LEAKY_SLOPE),
               _leakyrelu),
    Activation("sigmoid", ("nn.sigmoid",), lambda: _torch().nn.Sigmoid(), _sigmoid),
    Activation("sin", ("sine",), lambda: _sin_class()(), _sin),
)}

#: Canonical activation names, in registry order.
ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_REGISTRY)

_BY_SPELLING = {spelling: row.name for row in ACTIVATION_REGISTRY.values()
                for spelling in (row.name, *row.aliases)}


def canonical_activation(spelling: str) -> str | None:
    """The canonical name of an activation spelling (case-insensitive), None if unknown."""
    return _BY_SPELLING.get(spelling.lower())


def get_activation(name: str) -> Activation:
    """The registry row of a canonical name or alias; ``ValueError`` naming the known ones."""
    canonical = canonical_activation(name)
    if canonical is None:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATION_REGISTRY[canonical]
