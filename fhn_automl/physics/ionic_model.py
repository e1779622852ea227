"""N-state cell models as data: named states, parameters and a stimulus, with equations held symbolically.

An :class:`IonicModel` is what every N-state solver, dataset and metric takes. It is built once, at the
edge, by :mod:`fhn_automl.physics.ionic_sources` (a built-in name, or a user's ``.mmt`` / ``.cellml``
file) and passed down as an object; nothing below re-parses a name or a file.

The equations are SymPy expressions, one per state: ``dy/dt = f(y, p, i_stim)`` with ``p`` the named
parameters and ``i_stim`` the stimulus current, which enters the way the model defines it (TP06:
``dV/dt = -(I_ion + i_stim)``, FHN: ``dU/dt = k (... + I)``). From that one definition the model
generates, on first use, the code every backend runs, so no backend can drift from another:

- :meth:`IonicModel.rhs` and :meth:`IonicModel.rush_larsen_rates`: Python over an array module ``xp``
  (NumPy, CuPy or torch: the same generated function, the array library is an argument);
- :attr:`IonicModel.numba_source`: a scalar step for the numba CPU twin (``ionic_solvers``);
- :meth:`IonicModel.cuda_source`: a CUDA C++ kernel, compiled by NVRTC through CuPy.

Rush-Larsen: a state whose derivative is linear in itself, ``f = a + b x`` with ``a`` and ``b`` free
of ``x`` (the Hodgkin-Huxley gates, ``(x_inf - x) / tau``), may be stepped exactly for frozen ``a, b``:
``x + f (exp(b dt) - 1) / b``. :attr:`IonicModel.gates` lists those states (the membrane potential is
never one), found from the equations rather than declared, so a user's model file gets them too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fhn_automl.physics import _ionic_codegen as _codegen
from fhn_automl.physics._ionic_codegen import STIMULUS_SYMBOL

__all__ = ["CellModelError", "IonicModel", "Parameter", "ParameterRangeError", "StateVariable",
           "StimulusProtocol", "UnknownCellModelError", "ModelFileError"]


class CellModelError(ValueError):
    """Base of the named errors about N-state cell models (the CLI maps them to exit code 2)."""


class UnknownCellModelError(CellModelError):
    """A cell-model name that is neither built in nor an existing model file; the message lists both."""


class ModelFileError(CellModelError):
    """A model file that cannot be read or parsed, or that lacks what a cell model needs."""


class ParameterRangeError(CellModelError):
    """A parameter value outside the range the model declares for it (or an unknown parameter name)."""


@dataclass(frozen=True)
class StateVariable:
    """One state: its name, unit (free text, as the source writes it) and default initial value."""

    name: str
    unit: str
    default: float


@dataclass(frozen=True)
class Parameter:
    """One parameter: its default and the closed range a caller may set it in."""

    name: str
    unit: str
    default: float
    range: tuple[float, float]

    def check(self, value: float, model: str) -> None:
        low, high = self.range
        if not (low <= value <= high):  # also rejects NaN
            raise ParameterRangeError(f"{model}: parameter {self.name} = {value!r} is outside its range "
                                      f"[{low:g}, {high:g}] {self.unit}".rstrip())


@dataclass(frozen=True)
class StimulusProtocol:
    """A periodic square pulse: ``amplitude`` for ``duration`` from ``start``, every ``period``.

    ``period = 0`` means one pulse only; ``duration >= period`` a constant current (FHN's I).
    """

    amplitude: float
    duration: float
    period: float
    start: float = 0.0

    def current(self, t: Any, xp: Any = np) -> Any:
        """``i_stim`` at times ``t`` (float64 arithmetic; the kernels use the same formula)."""
        since = t - self.start
        if self.period > 0:
            since = since - xp.floor(since / self.period) * self.period
        on = (t >= self.start) & (since < self.duration)
        return xp.where(on, self.amplitude, 0.0)

    def with_period(self, period: float) -> StimulusProtocol:
        return StimulusProtocol(self.amplitude, self.duration, period, self.start)

    def silenced(self) -> StimulusProtocol:
        """The same protocol with no stimulus: what a ``cell_state`` problem's free trajectories run under
        (its pulse edges stay, so the reference restarts where the solver's protocol would change)."""
        return StimulusProtocol(0.0, self.duration, self.period, self.start)


@dataclass(frozen=True, eq=False)
class IonicModel:
    """An N-state cell model. Build it through :mod:`ionic_sources`; treat it as immutable.

    ``derivatives[i]`` is ``d states[i] / dt`` as a SymPy expression in the symbols named after the
    states, the parameters and ``i_stim`` (:data:`STIMULUS_SYMBOL`). ``voltage`` names the membrane
    potential state (the one the metrics read); ``time_unit`` is the unit of ``t`` (ms for ionic models).
    ``source`` records where the equations came from (package and version, or file path and digest).
    """

    name: str
    states: tuple[StateVariable, ...]
    parameters: tuple[Parameter, ...]
    stimulus: StimulusProtocol
    voltage: str
    derivatives: tuple[Any, ...]
    source: str
    time_unit: str = "ms"
    #: a dt at which forward Euler is stable and accurate enough for datasets (ms for ionic models)
    default_dt: float = 0.01
    #: parameters a dataset varies by default (the conductances that make cells differ)
    varied: tuple[str, ...] = ()
    description: str = ""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.derivatives) != len(self.states):
            raise ModelFileError(f"{self.name}: {len(self.states)} states but {len(self.derivatives)} equations")
        if self.voltage not in self.state_names:
            raise ModelFileError(f"{self.name}: voltage state {self.voltage!r} is not one of its states")
        unknown = set(self.varied) - set(self.parameter_names)
        if unknown:
            raise ModelFileError(f"{self.name}: varied parameters {sorted(unknown)} are not parameters")

    # ------------------------------------------------------------------------------ names, values

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def voltage_index(self) -> int:
        return self.state_names.index(self.voltage)

    def default_state(self) -> np.ndarray:
        return np.array([s.default for s in self.states], dtype=np.float64)

    def parameter_values(self, overrides: dict[str, float] | None = None) -> np.ndarray:
        """The parameter vector in declaration order: defaults, with ``overrides`` checked and applied.

        Raises :class:`ParameterRangeError` for an unknown name or a value outside its range.
        """
        values = {p.name: p.default for p in self.parameters}
        by_name = {p.name: p for p in self.parameters}
        for name, value in (overrides or {}).items():
            if name not in by_name:
                raise ParameterRangeError(f"{self.name} has no parameter {name!r}; it has: "
                                          f"{', '.join(self.parameter_names)}")
            by_name[name].check(float(value), self.name)
            values[name] = float(value)
        return np.array([values[p.name] for p in self.parameters], dtype=np.float64)

    def check_parameters(self, params: np.ndarray) -> None:
        """Every column of ``params`` (``(n_params,)`` or ``(n_params, n)``) inside the declared ranges."""
        params = np.asarray(params, dtype=np.float64)
        if params.shape[0] != len(self.parameters):
            raise ParameterRangeError(f"{self.name}: expected {len(self.parameters)} parameters, got {params.shape[0]}")
        for row, parameter in zip(params.reshape(len(self.parameters), -1), self.parameters):
            low, high = parameter.range
            bad = ~((row >= low) & (row <= high))
            if bad.any():
                parameter.check(float(row[np.argmax(bad)]), self.name)

    @property
    def digest(self) -> str:
        """SHA-256 of the equations, names, defaults and stimulus: a cache key for pre-paced states and
        datasets (a changed model file gives a new key)."""
        if "digest" not in self._cache:
            text = repr((self.name, self.states, self.parameters, self.stimulus, self.voltage,
                         [str(d) for d in self.derivatives]))
            self._cache["digest"] = hashlib.sha256(text.encode()).hexdigest()
        return self._cache["digest"]

    # ---------------------------------------------------------------------------- generated code

    @property
    def gates(self) -> tuple[str, ...]:
        """States Rush-Larsen integrates exactly (linear in themselves; never the voltage)."""
        return tuple(self.state_names[i] for i in self._gate_indices)

    @property
    def _gate_indices(self) -> tuple[int, ...]:
        if "gates" not in self._cache:
            import sympy

            gates = []
            for i, (state, derivative) in enumerate(zip(self.states, self.derivatives)):
                symbol = sympy.Symbol(state.name)
                if state.name == self.voltage or symbol not in derivative.free_symbols:
                    continue
                slope = sympy.diff(derivative, symbol)
                if symbol not in slope.free_symbols and slope != 0:
                    gates.append(i)
            self._cache["gates"] = tuple(gates)
        return self._cache["gates"]

    def _gate_slopes(self) -> list[Any]:
        import sympy

        return [sympy.diff(self.derivatives[i], sympy.Symbol(self.state_names[i])) for i in self._gate_indices]

    def rhs(self, y: Any, i_stim: Any, params: Any, xp: Any = np) -> list[Any]:
        """``[dy_i/dt]`` for the states ``y`` (a sequence of arrays, or an array whose first axis is the
        state), the stimulus ``i_stim`` and parameters ``params`` (scalars or arrays per cell), all
        broadcasting; ``xp`` is the array module (``numpy``, ``cupy`` or ``torch``)."""
        return self._xp_functions()[0](xp, *_unstack(y, self.n_states), i_stim, *_unstack(params, len(self.parameters)))

    def rush_larsen_rates(self, y: Any, i_stim: Any, params: Any, xp: Any = np) -> tuple[list[Any], list[Any]]:
        """``(dy/dt for every state, b for every gate)`` with ``dx/dt = a + b x`` for the gates: what
        one Rush-Larsen step needs, from one shared evaluation."""
        out = self._xp_functions()[1](xp, *_unstack(y, self.n_states), i_stim, *_unstack(params, len(self.parameters)))
        return out[:self.n_states], out[self.n_states:]

    def _xp_functions(self) -> tuple[Any, Any]:
        if "xp" not in self._cache:
            self._cache["xp"] = (
                _codegen.compile_xp_function(self, with_gate_slopes=False),
                _codegen.compile_xp_function(self, with_gate_slopes=True),
            )
        return self._cache["xp"]

    @property
    def numba_source(self) -> str:
        """Python source of ``step(y, out, i_stim, p, dt, rush_larsen)`` on scalars for the numba twin."""
        if "numba" not in self._cache:
            self._cache["numba"] = _codegen.numba_step_source(self)
        return self._cache["numba"]

    def cuda_source(self) -> str:
        """CUDA C++ source: entry points ``<prefix>_f32`` / ``<prefix>_f64`` (see ``_ionic_codegen``)."""
        if "cuda" not in self._cache:
            self._cache["cuda"] = _codegen.cuda_kernel_source(self)
        return self._cache["cuda"]

    @property
    def cuda_entry_prefix(self) -> str:
        return "ionic_" + "".join(c if c.isalnum() else "_" for c in self.name)

    def __repr__(self) -> str:
        return (f"IonicModel({self.name!r}, {self.n_states} states, {len(self.parameters)} parameters, "
                f"{len(self.gates)} Rush-Larsen gates, source={self.source!r})")




def _unstack(values: Any, count: int) -> list[Any]:
    """A list of ``count`` per-row values from a sequence or an array whose first axis has ``count`` rows."""
    if isinstance(values, (list, tuple)):
        items = list(values)
    elif np.ndim(values) == 0 and count == 1:
        items = [values]
    else:
        items = [values[i] for i in range(len(values))]
    if len(items) != count:
        raise ValueError(f"expected {count} rows, got {len(items)}")
    return items


def default_range(value: float, factor: float = 10.0) -> tuple[float, float]:
    """The range a parameter gets when its source declares none: ``value / factor .. value * factor``
    (sign kept), or ``[-1, 1]`` around zero. Wide on purpose: it guards against typos and unit slips,
    and a study that wants physiological bounds sets its own."""
    if value == 0:
        return (-1.0, 1.0)
    low, high = value / factor, value * factor
    return (min(low, high), max(low, high))
