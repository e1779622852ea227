"""The named problems of the thesis (Table 1 and chapter 4), as data.

A problem says what the network maps from and to, the input ranges, the time span, how the applied
current depends on the parameter K, how its datasets are sampled and how big they are by default.
Nothing here knows about solvers or files: the solver and the datasets code take a ``Problem``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fhn_automl.physics.cell_models import CELL_MODELS, CellModel

ProblemKind = Literal["trajectory", "iterator"]
Sampling = Literal["lhs", "grid", "fixed"]

#: Initial-condition box of the thesis: every state seen in the FHN phase plane.
U0_RANGE = (0.0, 1.0)
W0_RANGE = (0.0, 0.18)
K_RANGE = (0.0, 1.0)


class UnknownProblemError(KeyError):
    """Raised for a problem name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Problem:
    """One learning problem over a cell model.

    ``inputs`` are the raw network inputs, in order; ``outputs`` the predicted states.
    Trajectory problems map (t, initial state[, k]) -> state(t); iterator problems map
    (u, w[, k]) -> state after ``dt_net`` time units.
    The applied current is ``i_base + i_per_k * k`` (k = 0 when the problem has no k input).
    """

    name: str
    description: str
    kind: ProblemKind
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    ranges: dict[str, tuple[float, float]]
    t_span: tuple[float, float]
    i_base: float
    i_per_k: float = 0.0
    cell_model: str = "fhn"
    #: how initial conditions are drawn: Latin hypercube, a uniform grid, or one fixed point
    sampling: Sampling = "lhs"
    #: the fixed initial condition of problem A
    fixed_initial_state: tuple[float, float] | None = None
    #: thesis dataset sizes: trajectories (or pairs for iterators) for training and validation
    n_train: int = 5_000
    n_val: int = 5_000
    #: iterator problems: initial conditions whose whole trajectories validate the rollout
    n_rollout_val: int = 0
    #: Euler step used to make training data, and the spacing of the stored states
    solver_dt: float = 0.01
    save_dt: float = 0.1
    #: iterator problems: the time one network evaluation advances the state
    dt_net: float | None = None
    #: iterator problems: the horizon of the validation rollout
    rollout_t_end: float | None = None
    #: named extra datasets (problem A: 'scarce' 10 points, 'complete' 1000 points)
    extra_sets: dict[str, int] = field(default_factory=dict)

    @property
    def has_k(self) -> bool:
        return "k" in self.inputs

    @property
    def model(self) -> CellModel:
        return CELL_MODELS[self.cell_model]

    @property
    def t_end(self) -> float:
        return self.t_span[1]

    def i_app(self, k=0.0):
        """Applied current for parameter ``k`` (arrays or tensors broadcast)."""
        return self.i_base + self.i_per_k * k

    def initial_state_ranges(self) -> dict[str, tuple[float, float]]:
        """Ranges of the sampled quantities (u0, w0[, k]) of a trajectory problem."""
        keys = ("u0", "w0", "k") if self.kind == "trajectory" else ("u", "w", "k")
        return {key: self.ranges[key] for key in keys if key in self.ranges}


def _trajectory(name: str, description: str, *, with_k: bool, t_end: float, i_base: float,
                i_per_k: float = 0.0, n_train: int, n_val: int) -> Problem:
    inputs = ("t", "u0", "w0", "k") if with_k else ("t", "u0", "w0")
    ranges = {"t": (0.0, t_end), "u0": U0_RANGE, "w0": W0_RANGE}
    if with_k:
        ranges["k"] = K_RANGE
    return Problem(name=name, description=description, kind="trajectory", inputs=inputs,
                   outputs=("u", "w"), ranges=ranges, t_span=(0.0, t_end), i_base=i_base,
                   i_per_k=i_per_k, n_train=n_train, n_val=n_val)


PROBLEMS: dict[str, Problem] = {
    "problem_a": Problem(
        name="problem_a",
        description="One solution u(t), U0 = 0.5, W0 = 0, I = 0, t in [0, 20] (thesis 4.1)",
        kind="trajectory", inputs=("t",), outputs=("u", "w"),
        ranges={"t": (0.0, 20.0)}, t_span=(0.0, 20.0), i_base=0.0,
        sampling="fixed", fixed_initial_state=(0.5, 0.0),
        # one trajectory; training points come from the 'scarce' or 'complete' set,
        # validation is the whole trajectory at the stored spacing
        n_train=1, n_val=1, extra_sets={"scarce": 10, "complete": 1000},
    ),
    "problem_b_s": _trajectory(
        "problem_b_s", "Single action potential u(t, U0, W0), I = 0, t in [0, 50] (thesis 4.2.1)",
        with_k=False, t_end=50.0, i_base=0.0, n_train=5_000, n_val=5_000),
    "problem_b_c": _trajectory(
        "problem_b_c", "Autopacing u(t, U0, W0), I = 0.1, t in [0, 50] (thesis 4.2.2, large window)",
        with_k=False, t_end=50.0, i_base=0.1, n_train=5_000, n_val=5_000),
    "problem_b_c_small": _trajectory(
        "problem_b_c_small", "Autopacing u(t, U0, W0), I = 0.1, small window t in [0, 5] (thesis 4.2.2)",
        with_k=False, t_end=5.0, i_base=0.1, n_train=5_000, n_val=5_000),
    "problem_b_c_iter": Problem(
        name="problem_b_c_iter",
        description="Autopacing iterator (U, W) -> state 2 time units later, I = 0.1 (thesis 4.2.3)",
        kind="iterator", inputs=("u", "w"), outputs=("u_next", "w_next"),
        ranges={"u": U0_RANGE, "w": W0_RANGE}, t_span=(0.0, 2.0), i_base=0.1,
        n_train=5_000_000, n_val=100_000, n_rollout_val=10_000, dt_net=2.0, rollout_t_end=50.0,
    ),
    "problem_c": _trajectory(
        "problem_c", "Families u(t, U0, W0, K), I = 0.08 + 0.04 K, t in [0, 50] (thesis 4.3)",
        with_k=True, t_end=50.0, i_base=0.08, i_per_k=0.04, n_train=50_000, n_val=50_000),
}


def get_problem(name: str) -> Problem:
    """The registered problem called ``name``; an ``UnknownProblemError`` lists the known names."""
    try:
        return PROBLEMS[name]
    except KeyError:
        known = ", ".join(sorted(PROBLEMS))
        raise UnknownProblemError(f"unknown problem {name!r}; known problems: {known}") from None
