"""The named problems of the thesis (Table 1 and chapter 4), as data.

A problem says what the network maps from and to, the input ranges, the time span, how the applied
current depends on the parameter K, how its datasets are sampled and how big they are by default.
Nothing here knows about solvers or files: the solver and the datasets code take a ``Problem``. The one
exception is ``beat:MODEL_FILE?OPTIONS`` (:func:`beat_file_problem`): the problem of a user's cell-model
file is made from what the file declares (its protocol's cycle, its voltage state and units), so the file
is read (``physics.ionic_sources``, lazily) when such a spec is resolved.

Two boxes per problem, kept apart:

* ``domain``: where initial states (and K) are sampled, the thesis' Table 1 box U0 in (0, 1),
  W0 in (0, 0.18), K in (0, 1). Datasets, validation rollouts and the PINN collocation use it.
* ``ranges``: what the network inputs can be, for input scaling. Marching models feed their own
  states back as inputs (the iterator's (u, w), a chained window's (u0, w0)), and the dynamics leave
  the Table 1 box: at I = 0.1 about 22 % of the iterator's rollout states and of the chained-window
  start states lie outside it (U down to -0.12, up to 1.11; W up to 0.19 in problem C). So every
  ``ranges`` contains both the domain and every state the dynamics visit from it within the
  problem's horizon, measured with the solver (``VISITED_STATES``); a test re-measures it.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from fhn_automl.physics.cell_models import CELL_MODELS, CellModel
from fhn_automl.physics.ionic_model import CellModelError
from fhn_automl.physics.ionic_solvers import METHODS
from fhn_automl.physics.ionic_sources import resolve_cell_model

ProblemKind = Literal["trajectory", "iterator", "beat", "cell_state"]
Sampling = Literal["lhs", "grid", "fixed"]

#: Initial-condition box of the thesis (Table 1): "every state seen in the FHN phase plane".
U0_RANGE = (0.0, 1.0)
W0_RANGE = (0.0, 0.18)
K_RANGE = (0.0, 1.0)

#: The states (U, W) that forward Euler (dt = 0.01, float64) visits from the domain within each
#: problem's horizon: 40,000 Latin-hypercube initial states plus 804 on the box's edges (K at 0,
#: 0.5, 1 for problem C), every step kept. Measured 2026-12 (the extremes come from the edges:
#: U0 = 1, W0 = 0 overshoots above 1 with I > 0; U0 ~ 0, W0 = 0.18 undershoots below 0).
VISITED_STATES: dict[str, dict[str, tuple[float, float]]] = {
    "I = 0, t <= 50 (B_S)": {"u": (-0.2200, 1.0000), "w": (0.0, 0.1811)},
    "I = 0.1, t <= 50 (B_C, iterator rollouts)": {"u": (-0.1157, 1.1090), "w": (0.0, 0.1839)},
    "I = 0.1, t <= 5 (B_C small)": {"u": (-0.1157, 1.1090), "w": (0.0, 0.1839)},
    "I in [0.08, 0.12], t <= 50 (C)": {"u": (-0.1402, 1.1283), "w": (0.0, 0.1891)},
}
#: Input-scaling ranges of the state inputs: the visited states above with a margin of at least
#: 0.01 (W can dip a hair below 0 where U < 0), rounded outward.
STATE_RANGES_I0 = {"u": (-0.25, 1.05), "w": (-0.01, 0.2)}
STATE_RANGES_I01 = {"u": (-0.15, 1.15), "w": (-0.01, 0.2)}
STATE_RANGES_C = {"u": (-0.17, 1.17), "w": (-0.01, 0.2)}


class UnknownProblemError(KeyError):
    """Raised for a problem name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class ProblemSpecError(UnknownProblemError):
    """A ``beat:MODEL_FILE[?OPTIONS]`` problem that cannot be made: the message names the bad part (the
    file, an option, a value). A subclass of ``UnknownProblemError``, so every caller that handles an
    unknown problem name handles it too."""


@dataclass(frozen=True)
class BeatSetup:
    """How a ``beat`` problem's data are made from an N-state cell model (issue 22).

    The learned beat is the ``n_prepace + 1``-th beat of the model's stimulus protocol, paced from the
    model's default state with the cell's parameters (the ``scaled`` ones multiplied by the network's
    scale inputs, the rest at their defaults), by ``method`` at step ``dt``; ``t`` is the time since that
    beat's cycle start, stored every ``save_dt``. ``outputs`` maps each network output to a model state.
    """

    #: a built-in cell-model name or a model file's path (``physics.ionic_sources.resolve_cell_model``)
    cell_model: str
    #: parameters whose scale factors (``<name>_scale`` inputs) are drawn per cell
    scaled: tuple[str, ...]
    #: output name -> the model's state it is
    outputs: dict[str, str]
    scale_range: tuple[float, float] = (0.5, 2.0)
    n_prepace: int = 100
    #: step of the stored beat, and of the pre-pacing beats (coarser: they only carry the slow state over)
    dt: float = 0.02
    pace_dt: float = 0.1
    method: str = "rush_larsen"
    #: the cycle length (ms) of the model's protocol; checked against the model when data are made
    period: float = 1000.0
    #: units of the outputs, for model cards (output name -> unit)
    units: dict[str, str] = field(default_factory=dict)
    #: the output that is the membrane potential (the one the physiology metrics read)
    voltage_output: str = "V"

    @property
    def scale_inputs(self) -> tuple[str, ...]:
        return tuple(f"{name}_scale" for name in self.scaled)


@dataclass(frozen=True)
class StateSetup:
    """How a ``cell_state`` problem's data are made: the thesis' initial-state problem (problems B/C) for an
    N-state cell model whose whole state is the network's input and output (issue 22).

    Each trajectory starts from an initial state drawn over the problem's ``domain`` (one ``<state>0`` input
    per state) and runs free (no stimulus: a state above threshold fires, as FitzHugh-Nagumo's problem B
    does) for ``t_span``, by ``method`` at step ``dt``, stored every ``save_dt``, with the model's default
    parameters. ``outputs`` maps each output to a state; every state is an output, so the ODE residual
    (PINN) exists."""

    cell_model: str
    outputs: dict[str, str]
    dt: float
    method: str = "rush_larsen"
    units: dict[str, str] = field(default_factory=dict)

    @property
    def initial_inputs(self) -> tuple[str, ...]:
        return tuple(f"{output}0" for output in self.outputs)


@dataclass(frozen=True)
class Problem:
    """One learning problem over a cell model.

    ``inputs`` are the raw network inputs, in order; ``outputs`` the predicted states.
    Trajectory problems map (t, initial state[, k]) -> state(t); iterator problems map
    (u, w[, k]) -> state after ``dt_net`` time units.
    The applied current is ``i_base + i_per_k * k`` (k = 0 when the problem has no k input).
    ``ranges``: every input's scaling range; ``domain``: the sampled quantities' box (see the module
    docstring; ``ranges`` contains ``domain``).
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
    #: where initial states (u0, w0[, k]; iterators: u, w[, k]) are sampled; empty = ``ranges``
    domain: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: iterator problems: the share of training / validation pairs whose state is drawn from the
    #: states the dynamics visit (Euler from the domain, stopped at a random time up to the
    #: rollout horizon) instead of homogeneously from the domain, so the rollout's states are in
    #: the training distribution
    visited_fraction: float = 0.0
    #: named extra datasets (problem A: 'scarce' 10 points, 'complete' 1000 points)
    extra_sets: dict[str, int] = field(default_factory=dict)
    #: ``beat`` problems: the N-state model and how its beats are made (None for FitzHugh-Nagumo problems)
    beat: BeatSetup | None = None
    #: ``cell_state`` problems: the N-state model and how its free trajectories are made
    state: StateSetup | None = None
    #: a problem of a user's model file: its canonical ``beat:/ABSOLUTE/PATH[?OPTIONS]`` spec, the string
    #: ``get_problem`` makes it from again in any process; empty for registered problems (their ``name``)
    spec: str = ""

    @property
    def key(self) -> str:
        """What travels where the problem must be found again (training configs, trial specs, MLflow's
        ``problem`` param, a model's spec.json): ``get_problem(problem.key)`` is this problem. ``name``
        stays a safe identifier for folders and registered-model names."""
        return self.spec or self.name

    @property
    def has_k(self) -> bool:
        return "k" in self.inputs

    @property
    def is_n_state(self) -> bool:
        """A problem of an N-state ionic model (``beat`` or ``cell_state``): its data, PINN residual and
        verdict come from the model's own solver (physics.cell_datasets, post.beat_benchmark)."""
        return self.kind in ("beat", "cell_state")

    @property
    def model(self) -> CellModel:
        ionic = self.beat or self.state
        if ionic is not None:
            raise TypeError(f"{self.name} is a {self.kind} problem of the N-state model {ionic.cell_model!r}: "
                            f"its equations are an IonicModel (physics.ionic_sources.resolve_cell_model), "
                            f"not a two-variable CellModel")
        return CELL_MODELS[self.cell_model]

    @property
    def t_end(self) -> float:
        return self.t_span[1]

    def i_app(self, k=0.0):
        """Applied current for parameter ``k`` (arrays or tensors broadcast)."""
        return self.i_base + self.i_per_k * k

    def initial_state_ranges(self) -> dict[str, tuple[float, float]]:
        """The domain of the sampled quantities: (u0, w0[, k]) of a trajectory problem, (u, w[, k])
        of an iterator (the thesis' Table 1 box)."""
        if self.state is not None:
            keys = self.state.initial_inputs
        else:
            keys = ("u0", "w0", "k") if self.kind == "trajectory" else ("u", "w", "k")
        box = self.domain or self.ranges
        return {key: box[key] for key in keys if key in box}

    def domain_range(self, name: str) -> tuple[float, float]:
        """The sampled range of input ``name`` (the domain), else its scaling range (t)."""
        return (self.domain or self.ranges).get(name, self.ranges[name])


def _trajectory(name: str, description: str, *, with_k: bool, t_end: float, i_base: float,
                i_per_k: float = 0.0, n_train: int, n_val: int,
                state_ranges: dict[str, tuple[float, float]]) -> Problem:
    inputs = ("t", "u0", "w0", "k") if with_k else ("t", "u0", "w0")
    domain = {"u0": U0_RANGE, "w0": W0_RANGE}
    # (u0, w0) scale over the visited states: a chained window restarts from them
    ranges = {"t": (0.0, t_end), "u0": state_ranges["u"], "w0": state_ranges["w"]}
    if with_k:
        domain["k"] = ranges["k"] = K_RANGE
    return Problem(name=name, description=description, kind="trajectory", inputs=inputs,
                   outputs=("u", "w"), ranges=ranges, t_span=(0.0, t_end), i_base=i_base,
                   i_per_k=i_per_k, n_train=n_train, n_val=n_val, domain=domain)


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
        with_k=False, t_end=50.0, i_base=0.0, n_train=5_000, n_val=5_000, state_ranges=STATE_RANGES_I0),
    "problem_b_c": _trajectory(
        "problem_b_c", "Autopacing u(t, U0, W0), I = 0.1, t in [0, 50] (thesis 4.2.2, large window)",
        with_k=False, t_end=50.0, i_base=0.1, n_train=5_000, n_val=5_000, state_ranges=STATE_RANGES_I01),
    "problem_b_c_small": _trajectory(
        "problem_b_c_small", "Autopacing u(t, U0, W0), I = 0.1, small window t in [0, 5] (thesis 4.2.2)",
        with_k=False, t_end=5.0, i_base=0.1, n_train=5_000, n_val=5_000, state_ranges=STATE_RANGES_I01),
    "problem_b_c_iter": Problem(
        name="problem_b_c_iter",
        description="Autopacing iterator (U, W) -> state 2 time units later, I = 0.1 (thesis 4.2.3)",
        kind="iterator", inputs=("u", "w"), outputs=("u_next", "w_next"),
        ranges=dict(STATE_RANGES_I01), domain={"u": U0_RANGE, "w": W0_RANGE}, t_span=(0.0, 2.0), i_base=0.1,
        n_train=5_000_000, n_val=100_000, n_rollout_val=10_000, dt_net=2.0, rollout_t_end=50.0,
        # half the pairs homogeneous in the domain (the thesis' set), half on visited states
        visited_fraction=0.5,
    ),
    "problem_c": _trajectory(
        "problem_c", "Families u(t, U0, W0, K), I = 0.08 + 0.04 K, t in [0, 50] (thesis 4.3)",
        with_k=True, t_end=50.0, i_base=0.08, i_per_k=0.04, n_train=50_000, n_val=50_000,
        state_ranges=STATE_RANGES_C),
}


#: The thesis' public code samples initial states from a smaller box than its text (FACTS.md, "The
#: thesis' public code"): Problem_C/gen_sets.py draws U0 in [-0.1, 0.81], W0 in [0, 0.12], K in
#: [0, 1] and runs to t = 20; its tables were measured there. Only problem C's code is public; for
#: B_S, B_C and the iterator the same box is an ASSUMPTION (their code is not published), kept with
#: the text's time spans.
CODE_DOMAIN = {"u": (-0.1, 0.81), "w": (0.0, 0.12)}
#: text-domain problem -> its thesis-code variant
CODE_VARIANTS = {"problem_b_s": "problem_b_s_code", "problem_b_c": "problem_b_c_code",
                 "problem_b_c_small": "problem_b_c_small_code", "problem_b_c_iter": "problem_b_c_iter_code",
                 "problem_c": "problem_c_code"}


def _code_variant(problem: Problem, *, measured: bool, t_end: float | None = None, n_train: int | None = None,
                  n_val: int | None = None) -> Problem:
    """``problem`` on the thesis code's initial-state box (and, for C, its time span and set sizes)."""
    keys = ("u0", "w0") if problem.kind == "trajectory" else ("u", "w")
    domain = dict(problem.domain)
    domain[keys[0]], domain[keys[1]] = CODE_DOMAIN["u"], CODE_DOMAIN["w"]
    t_span = (0.0, t_end) if t_end is not None else problem.t_span
    ranges = dict(problem.ranges)
    if "t" in ranges and t_end is not None:
        ranges["t"] = t_span
    source = ("the thesis' public code (Problem_C/gen_sets.py)" if measured
              else "ASSUMED: the box of the thesis' public problem C code; this problem's code is not public")
    return replace(problem, name=CODE_VARIANTS[problem.name], ranges=ranges, t_span=t_span, domain=domain,
                   n_train=n_train or problem.n_train, n_val=n_val or problem.n_val,
                   description=f"{problem.description}; code domain U0 in [-0.1, 0.81], W0 in [0, 0.12]"
                               f"{f', t in [0, {t_end:g}]' if t_end is not None else ''} ({source})")


# Problem C's code: 1e5 Latin-hypercube samples, validation = the first 1,000, training = samples[5000:]
PROBLEMS["problem_c_code"] = _code_variant(PROBLEMS["problem_c"], measured=True, t_end=20.0, n_train=95_000,
                                           n_val=1_000)
for _text in ("problem_b_s", "problem_b_c", "problem_b_c_small", "problem_b_c_iter"):
    PROBLEMS[CODE_VARIANTS[_text]] = _code_variant(PROBLEMS[_text], measured=False)
del _text


def beat_problem(name: str, cell_model: str, *, scaled: tuple[str, ...], outputs: dict[str, str],
                 units: dict[str, str], description: str, n_prepace: int, dt: float, pace_dt: float,
                 period: float = 1000.0, save_dt: float = 1.0, scale_range: tuple[float, float] = (0.5, 2.0),
                 n_train: int = 512, n_val: int = 128, method: str = "rush_larsen",
                 voltage_output: str = "V") -> Problem:
    """A ``beat`` problem: (t, scale factors of ``scaled``) -> ``outputs`` over one paced beat.

    ``n_train`` / ``n_val``: cells (parameter sets) per split at the full size; validation cells are drawn
    apart from the training cells, so the validation figure is on fresh parameter sets."""
    setup = BeatSetup(cell_model=cell_model, scaled=tuple(scaled), outputs=dict(outputs), scale_range=scale_range,
                      n_prepace=n_prepace, dt=dt, pace_dt=pace_dt, period=period, units=dict(units), method=method,
                      voltage_output=voltage_output)
    ranges = {"t": (0.0, period), **{name: tuple(scale_range) for name in setup.scale_inputs}}
    return Problem(name=name, description=description, kind="beat", inputs=("t", *setup.scale_inputs),
                   outputs=tuple(outputs), ranges=ranges, t_span=(0.0, period), i_base=0.0, cell_model=cell_model,
                   n_train=n_train, n_val=n_val, solver_dt=dt, save_dt=save_dt,
                   domain={name: ranges[name] for name in setup.scale_inputs}, beat=setup)


#: TP06 (epicardial): 100 pre-pacing beats. Measured (16 Latin-hypercube cells over the scale box,
#: Rush-Larsen dt 0.1): the median cell's largest |V| change between consecutive beats is 1.3 mV at beat 5,
#: 0.23 mV at 20 and 0.08 mV at 100 (0.03 at 200); a few cells of the box keep ~4-5 mV beat-to-beat (an
#: alternans-like pattern) at any beat count, so "steady" is the median cell's < 0.1 mV.
PROBLEMS["tp06_beat"] = beat_problem(
    "tp06_beat", "tp06_epi", scaled=("gKr", "gKs", "gCaL", "gNa"), outputs={"V": "u"}, units={"V": "mV"},
    description="TP06 epicardial paced beat V(t, gKr, gKs, gCaL, gNa scale factors in [0.5, 2]), 1 Hz, "
                "t in [0, 1000] ms, after 100 pre-pacing beats (issue 22)",
    n_prepace=100, dt=0.02, pace_dt=0.1)
#: the same beat with the intracellular calcium transient as a second output (mM; scaled per output like
#: every output, so the network learns both at their own scale); its Ca_i error is
#: ``final_full_val_other_rmse_pct`` (learning.physiology), the voltage's the same figures as tp06_beat
PROBLEMS["tp06_beat_ca"] = beat_problem(
    "tp06_beat_ca", "tp06_epi", scaled=("gKr", "gKs", "gCaL", "gNa"), outputs={"V": "u", "Ca_i": "cai"},
    units={"V": "mV", "Ca_i": "mM"},
    description="TP06 epicardial paced beat V and Ca_i (t, gKr, gKs, gCaL, gNa scale factors in [0.5, 2]), "
                "1 Hz, t in [0, 1000] ms, after 100 pre-pacing beats (issue 22)",
    n_prepace=100, dt=0.02, pace_dt=0.1)
PROBLEMS["ms_beat"] = beat_problem(
    "ms_beat", "mitchell_schaeffer", scaled=("tau_in", "tau_out", "tau_open", "tau_close"), outputs={"V": "u"},
    units={"V": "dimensionless"},
    description="Mitchell-Schaeffer paced beat V(t, tau_in, tau_out, tau_open, tau_close scale factors in "
                "[0.5, 2]), 1 Hz, t in [0, 1000] ms, after 20 pre-pacing beats (issue 22)",
    n_prepace=20, dt=0.05, pace_dt=0.05)


def state_problem(name: str, cell_model: str, *, outputs: dict[str, str], box: dict[str, tuple[float, float]],
                  t_end: float, dt: float, save_dt: float, units: dict[str, str], description: str,
                  n_train: int, n_val: int, method: str = "rush_larsen") -> Problem:
    """A ``cell_state`` problem: (t, initial value of every state) -> every state at t (``StateSetup``).
    ``box``: each output's initial-value range (the sampled domain)."""
    setup = StateSetup(cell_model=cell_model, outputs=dict(outputs), dt=dt, method=method, units=dict(units))
    domain = {f"{output}0": tuple(box[output]) for output in outputs}
    ranges = {"t": (0.0, t_end), **domain}
    return Problem(name=name, description=description, kind="cell_state", inputs=("t", *setup.initial_inputs),
                   outputs=tuple(outputs), ranges=ranges, t_span=(0.0, t_end), i_base=0.0, cell_model=cell_model,
                   n_train=n_train, n_val=n_val, solver_dt=dt, save_dt=save_dt, domain=domain, state=setup)


#: Mitchell-Schaeffer's (u, h) plane: u and the gate h both in [0, 1]; u0 above the threshold (0.13) with h0
#: high enough fires an action potential (APD ~ 300-400 ms at the default parameters), below it decays, so
#: t in [0, 500] ms covers an upstroke, the plateau and repolarisation. The thesis' problem C, for a second
#: cell model whose whole state is two numbers; TP06 has no such problem (a 19-dimensional box of initial
#: states is mostly unphysiological, and its beats start from paced states: tp06_beat).
PROBLEMS["ms_state"] = state_problem(
    "ms_state", "mitchell_schaeffer", outputs={"u": "u", "h": "h"}, box={"u": (0.0, 1.0), "h": (0.0, 1.0)},
    t_end=500.0, dt=0.05, save_dt=2.0, units={"u": "dimensionless", "h": "dimensionless"},
    description="Mitchell-Schaeffer free response (t, u0, h0) -> (u, h), t in [0, 500] ms, no stimulus, "
                "initial states by Latin hypercube over [0, 1]^2 (issue 22: the thesis' initial-state problem)",
    n_train=4_000, n_val=1_000)


def code_variant(name: str) -> str:
    """The thesis-code variant of problem ``name`` (itself if it is one, or has none: problem A)."""
    get_problem(name)
    return CODE_VARIANTS.get(name, name)


def get_problem(name: str, *, base_dir: str | os.PathLike | None = None) -> Problem:
    """The problem ``name`` stands for: a registered name, or ``beat:MODEL_FILE[?OPTIONS]``, a beat problem
    of a user's model file (:func:`beat_file_problem`; a relative path is taken from ``base_dir``, default
    the working directory). ``UnknownProblemError`` lists the known names; ``ProblemSpecError`` (a
    subclass) names what is wrong with a ``beat:`` spec."""
    if isinstance(name, str) and name.startswith(BEAT_SPEC_PREFIX):
        return beat_file_problem(name, base_dir=base_dir)
    try:
        return PROBLEMS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(PROBLEMS))
        raise UnknownProblemError(f"unknown problem {name!r}; known problems: {known}; or a model file's beat "
                                  f"problem, {BEAT_SPEC_PREFIX}MODEL_FILE[?vary=P1,P2&...]") from None


# ----------------------------------------------------------------------- beat problems of model files
#
# ``beat:PATH[?KEY=VALUE&...]`` makes a beat problem of a user's model file (Myokit .mmt, CellML, or a JSON
# bundle of ``physics.ionic_sources``) wherever a problem name goes. The spec string is the problem's
# identity across processes (a Ray worker re-resolves its trial's ``problem``), so it is made canonical
# once (absolute path, options normalised) and kept as ``Problem.spec``; ``Problem.name`` is a safe
# identifier (``<file stem>_beat`` or ``name=``) for dataset folders and registered-model names.

BEAT_SPEC_PREFIX = "beat:"
#: the options of a ``beat:`` spec: what each sets (and its default), in the canonical spec's order
BEAT_SPEC_OPTIONS = {
    "name": "the problem's name: dataset folder, registered model fhn_automl.NAME (default <file stem>_beat)",
    "vary": "comma-separated parameters whose scale factors are the network's inputs (default: the file's "
            "declared varied parameters; .mmt / CellML files declare none)",
    "outputs": "comma-separated OUTPUT:STATE (or STATE) the network predicts (default V:<membrane potential>)",
    "scale": "LOW:HIGH, the range of every scale factor (default 0.5:2)",
    "n_prepace": "pre-pacing beats before the learned beat (default 50)",
    "dt": "solver step of the learned beat, ms (default the model's default_dt)",
    "pace_dt": "solver step of the pre-pacing beats (default dt)",
    "method": "rush_larsen or euler (default rush_larsen)",
    "save_dt": "spacing of the stored points, a multiple of dt (default 1 ms)",
    "n_train": "training cells at the full size (default 512)",
    "n_val": "validation cells at the full size (default 128)",
}
FILE_BEAT_DEFAULT_PREPACE = 50
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")


class _ProblemChoices:
    """``argparse`` ``choices`` that take every registered name and any ``beat:`` spec (judged later, by
    ``get_problem``, whose error names the bad part); iterating lists what ``--help`` shows."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and (value in PROBLEMS or value.startswith(BEAT_SPEC_PREFIX))

    def __iter__(self):
        return iter([*sorted(PROBLEMS), f"{BEAT_SPEC_PREFIX}MODEL_FILE[?OPTIONS]"])


#: for ``parser.add_argument(..., choices=PROBLEM_CHOICES)``
PROBLEM_CHOICES = _ProblemChoices()


def is_beat_spec(name: str) -> bool:
    return isinstance(name, str) and name.startswith(BEAT_SPEC_PREFIX)


def problem_name(name: str) -> str:
    """The safe identifier of problem ``name`` without reading any file: a registered name itself, a
    ``beat:`` spec's ``name=`` or ``<file stem>_beat`` (what ``get_problem(name).name`` is)."""
    if not is_beat_spec(name):
        return name
    path, options = _split_beat_spec(name)
    return _beat_name(name, Path(path), options)


def _split_beat_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``(path, options)`` of ``beat:PATH?K=V&...``; malformed options raise ``ProblemSpecError``."""
    path, _, query = spec[len(BEAT_SPEC_PREFIX):].partition("?")
    if not path.strip():
        raise ProblemSpecError(f"problem {spec!r}: no model file after {BEAT_SPEC_PREFIX!r}; write "
                               f"{BEAT_SPEC_PREFIX}PATH[?vary=P1,P2&...]")
    options: dict[str, str] = {}
    for item in query.split("&") if query else []:
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise ProblemSpecError(f"problem {spec!r}: option {item!r} is not KEY=VALUE")
        if key not in BEAT_SPEC_OPTIONS:
            raise ProblemSpecError(f"problem {spec!r}: unknown option {key!r}; known: {', '.join(BEAT_SPEC_OPTIONS)}")
        if key in options:
            raise ProblemSpecError(f"problem {spec!r}: option {key!r} is given twice")
        options[key] = value
    return path, options


def _beat_name(spec: str, path: Path, options: dict[str, str]) -> str:
    if "name" in options:
        name = options["name"]
        if not _SAFE_NAME.fullmatch(name):
            raise ProblemSpecError(f"problem {spec!r}: option name={name!r} must be a letter, then letters, digits "
                                   f"or _ (it names folders and the registered model)")
    else:
        stem = re.sub(r"[^A-Za-z0-9_]+", "_", path.stem).strip("_") or "model"
        name = (stem if stem[0].isalpha() else f"m_{stem}")[:90] + "_beat"
    if name in PROBLEMS:
        raise ProblemSpecError(f"problem {spec!r}: its name {name!r} is a built-in problem's; give another with "
                               f"name=NAME")
    return name


def beat_file_problem(spec: str, *, base_dir: str | os.PathLike | None = None) -> Problem:
    """The beat problem of ``spec`` = ``beat:PATH[?KEY=VALUE&...]`` (options: :data:`BEAT_SPEC_OPTIONS`).

    The learned beat is the model file's own protocol's (its cycle length is the time window), after
    ``n_prepace`` beats from the file's initial state; the inputs are ``t`` and one scale factor per
    varied parameter, the default output ``V`` the membrane potential (in the file's unit). Parameter and
    state names may be written short (``gNa`` for ``ina.gNa``) where that is unambiguous. The result's
    ``spec`` is canonical: an absolute path, options in a fixed order with full names, so equal problems
    have equal keys. Read once per file version (cached on its modification time and size)."""
    path_text, options = _split_beat_spec(spec)
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = Path(base_dir if base_dir is not None else Path.cwd()) / path
    path = Path(os.path.normpath(path.absolute()))
    name = _beat_name(spec, path, options)
    try:
        stat = path.stat()
    except OSError:
        raise ProblemSpecError(f"problem {spec!r}: model file {path} does not exist") from None
    if not path.is_file():
        raise ProblemSpecError(f"problem {spec!r}: {path} is not a file")
    return _beat_file_problem(str(path), name, tuple(options.items()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _beat_file_problem(path: str, name: str, option_items: tuple[tuple[str, str], ...], mtime_ns: int,
                       size: int) -> Problem:
    options = dict(option_items)
    shown = BEAT_SPEC_PREFIX + path + ("?" + "&".join(f"{k}={v}" for k, v in option_items) if option_items else "")

    def error(message: str) -> ProblemSpecError:
        return ProblemSpecError(f"problem {shown!r}: {message}")

    try:
        model = resolve_cell_model(path)
    except CellModelError as exc:
        raise error(str(exc)) from None
    period = float(model.stimulus.period)
    if not period > 0:
        raise error(f"{model.name}'s protocol paces no periodic beat (period {period:g}); a beat problem "
                    f"needs one (a Myokit [[protocol]] with a period)")

    def number(key: str, default: float) -> float:
        """A positive, finite float option."""
        if key not in options:
            return default
        try:
            value = float(options[key])
        except ValueError:
            raise error(f"option {key}={options[key]!r} is not a number") from None
        if not 0 < value < float("inf"):
            raise error(f"option {key}={options[key]!r} must be > 0")
        return value

    def count(key: str, default: int, minimum: int) -> int:
        if key not in options:
            return default
        try:
            value = int(options[key])
        except ValueError:
            raise error(f"option {key}={options[key]!r} is not an integer") from None
        if value < minimum:
            raise error(f"option {key}={options[key]!r} must be at least {minimum}")
        return value

    def find(kind: str, wanted: str, names: tuple[str, ...]) -> str:
        if wanted in names:
            return wanted
        matches = [n for n in names if n.rsplit(".", 1)[-1] == wanted]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise error(f"{kind} {wanted!r} is ambiguous in {model.name}: {', '.join(matches)}")
        raise error(f"{model.name} has no {kind} {wanted!r}; its {kind}s: {', '.join(names)}")

    if "vary" in options:
        scaled = tuple(find("parameter", item.strip(), model.parameter_names)
                       for item in options["vary"].split(",") if item.strip())
    else:
        scaled = tuple(model.varied)
    if not scaled:
        raise error(f"{Path(path).name} declares no varied parameters: give vary=P1,P2,... (the scale factors "
                    f"the surrogate takes); its parameters: {', '.join(model.parameter_names)}")
    if len(set(scaled)) != len(scaled):
        raise error(f"option vary names a parameter twice: {', '.join(scaled)}")
    low, high = 0.5, 2.0
    if "scale" in options:
        try:
            low, high = (float(x) for x in options["scale"].split(":"))
        except ValueError:
            raise error(f"option scale={options['scale']!r} is not LOW:HIGH") from None
        if not 0 < low < high < float("inf"):
            raise error(f"option scale={options['scale']!r} needs 0 < LOW < HIGH")
    by_name = {p.name: p for p in model.parameters}
    for parameter in scaled:
        declared = by_name[parameter]
        for factor in (low, high):
            value = declared.default * factor
            if not declared.range[0] <= value <= declared.range[1]:
                raise error(f"parameter {parameter} = {declared.default:g} x {factor:g} is outside its declared "
                            f"range [{declared.range[0]:g}, {declared.range[1]:g}]; narrow scale=LOW:HIGH")
    outputs: dict[str, str] = {}
    for item in (options["outputs"].split(",") if "outputs" in options else [f"V:{model.voltage}"]):
        output, colon, state = item.strip().rpartition(":")
        state = find("state", state, model.state_names)
        output = output if colon else re.sub(r"\W", "_", state.rsplit(".", 1)[-1])
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", output) or output == "t" or output.endswith("_scale"):
            raise error(f"output name {output!r} must be a letter, then letters, digits or _, and not t or *_scale")
        if output in outputs:
            raise error(f"output {output!r} is named twice")
        outputs[output] = state
    voltage_output = next((out for out, state in outputs.items() if state == model.voltage), None)
    if voltage_output is None:
        raise error(f"the outputs must include the membrane potential {model.voltage} (the physiology metrics "
                    f"read it); e.g. outputs=V:{model.voltage}")
    dt = number("dt", float(model.default_dt))
    pace_dt = number("pace_dt", dt)
    save_dt = number("save_dt", 1.0)
    for key, value, whole, what in (("dt", dt, period, "the cycle length"), ("pace_dt", pace_dt, period, "the cycle length"),
                                    ("save_dt", save_dt, period, "the cycle length"), ("dt", dt, save_dt, "save_dt")):
        steps = round(whole / value)
        if steps < 1 or abs(steps * value - whole) > 1e-9 * whole:
            raise error(f"{key} = {value:g} does not divide {what} {whole:g}")
    method = options.get("method", "rush_larsen")
    if method not in METHODS:
        raise error(f"option method={method!r}: one of {', '.join(METHODS)}")
    n_prepace = count("n_prepace", FILE_BEAT_DEFAULT_PREPACE, 0)
    n_train = count("n_train", 512, 1)
    n_val = count("n_val", 128, 1)
    units = {out: model.states[model.state_names.index(state)].unit.strip().strip("[]").strip() or "dimensionless"
             for out, state in outputs.items()}

    canonical = {"name": options.get("name"), "vary": ",".join(scaled),
                 "outputs": ",".join(f"{out}:{state}" for out, state in outputs.items()),
                 "scale": f"{low!r}:{high!r}", "n_prepace": str(n_prepace), "dt": repr(dt), "pace_dt": repr(pace_dt),
                 "method": method, "save_dt": repr(save_dt), "n_train": str(n_train), "n_val": str(n_val)}
    query = "&".join(f"{key}={canonical[key]}" for key in BEAT_SPEC_OPTIONS if key in options)
    spec = BEAT_SPEC_PREFIX + path + (f"?{query}" if query else "")
    unit = model.time_unit.strip().strip("[]").strip() or "ms"
    description = (f"{model.description or model.name} ({Path(path).name}) paced beat "
                   f"{', '.join(outputs)}(t, {', '.join(scaled)} scale factors in [{low:g}, {high:g}]), "
                   f"t in [0, {period:g}] {unit}, after {n_prepace} pre-pacing beats")
    problem = beat_problem(name, path, scaled=scaled, outputs=outputs, units=units, description=description,
                           n_prepace=n_prepace, dt=dt, pace_dt=pace_dt, period=period, save_dt=save_dt,
                           scale_range=(low, high), n_train=n_train, n_val=n_val, method=method,
                           voltage_output=voltage_output)
    return replace(problem, spec=spec)
