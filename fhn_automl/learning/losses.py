"""Loss terms of the thesis (3.3-3.4), each with its own batch size and weight.

The total loss is the weighted sum of the terms (eqs. 3.8, 3.14, 3.16):

* ``DataTerm``        eq. 3.7: 0.5 * mean ||u_net - u_solver||^2 over a batch of one dataset.
* ``PhysicsTerm``     eq. 3.13: mean ||d u_net/dt - f(u_net)||^2 at random collocation points,
                      optionally restricted to a box of the input space (increased cloud-point
                      density, 3.4.2).
* ``InitialConditionTerm`` eq. 3.15: mean ||u_net(t=0, U0, W0) - (U0, W0)||^2.
* ``ContinuityTerm``  eq. 3.20: neighbouring window networks agree at the interfaces.

All terms compare *standardised* outputs ((y - mean) / std, with mean 0 and std 1 in the paper
recipe), so U and W weigh alike and the fast recipe's loss scale does not depend on the problem.
Batches are drawn on the training device with ``torch.randint`` / ``torch.rand`` and a
``torch.Generator``, never through a DataLoader.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence

import torch
from torch import nn

from fhn_automl.physics.ionic_sources import resolve_cell_model
from fhn_automl.physics.problems import Problem


class BoxSampler:
    """Uniform points in an axis-aligned box of the raw input space, drawn on the device."""

    def __init__(self, low: Sequence[float], high: Sequence[float], device: torch.device) -> None:
        self.low = torch.tensor(low, dtype=torch.float32, device=device)
        self.width = torch.tensor(high, dtype=torch.float32, device=device) - self.low

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        unit = torch.rand(n, self.low.numel(), generator=generator, device=self.low.device)
        return self.low + unit * self.width


class PointSampler:
    """Rows drawn uniformly from a fixed set of raw input points (a physics term over a stored
    region, e.g. the high-error set's points), drawn on the device."""

    def __init__(self, points: torch.Tensor) -> None:
        if points.ndim != 2 or points.shape[0] == 0:
            raise ValueError(f"a point sampler needs a non-empty (n, n_in) set, got shape {tuple(points.shape)}")
        self.points = points

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(self.points.shape[0], (n,), generator=generator, device=self.points.device)
        return self.points[rows]


def input_box(problem: Problem, inputs: Sequence[str], overrides: dict[str, tuple[float, float]] | None = None,
              ) -> tuple[list[float], list[float]]:
    """(low, high) per input over the problem's domain (the thesis' sampled box, not the wider
    input-scaling ranges: ``Problem.domain_range``), with some inputs narrowed by ``overrides``."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(inputs))
    if unknown:
        raise ValueError(f"box names {unknown} are not inputs of {problem.name} ({', '.join(inputs)})")
    low, high = [], []
    for name in inputs:
        lo, hi = overrides.get(name, problem.domain_range(name))
        low.append(float(lo))
        high.append(float(hi))
    return low, high


def applied_current(problem: Problem, x: torch.Tensor, inputs: Sequence[str]) -> torch.Tensor | float:
    """I_app for each row of raw inputs (depends on k in problem C)."""
    if "k" in inputs:
        return problem.i_app(x[..., list(inputs).index("k")])
    return problem.i_app(0.0)


def physics_residual(model: nn.Module, x: torch.Tensor, problem: Problem) -> torch.Tensor:
    """(du/dt - f_u, dw/dt - f_w) / std at raw inputs ``x``, by the forward-mode tangent.

    Dividing by the output std puts the residual in the same standardised units as the data term
    (it is the thesis' eq. 3.13 exactly when std = 1, the paper recipe).
    """
    y_norm, dy_norm = model.time_tangent(x)
    return residual_from_outputs(model, x, y_norm, dy_norm, problem)


def residual_from_outputs(model: nn.Module, x: torch.Tensor, y_norm: torch.Tensor, dy_norm: torch.Tensor,
                          problem: Problem) -> torch.Tensor:
    """The residual given the standardised outputs and their d/dt at ``x``."""
    mean, std = model.output_statistics()
    y = y_norm * std + mean
    return dy_norm - state_derivatives(problem, x, y, model.spec.inputs) / std


def state_derivatives(problem: Problem, x: torch.Tensor, y: torch.Tensor, inputs: Sequence[str]) -> torch.Tensor:
    """d(outputs)/dt by the problem's equations at raw outputs ``y`` (last axis: the outputs): FitzHugh-Nagumo's
    (u, w) with the problem's applied current, or an N-state model's whole state (``cell_state`` problems:
    no stimulus, default parameters, as their data)."""
    if problem.state is None:
        du, dw = problem.model.rhs(y[..., 0], y[..., 1], applied_current(problem, x, inputs))
        return torch.stack((du, dw), dim=-1)
    model, order, params = _state_equations(problem.state.cell_model,
                                            tuple((name, problem.state.outputs[name]) for name in problem.outputs))
    states = [None] * len(order)
    for column, index in enumerate(order):
        states[index] = y[..., column]
    derivatives = model.rhs(states, 0.0, [float(p) for p in params], xp=torch)
    return torch.stack([derivatives[index] for index in order], dim=-1)


@functools.lru_cache(maxsize=8)
def _state_equations(cell_model: str, outputs: tuple[tuple[str, str], ...]):
    """(model, the state index of each output, default parameters) of a ``cell_state`` problem's model and
    its (output, state) pairs in output order."""
    model = resolve_cell_model(cell_model)
    order = tuple(model.state_names.index(state) for _, state in outputs)
    return model, order, tuple(model.parameter_values())


def physics_residual_autograd(model: nn.Module, x: torch.Tensor, problem: Problem) -> torch.Tensor:
    """The same residual with d/dt from reverse-mode ``autograd.grad`` (the reference in the tests)."""
    x = x.detach().requires_grad_(True)
    y = model(x)
    t_index = list(model.spec.inputs).index("t")
    slopes = [torch.autograd.grad(y[:, j].sum(), x, create_graph=True)[0][:, t_index] for j in range(y.shape[1])]
    dy = torch.stack(slopes, dim=1)
    _, std = model.output_statistics()
    return (dy - state_derivatives(problem, x, y, model.spec.inputs)) / std


class LossTerm(abc.ABC):
    """One weighted term of the loss: draws its own batch and evaluates on it."""

    def __init__(self, name: str, weight: float, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"loss term {name!r} needs a positive batch size, got {batch_size}")
        self.name = name
        self.weight = float(weight)
        self.batch_size = int(batch_size)

    @abc.abstractmethod
    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """A fresh batch (tensors on the training device)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The unweighted scalar loss on ``batch``."""


class PointwiseTerm(LossTerm):
    """A term that needs the model's outputs (and maybe their d/dt) at one set of points.

    ``TrainingObjective`` concatenates the points of all such terms and runs the network once (with
    the tangent if any term needs it): on small MLPs a training step is dominated by per-operation
    overhead, so one pass over 288 rows costs barely more than one over 128.
    """

    needs_tangent: bool = False

    @abc.abstractmethod
    def points(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Raw inputs at which the model is evaluated for this term."""

    @abc.abstractmethod
    def loss_from_outputs(self, model: nn.Module, batch: tuple[torch.Tensor, ...], y_norm: torch.Tensor,
                          dy_norm: torch.Tensor | None) -> torch.Tensor:
        """The loss given standardised outputs (and their d/dt when ``needs_tangent``) at ``points``.

        Shapes may carry leading dimensions (``(M, B, n)`` for a pack of M models, ``learning.packed``):
        the loss is then one value per leading index, each computed as for a single model.
        """

    def evaluate(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = self.points(batch)
        if self.needs_tangent:
            y, dy = model.time_tangent(x)
            return self.loss_from_outputs(model, batch, y, dy)
        return self.loss_from_outputs(model, batch, model.forward_normalised(x), None)


class DataTerm(PointwiseTerm):
    """Closeness to one dataset (eq. 3.7); targets stored already standardised."""

    def __init__(self, name: str, inputs: torch.Tensor, targets_normalised: torch.Tensor, *, weight: float,
                 batch_size: int) -> None:
        super().__init__(name, weight, batch_size)
        if inputs.shape[0] == 0:
            raise ValueError(f"data term {name!r} has no points")
        # one row gather per step instead of two
        self.rows = torch.cat((inputs, targets_normalised), dim=1)
        self.n_in = inputs.shape[1]

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        picks = torch.randint(self.rows.shape[0], (self.batch_size,), generator=generator, device=self.rows.device)
        return (self.rows[picks],)

    def points(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0][..., : self.n_in]

    def loss_from_outputs(self, model, batch, y_norm, dy_norm) -> torch.Tensor:
        return 0.5 * (y_norm - batch[0][..., self.n_in:]).square().sum(dim=-1).mean(dim=-1)


class PhysicsTerm(PointwiseTerm):
    """The ODE residual (FHN, or a cell_state problem's N-state model) at collocation points uniform in a box (the whole domain or a region), or
    drawn from a stored set of points (a detected region)."""

    needs_tangent = True

    def __init__(self, name: str, problem: Problem, sampler: BoxSampler | PointSampler, *, weight: float,
                 batch_size: int) -> None:
        super().__init__(name, weight, batch_size)
        self.problem = problem
        self.sampler = sampler

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (self.sampler.sample(self.batch_size, generator),)

    def points(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0]

    def loss_from_outputs(self, model, batch, y_norm, dy_norm) -> torch.Tensor:
        residual = residual_from_outputs(model, batch[0], y_norm, dy_norm, self.problem)
        return residual.square().sum(dim=-1).mean(dim=-1)


class InitialConditionTerm(PointwiseTerm):
    """u_net(t = 0, U0, W0[, K]) = (U0, W0) (eq. 3.15); problem A's fixed state when U0, W0 are not inputs;
    a cell_state problem's whole initial state."""

    def __init__(self, name: str, problem: Problem, inputs: Sequence[str], sampler: BoxSampler, *,
                 weight: float, batch_size: int) -> None:
        super().__init__(name, weight, batch_size)
        self.sampler = sampler
        self.t_index = list(inputs).index("t")
        # the initial value of each output, in output order: (u0, w0), or a cell_state problem's <output>0
        initial = problem.state.initial_inputs if problem.state is not None else ("u0", "w0")
        if all(name in inputs for name in initial):
            self.state_indices: list[int] | None = [list(inputs).index(name) for name in initial]
            self.fixed_state = None
        elif problem.fixed_initial_state is not None:
            self.state_indices = None
            self.fixed_state = torch.tensor(problem.fixed_initial_state, dtype=torch.float32,
                                            device=sampler.low.device)
        else:
            raise ValueError(f"{problem.name} has neither initial-state inputs nor a fixed initial state")

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        x = self.sampler.sample(self.batch_size, generator)
        x[:, self.t_index] = 0.0
        return (x,)

    def points(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return batch[0]

    def loss_from_outputs(self, model, batch, y_norm, dy_norm) -> torch.Tensor:
        x = batch[0]
        mean, std = model.output_statistics()
        target = (x[..., self.state_indices] if self.state_indices is not None
                  else self.fixed_state.expand(*x.shape[:-1], -1))
        return (y_norm - (target - mean) / std).square().sum(dim=-1).mean(dim=-1)


class ContinuityTerm(LossTerm):
    """Neighbouring split-window networks agree at each interface (eq. 3.20), random other inputs."""

    def __init__(self, name: str, interfaces: Sequence[float], inputs: Sequence[str], sampler: BoxSampler, *,
                 weight: float, batch_size: int) -> None:
        super().__init__(name, weight, batch_size)
        self.interfaces = [float(edge) for edge in interfaces]
        self.t_index = list(inputs).index("t")
        self.sampler = sampler

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return (self.sampler.sample(self.batch_size, generator),)

    def evaluate(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = batch[0].clone()
        total = x.new_zeros(())
        for k, edge in enumerate(self.interfaces):
            x[:, self.t_index] = edge
            before = model.windows[k].forward_normalised(x)
            after = model.windows[k + 1].forward_normalised(x)
            total = total + (before - after).square().sum(dim=1).mean()
        return total / len(self.interfaces)


class TrainingObjective(nn.Module):
    """The model plus its loss terms; ``forward`` returns (weighted total, each term unweighted).

    Wrapping this module (not the bare model) in DistributedDataParallel keeps DDP's gradient
    synchronisation valid for the tangent pass and the multi-network terms, which do not go
    through the model's ``forward``.
    """

    def __init__(self, model: nn.Module, terms: Sequence[LossTerm]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a training objective needs at least one loss term")
        self.model = model
        self.terms = list(terms)
        self.register_buffer("weights", torch.tensor([term.weight for term in self.terms], dtype=torch.float32))

    @property
    def term_names(self) -> list[str]:
        return [term.name for term in self.terms]

    def draw(self, generator: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
        return [term.draw(generator) for term in self.terms]

    def forward(self, batches: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        values: list[torch.Tensor | None] = [None] * len(self.terms)
        pointwise = [i for i, term in enumerate(self.terms) if isinstance(term, PointwiseTerm)]
        if pointwise:
            xs = [self.terms[i].points(batches[i]) for i in pointwise]
            x = torch.cat(xs) if len(xs) > 1 else xs[0]
            if any(self.terms[i].needs_tangent for i in pointwise):
                y, dy = self.model.time_tangent(x)
            else:
                y, dy = self.model.forward_normalised(x), None
            start = 0
            for i, part in zip(pointwise, xs):
                stop = start + part.shape[0]
                values[i] = self.terms[i].loss_from_outputs(
                    self.model, batches[i], y[start:stop], None if dy is None else dy[start:stop])
                start = stop
        for i, term in enumerate(self.terms):
            if values[i] is None:
                values[i] = term.evaluate(self.model, batches[i])
        stacked = torch.stack(values)
        return (stacked * self.weights).sum(), stacked.detach()
