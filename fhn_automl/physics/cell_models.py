"""Cell models as data: parameters in a frozen dataclass, the right-hand side as a pure function.

The right-hand side uses only arithmetic, so the same code runs on NumPy, CuPy and torch tensors
(the PINN residual calls it with tensors that carry gradients).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar


class CellModel(abc.ABC):
    """A two-variable excitable cell model dU/dt = f(U, W, I), dW/dt = g(U, W)."""

    state_names: ClassVar[tuple[str, str]] = ("u", "w")

    @abc.abstractmethod
    def rhs(self, u: Any, w: Any, i_app: Any) -> tuple[Any, Any]:
        """(dU/dt, dW/dt) for arrays or tensors of matching shape; ``i_app`` broadcasts."""

    @abc.abstractmethod
    def kernel_constants(self) -> dict[str, float]:
        """The scalar constants the compiled Euler kernels take, by name."""

    @property
    @abc.abstractmethod
    def excitation_threshold(self) -> float:
        """The U of the unstable equilibrium that separates sub- from supra-threshold initial states:
        where solutions change fastest with the initial state, so where surrogates err most."""


@dataclass(frozen=True)
class FitzHughNagumo(CellModel):
    """The FHN variant of the thesis' experiments.

    dU/dt = k * (U (U - alpha) (1 - U) - W + I)
    dW/dt = eps * (beta * U - gamma * W)      (defaults: 0.04 U - 0.16 W)
    """

    k: float = 10.0
    alpha: float = 0.4
    eps: float = 0.2
    beta: float = 0.2
    gamma: float = 0.8

    def rhs(self, u: Any, w: Any, i_app: Any) -> tuple[Any, Any]:
        du = self.k * (u * (u - self.alpha) * (1.0 - u) - w + i_app)
        dw = self.eps * (self.beta * u - self.gamma * w)
        return du, dw

    @property
    def excitation_threshold(self) -> float:
        return self.alpha

    def kernel_constants(self) -> dict[str, float]:
        return {"k": self.k, "alpha": self.alpha, "eps": self.eps, "beta": self.beta, "gamma": self.gamma}


CELL_MODELS: dict[str, CellModel] = {"fhn": FitzHughNagumo()}
