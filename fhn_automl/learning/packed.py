"""Packed training: M small MLPs of one depth trained together in one process by batched matmuls.

A step of a 48-neuron network is nearly all per-operation overhead (FACTS.md: ~0.5 ms on a CPU for a
few MFLOP), so one process per model spends its time launching kernels. Here the M networks of a
pack share every kernel launch: weights are stacked as ``(M, out, in)`` and every layer is one
``torch.baddbmm``; the loop costs about what a single model's does while doing M models' work.

Each member is still the run ``train(config)`` would make with its own config, to float tolerance:

* its initial weights are built by ``build_model`` under ``torch.manual_seed(seed)`` exactly as the
  single trainer builds them, then copied into the stacked tensors;
* widths are padded to the pack's widest layer with zero weights; the padded entries' gradients are
  masked to zero (so Adam never moves them) and, where an activation has f(0) != 0 (sigmoid), the
  padded units are multiplied by a 0/1 mask, so a padded unit never reaches a real one;
* each layer applies each member's own activation (members grouped by activation per layer);
* each member draws its batches from its own ``torch.Generator``, seeded as ``train`` seeds it, in
  the same order (data, extra data, physics, initial condition, extra physics);
* its loss terms are the single trainer's (``losses.py`` formulas, evaluated with a leading member
  dimension), its lr schedule its own, and Adam is torch's own functional ``adam`` (fused where the
  recipe asks for it, as ``Recipe.make_optimizer`` does) called on the stacked tensors, one call per
  run of members that share the current lr: the same element-wise arithmetic as ``torch.optim.Adam``.

What differs is the matmul blocking: a padded batched matmul may sum in another order than the
single model's ``addmm``, so losses agree to ~1e-6 relative per step rather than bit for bit, and
the difference grows slowly with the steps (``tests/learning/test_packed.py`` states the tolerance).

In-pack successive halving (``Halving``): at rungs ``grace * eta^k`` the members are ranked by their
validation error and only the best ``ceil(n / eta)`` go on (the ASHA rule, applied synchronously
inside the pack; ``ParetoHalving`` ranks by error and cost instead, MOASHA's rule); the others end
as ``stopped_early`` with their best model and history, and the
stacked tensors are compacted (members dropped, padding trimmed) so later steps cost less.

Supported: kinds ``ddnn``, ``pinn`` and ``iter``, chained windows, extra regions and extra data.
Refused with ``PackError``: split windows (several networks per model), DDP, and members whose
configs differ in anything but ``MEMBER_KEYS``.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fhn_automl._atomic import write_json
from fhn_automl.learning.architecture import format_layers
from fhn_automl.learning.checkpoints import copy_model_folders, load_state, save_state
from fhn_automl.learning.config import TrainConfig
from fhn_automl.learning.losses import (BoxSampler, DataTerm, InitialConditionTerm, PhysicsTerm, PointwiseTerm)
from fhn_automl.learning.mlp import (SurrogateMLP, activation_with_derivative, build_model, make_activation)
from fhn_automl.learning.model_io import save_model
from fhn_automl.learning.multi_objective import pareto_order
from fhn_automl.learning.recipes import warmup_cosine_factor
from fhn_automl.learning.trainer import (BEST_MODEL_FOLDER, CHECKPOINT_FOLDER, DIVERGENCE_CHECK_EVERY, METRICS_FILE,
                                         MODEL_FOLDER, Progress, TrainingSetup, distributed_context, final_physiology,
                                         full_rollout, full_validation_batches, model_counts, prepare_training)
from fhn_automl.learning.validation import REPORTED_ERROR_METRIC, final_full_metrics, validation_metrics
from fhn_automl.learning.windows import parse_window

#: Config keys in which the members of one pack may differ; every other key must be equal.
MEMBER_KEYS = frozenset({"layers", "seed", "lr", "warmup_steps", "out_dir", "write_torchscript"})
PACK_STATE_FILE = "pack_state.pt"
#: Inside the pack checkpoint: each finished member's model at the last step (what ``train`` saves).
FINAL_MODEL_FOLDER = "final"
PACK_STATE_VERSION = 1

#: How a layer applies different activations to different members (see ``_ActivationPlan``).
ACTIVATION_MODES = ("runs", "group", "mask")

PackReportFn = Callable[[dict[str, dict[str, Any]], str], None]


class PackError(ValueError):
    """Configs that cannot share a pack (or a bad pack option); the message names the key and values."""


@dataclass(frozen=True)
class Halving:
    """Successive halving inside a pack: at each rung keep the best ``ceil(n / reduction_factor)``.

    Rungs are ``grace_steps * reduction_factor**k`` below the run's steps; a rung is decided at the
    first validation at or after it (choose ``grace_steps`` a multiple of ``val_every``).
    """

    grace_steps: int
    reduction_factor: float = 3.0
    metric: str = "val_mean_err"

    def __post_init__(self) -> None:
        if int(self.grace_steps) < 1:
            raise PackError(f"halving grace_steps must be >= 1, got {self.grace_steps}")
        if not float(self.reduction_factor) > 1:
            raise PackError(f"halving reduction_factor must be > 1, got {self.reduction_factor}")

    def rungs(self, steps: int) -> list[int]:
        out: list[int] = []
        k = 0
        while True:
            rung = int(round(self.grace_steps * self.reduction_factor ** k))
            if rung >= steps:
                return out
            if not out or rung > out[-1]:
                out.append(rung)
            k += 1

    def survivors(self, n: int) -> int:
        return max(1, math.ceil(n / self.reduction_factor))

    def rank(self, contenders: Sequence[tuple[int, str, Mapping[str, Any]]]) -> list[int]:
        """The contenders ``(row, member name, record at the rung)``, best first: by ``metric``."""
        return [row for row, _, _ in sorted(contenders, key=lambda c: (c[2][self.metric], c[0]))]


@dataclass(frozen=True)
class ParetoHalving(Halving):
    """Halving by MOASHA's rule: rank by non-dominated sorting of (``metric`` at the rung, cost) with
    crowding distance as the tie-break (``multi_objective.pareto_order``), keep the first
    ``ceil(n / reduction_factor)``. ``costs`` maps member names to their cost (measured latency, fixed
    per architecture); a member missing from it is costed by its record's ``cost_metric``
    (``macs_per_eval`` by default)."""

    costs: Mapping[str, float] | None = None
    cost_metric: str = "macs_per_eval"

    def rank(self, contenders: Sequence[tuple[int, str, Mapping[str, Any]]]) -> list[int]:
        costs = self.costs or {}
        points = [(record[self.metric], costs[name] if name in costs else record[self.cost_metric])
                  for _, name, record in contenders]
        return [contenders[i][0] for i in pareto_order(points)]


# ----------------------------------------------------------------------------- configs


def check_pack(configs: Sequence[Mapping[str, Any]]) -> list[TrainConfig]:
    """Validate the member configs and that they can share one pack; ``PackError`` says why not."""
    if not configs:
        raise PackError("a pack needs at least one member config")
    cfgs = [TrainConfig.from_mapping(config) for config in configs]
    first = cfgs[0].to_dict()
    for index, cfg in enumerate(cfgs[1:], start=1):
        other = cfg.to_dict()
        for key in sorted(first):
            if key not in MEMBER_KEYS and first[key] != other[key]:
                raise PackError(f"pack members must share {key!r}: member 0 has {first[key]!r}, member {index} "
                                f"has {other[key]!r} (only {', '.join(sorted(MEMBER_KEYS))} may differ)")
        if len(cfg.layers) != len(cfgs[0].layers):
            raise PackError(f"pack members must have the same depth: member 0 has {len(cfgs[0].layers)} layers "
                            f"({format_layers(cfgs[0].layers)}), member {index} {len(cfg.layers)} "
                            f"({format_layers(cfg.layers)})")
    if parse_window(cfgs[0].window, cfgs[0].resolved_problem.t_span).mode == "split":
        raise PackError(f"packed training does not take split windows (several networks per model): window "
                        f"{cfgs[0].window!r}; train them with train() or use chained windows")
    return cfgs


def pack_key(config: Mapping[str, Any]) -> str:
    """A string equal for configs that ``check_pack`` lets share a pack (the search groups by it)."""
    cfg = TrainConfig.from_mapping(config)
    shared = {key: value for key, value in cfg.to_dict().items() if key not in MEMBER_KEYS}
    return repr(sorted(shared.items())) + f"|depth={len(cfg.layers)}"


def plan_packs(configs: Sequence[Mapping[str, Any]], pack_size: int) -> list[list[int]]:
    """Split configs into packs of at most ``pack_size`` that can train together; indices into ``configs``.

    Compatible configs (``pack_key``) are sorted by their widths before they are cut into packs, so a
    pack holds networks of similar size and pads little; packs of one group are of near-equal size.
    """
    if int(pack_size) < 1:
        raise PackError(f"pack_size must be >= 1, got {pack_size}")
    groups: dict[str, list[int]] = {}
    parsed = [TrainConfig.from_mapping(config) for config in configs]
    for index, config in enumerate(configs):
        groups.setdefault(pack_key(config), []).append(index)
    packs: list[list[int]] = []
    for indices in groups.values():
        indices.sort(key=lambda i: (tuple(layer.width for layer in parsed[i].layers),
                                    tuple(layer.activation for layer in parsed[i].layers), i))
        n_packs = math.ceil(len(indices) / pack_size)
        bounds = [round(k * len(indices) / n_packs) for k in range(n_packs + 1)]
        packs += [indices[a:b] for a, b in zip(bounds, bounds[1:])]
    return packs


# ----------------------------------------------------------------------------- the stacked network


def _linears(net: SurrogateMLP) -> list[nn.Linear]:
    return [net.body[position] for position in range(0, len(net.body), 2)] + [net.head]


def _surrogate(model: nn.Module) -> SurrogateMLP:
    """The one MLP a packable model is made of (itself, or the iterator's / chained model's ``net``)."""
    return model if isinstance(model, SurrogateMLP) else model.net


class _ActivationPlan:
    """How one layer applies each member's activation: one call when all agree, else by ``mode``:

    * ``runs`` (the CPU's default): members are ordered by their activation sequence, so each activation covers
      runs of consecutive members; ``split`` -> one call per run -> ``cat`` (whose backward is one
      ``split`` and one ``cat`` again, no scatter);
    * ``group``: ``index_select`` each activation's members, ``cat``, undo the permutation;
    * ``mask`` (the GPU's default): every activation on every member, picked with ``torch.where``.

    ``benchmarks/packed.py`` measures the three (RESULTS.md); all give the same numbers.
    """

    def __init__(self, names: Sequence[str], device: torch.device, mode: str) -> None:
        self.names = list(names)
        self.modules = {name: make_activation(name) for name in dict.fromkeys(names)}
        self.runs = [(name, len(list(run))) for name, run in itertools.groupby(self.names)]
        self.groups: list[tuple[str, torch.Tensor]] = []
        order: list[int] = []
        for name in self.modules:
            rows = [m for m, own in enumerate(names) if own == name]
            self.groups.append((name, torch.tensor(rows, dtype=torch.long, device=device)))
            order += rows
        self.inverse = torch.argsort(torch.tensor(order, dtype=torch.long)).to(device)
        self.masks = {name: torch.tensor([own == name for own in names], device=device).view(-1, 1, 1)
                      for name in self.modules}
        self.mode = mode

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if len(self.groups) == 1:
            return self.modules[self.names[0]](z)
        if self.mode == "runs":
            parts = z.split([length for _, length in self.runs])
            return torch.cat([self.modules[name](part) for (name, _), part in zip(self.runs, parts)])
        if self.mode == "mask":
            out = None
            for name, _ in self.groups:
                value = self.modules[name](z)
                out = value if out is None else torch.where(self.masks[name], value, out)
            return out
        parts = [self.modules[name](z.index_select(0, rows)) for name, rows in self.groups]
        return torch.cat(parts).index_select(0, self.inverse)

    def with_derivative(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self.groups) == 1:
            return activation_with_derivative(self.names[0], z)
        if self.mode == "runs":
            parts = z.split([length for _, length in self.runs])
            pairs = [activation_with_derivative(name, part) for (name, _), part in zip(self.runs, parts)]
            return torch.cat([a for a, _ in pairs]), torch.cat([s for _, s in pairs])
        if self.mode == "mask":
            value = slope = None
            for name, _ in self.groups:
                a, s = activation_with_derivative(name, z)
                if value is None:
                    value, slope = a, s
                else:
                    value = torch.where(self.masks[name], a, value)
                    slope = torch.where(self.masks[name], s, slope)
            return value, slope
        pairs = [activation_with_derivative(name, z.index_select(0, rows)) for name, rows in self.groups]
        return (torch.cat([a for a, _ in pairs]).index_select(0, self.inverse),
                torch.cat([s for _, s in pairs]).index_select(0, self.inverse))


def _nonzero_at_zero(name: str) -> bool:
    """Whether an activation maps 0 to something else (sigmoid: 0.5): its padded units need a mask."""
    return bool(make_activation(name)(torch.zeros(1)).ne(0).any())


class PackedMLP:
    """The stacked parameters of M ``SurrogateMLP`` of one depth, padded to the widest layer.

    ``weights[l]`` is ``(M, out_l, in_l)`` (``nn.Linear``'s layout), ``biases[l]`` ``(M, out_l)``;
    member m's real units are the first ``widths[m][l]`` of layer l, the rest are zeros that stay zero.
    """

    def __init__(self, nets: Sequence[SurrogateMLP], device: torch.device, activation_mode: str = "runs") -> None:
        if activation_mode not in ACTIVATION_MODES:
            raise PackError(f"activation_mode must be one of {', '.join(ACTIVATION_MODES)}, got {activation_mode!r}")
        self.device = device
        self.activation_mode = activation_mode
        first = nets[0]
        for net in nets[1:]:
            if not (torch.equal(net.input_centre, first.input_centre)
                    and torch.equal(net.input_inverse_half_width, first.input_inverse_half_width)):
                raise PackError("pack members must scale their inputs alike (same problem, recipe and window)")
        self.input_centre = first.input_centre.to(device)
        self.input_inverse = first.input_inverse_half_width.to(device)
        self.time_index = first.time_index
        self.n_in, self.n_out = first.spec.n_in, first.spec.n_out
        self.widths = [[layer.width for layer in net.spec.layers] for net in nets]
        self.activations = [list(net.activation_names) for net in nets]
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        sizes = self._padded_sizes(range(len(nets)))
        with torch.no_grad():
            for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
                weight = torch.zeros(len(nets), fan_out, fan_in, device=device)
                bias = torch.zeros(len(nets), fan_out, device=device)
                for m, net in enumerate(nets):
                    linear = _linears(net)[layer]
                    weight[m, : linear.out_features, : linear.in_features] = linear.weight.detach()
                    bias[m, : linear.out_features] = linear.bias.detach()
                self.weights.append(weight.requires_grad_(True))
                self.biases.append(bias.requires_grad_(True))
        self._rebuild_masks()

    @property
    def size(self) -> int:
        return len(self.widths)

    @property
    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases interleaved, layer by layer (the order of ``nn.Linear.parameters()``)."""
        return [tensor for pair in zip(self.weights, self.biases) for tensor in pair]

    def _padded_sizes(self, members) -> list[int]:
        members = list(members)
        depth = len(self.widths[0])
        return [self.n_in, *(max(self.widths[m][layer] for m in members) for layer in range(depth)), self.n_out]

    def _rebuild_masks(self) -> None:
        """0/1 masks of the real entries (None where nothing is padded) and the per-layer activation plans."""
        sizes = [self.n_in, *(w.shape[1] for w in self.weights[:-1]), self.n_out]
        self.grad_masks: list[torch.Tensor | None] = []
        self.unit_masks: list[torch.Tensor | None] = []
        for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
            real_in = [fan_in if layer == 0 else widths[layer - 1] for widths in self.widths]
            real_out = [fan_out if layer == len(sizes) - 2 else widths[layer] for widths in self.widths]
            out_mask = (torch.arange(fan_out, device=self.device) <
                        torch.tensor(real_out, device=self.device).view(-1, 1)).float()  # (M, out)
            in_mask = (torch.arange(fan_in, device=self.device) <
                       torch.tensor(real_in, device=self.device).view(-1, 1)).float()  # (M, in)
            padded = bool((out_mask == 0).any() or (in_mask == 0).any())
            self.grad_masks.append(out_mask.unsqueeze(2) * in_mask.unsqueeze(1) if padded else None)
            self.grad_masks.append(out_mask if bool((out_mask == 0).any()) else None)
            if layer < len(sizes) - 2:
                leaks = any(_nonzero_at_zero(acts[layer]) and widths[layer] < fan_out
                            for acts, widths in zip(self.activations, self.widths))
                self.unit_masks.append(out_mask.unsqueeze(1) if leaks else None)
        depth = len(self.widths[0])
        self.plans = [_ActivationPlan([acts[layer] for acts in self.activations], self.device, self.activation_mode)
                      for layer in range(depth)]

    def forward(self, x: torch.Tensor, with_tangent: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Standardised outputs ``(M, N, n_out)`` at raw inputs ``x`` ``(M, N, n_in)`` and, with
        ``with_tangent``, their raw-time derivative: ``SurrogateMLP.forward_normalised`` /
        ``time_tangent`` of every member at once."""
        h = (x - self.input_centre) * self.input_inverse
        tangent = None
        for layer, plan in enumerate(self.plans):
            weight = self.weights[layer]
            z = torch.baddbmm(self.biases[layer].unsqueeze(1), h, weight.transpose(1, 2))
            if with_tangent:
                if tangent is None:
                    dz = (weight[:, :, self.time_index] * self.input_inverse[self.time_index]).unsqueeze(1)
                else:
                    dz = torch.bmm(tangent, weight.transpose(1, 2))
                h, slope = plan.with_derivative(z)
                tangent = slope * dz
            else:
                h = plan(z)
            mask = self.unit_masks[layer]
            if mask is not None:
                h = h * mask
        head = self.weights[-1].transpose(1, 2)
        y = torch.baddbmm(self.biases[-1].unsqueeze(1), h, head)
        return y, (torch.bmm(tangent, head) if with_tangent else None)

    def mask_gradients(self) -> None:
        for tensor, mask in zip(self.parameters, self.grad_masks):
            if mask is not None and tensor.grad is not None:
                tensor.grad.mul_(mask)

    def copy_into(self, m: int, net: SurrogateMLP) -> None:
        """Write member m's (unpadded) weights into its own ``SurrogateMLP``."""
        with torch.no_grad():
            for linear, weight, bias in zip(_linears(net), self.weights, self.biases):
                linear.weight.copy_(weight[m, : linear.out_features, : linear.in_features])
                linear.bias.copy_(bias[m, : linear.out_features])

    def keep(self, rows: Sequence[int], states: Sequence[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        """Keep only members ``rows`` (in that order) and trim padding nobody uses any more.

        ``states`` are lists of tensors shaped like ``parameters`` (Adam's moments); they are
        compacted alike and returned.
        """
        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.widths = [self.widths[m] for m in rows]
        self.activations = [self.activations[m] for m in rows]
        sizes = self._padded_sizes(range(len(rows)))

        def shrink(tensor: torch.Tensor, position: int) -> torch.Tensor:
            layer = position // 2
            out = tensor.detach().index_select(0, index)
            out = out.narrow(1, 0, sizes[layer + 1])
            if position % 2 == 0:
                out = out.narrow(2, 0, sizes[layer])
            return out.contiguous()

        new_states = [[shrink(t, p) for p, t in enumerate(state)] for state in states]
        params = [shrink(t, p) for p, t in enumerate(self.parameters)]
        self.weights = [t.requires_grad_(True) for t in params[0::2]]
        self.biases = [t.requires_grad_(True) for t in params[1::2]]
        self._rebuild_masks()
        return new_states


# ----------------------------------------------------------------------------- members and the loop


class _PackStatistics:
    """What the loss formulas ask of a model (``output_statistics``, ``spec.inputs``), for the whole pack."""

    def __init__(self, net: SurrogateMLP, device: torch.device) -> None:
        self.spec = net.spec
        self._stats = (net.output_mean.to(device), net.output_std.to(device))

    def output_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._stats


@dataclass(kw_only=True)
class _Member(Progress):
    index: int
    name: str
    cfg: TrainConfig
    model: nn.Module
    generator: torch.Generator
    scheduler: Any  # ReduceLROnPlateau on a stand-in optimiser for the plateau recipe, else None
    out_dir: Path
    counts: dict[str, Any]
    base_lr: float
    status: str = "running"

    @property
    def lr_group(self) -> tuple[float, int | None]:
        return (self.base_lr, self.cfg.warmup_steps)


def _member_lr(member: _Member, setup: TrainingSetup, steps_done: int) -> float:
    """The lr for the next update, as the single trainer's scheduler would have set it."""
    if member.scheduler is not None:
        return float(member.scheduler.optimizer.param_groups[0]["lr"])
    recipe = setup.recipe
    warmup = (int(round(recipe.warmup_fraction * member.cfg.steps)) if member.cfg.warmup_steps is None
              else int(member.cfg.warmup_steps))

    # LambdaLR computes base_lr * factor(step) in Python floats: the same expression here
    return member.base_lr * warmup_cosine_factor(steps_done, member.cfg.steps, warmup, recipe.final_lr_fraction)


def _draw(setup: TrainingSetup, members: Sequence[_Member], ahead: int = 1) -> list[torch.Tensor]:
    """Each term's raw draws for every member, stacked ``(M, ahead, b, ...)`` (indices for data terms,
    unit-box numbers for box terms), each member's generator used term by term as
    ``TrainingObjective.draw`` uses it; with ``ahead == 1`` the numbers are the single trainer's."""
    device = setup.device
    buffers: list[torch.Tensor] = []
    for term in setup.terms:
        if isinstance(term, DataTerm):
            buffers.append(torch.empty(len(members), ahead, term.batch_size, dtype=torch.long, device=device))
        elif isinstance(term, (PhysicsTerm, InitialConditionTerm)):
            sampler = term.sampler
            if not isinstance(sampler, BoxSampler):  # e.g. a physics term at a stored set's points
                raise PackError(f"packed training draws loss term {term.name!r} only from a box")
            buffers.append(torch.empty(len(members), ahead, term.batch_size, sampler.low.numel(), device=device))
        else:
            raise PackError(f"packed training has no batched form of loss term {term.name!r}")
    for m, member in enumerate(members):
        for term, buffer in zip(setup.terms, buffers):
            # one step ahead: the single trainer's exact call shapes; more: one call per member and term
            target = buffer[m, 0] if ahead == 1 else buffer[m]
            if isinstance(term, DataTerm):
                torch.randint(term.rows.shape[0], tuple(target.shape), generator=member.generator, device=device,
                              out=target)
            else:
                torch.rand(*target.shape, generator=member.generator, device=device, out=target)
    return buffers


def _batches(setup: TrainingSetup, raw: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One step's batches ``(M, b, ...)`` from raw draws ``(M, b, ...)``: data rows, box points."""
    batches = []
    for term, buffer in zip(setup.terms, raw):
        if isinstance(term, DataTerm):
            batches.append(term.rows[buffer])
        else:
            x = term.sampler.low + buffer * term.sampler.width
            if isinstance(term, InitialConditionTerm):
                x[..., term.t_index] = 0.0
            batches.append(x)
    return batches


class _DrawAhead:
    """Batches drawn ``ahead`` steps at a time: one random-number call per member and term every
    ``ahead`` steps instead of every step. On a GPU the per-member calls are the packed loop's cost
    (one kernel launch each: 216 members, 216 launches a step); drawing ahead divides it.

    ``ahead`` divides every step at which the pack checkpoints or changes its members (validations
    and divergence checks, ``draw_ahead_steps``), so the buffer is always empty there: resuming from
    a checkpoint replays the same numbers, and compaction never strands drawn rows.
    """

    def __init__(self, ahead: int) -> None:
        self.ahead = ahead
        self.buffers: list[torch.Tensor] = []
        self.position = ahead

    def next(self, setup: TrainingSetup, members: Sequence[_Member]) -> list[torch.Tensor]:
        if self.position == self.ahead:
            self.buffers = _draw(setup, members, self.ahead)
            self.position = 0
        elif self.buffers[0].shape[0] != len(members):
            raise AssertionError("pack members changed between refills of the draw-ahead buffer")
        raw = [buffer[:, self.position] for buffer in self.buffers]
        self.position += 1
        return _batches(setup, raw)


def draw_ahead_steps(requested: int, val_every: int) -> int:
    """The largest divisor of gcd(``val_every``, the divergence-check interval) that is <= ``requested``."""
    if int(requested) < 1:
        raise PackError(f"draw_ahead must be >= 1, got {requested}")
    period = math.gcd(int(val_every), DIVERGENCE_CHECK_EVERY)
    return max(d for d in range(1, min(int(requested), period) + 1) if period % d == 0)


#: draw_ahead="auto": on a GPU, where each member's random-number call is a kernel launch
CUDA_DRAW_AHEAD = 50


def _pack_losses(setup: TrainingSetup, net: PackedMLP, stats: _PackStatistics,
                 batches: list[torch.Tensor]) -> torch.Tensor:
    """Unweighted loss of every term for every member: ``(M, n_terms)`` (``TrainingObjective.forward``)."""
    terms = setup.terms
    xs = [term.points((batch,)) for term, batch in zip(terms, batches)]
    x = torch.cat(xs, dim=1) if len(xs) > 1 else xs[0]
    with_tangent = any(isinstance(term, PointwiseTerm) and term.needs_tangent for term in terms)
    y, dy = net.forward(x, with_tangent)
    values = []
    start = 0
    for term, batch, part in zip(terms, batches, xs):
        stop = start + part.shape[1]
        values.append(term.loss_from_outputs(stats, (batch,), y[:, start:stop],
                                             None if dy is None else dy[:, start:stop]))
        start = stop
    return torch.stack(values, dim=1)


def _adam_step(net: PackedMLP, moments: list[list[torch.Tensor]], lrs: Sequence[float], steps_done: int,
               fused: bool) -> None:
    """torch's functional Adam over the stacked tensors, one call per run of members with equal lr.

    ``fused`` as ``Recipe.make_optimizer`` chose for the single trainer; otherwise torch picks the
    implementation by device exactly as ``torch.optim.Adam`` does (same defaults: betas (0.9, 0.999),
    eps 1e-8, no weight decay).
    """
    from torch.optim.adam import adam

    params = net.parameters
    exp_avgs, exp_avg_sqs = moments
    start = 0
    while start < len(lrs):
        stop = start
        while stop < len(lrs) and lrs[stop] == lrs[start]:
            stop += 1
        span = (start, stop - start)
        whole = span == (0, len(lrs))

        def pick(tensor: torch.Tensor) -> torch.Tensor:
            return tensor if whole else tensor.narrow(0, *span)

        # torch.optim.Adam keeps its step count in a float tensor (on the device when fused)
        step_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        steps = [torch.tensor(float(steps_done), dtype=step_dtype, device=net.device if fused else "cpu")
                 for _ in params]
        adam([pick(p.detach()) for p in params], [pick(p.grad) for p in params],
             [pick(t) for t in exp_avgs], [pick(t) for t in exp_avg_sqs], [], steps,
             foreach=None, fused=True if fused else None, amsgrad=False, beta1=0.9, beta2=0.999,
             lr=lrs[start], weight_decay=0.0, eps=1e-8, maximize=False)
        start = stop


def _fused_adam_available(setup: TrainingSetup) -> bool:
    """Whether ``Recipe.make_optimizer`` gives the single trainer fused Adam on this device."""
    if not setup.recipe.fused_adam:
        return False
    try:
        torch.optim.Adam([torch.zeros(1, device=setup.device, requires_grad=True)], lr=1e-3, fused=True)
        return True
    except (RuntimeError, TypeError):
        return False


def train_pack(configs: Sequence[Mapping[str, Any]], report: PackReportFn | None = None, *,
               names: Sequence[str] | None = None, out_dir: str | Path | None = None,
               checkpoint: str | Path | None = None, halving: Halving | None = None,
               activation_mode: str = "auto", draw_ahead: int | str = "auto") -> dict[str, Any]:
    """Train the members ``configs`` together (see the module docstring); returns the pack summary.

    ``activation_mode``: one of ``ACTIVATION_MODES`` (``_ActivationPlan``), or ``"auto"``: ``runs`` on a
    CPU, ``mask`` on a GPU, the fastest of the three on each (RESULTS.md: 2-core CPU; H200, a
    216-member pack: runs 7.0, group 4.5, mask 3.9 ms per step).

    ``draw_ahead``: steps of batches each member draws at once (``_DrawAhead``). ``1`` draws as
    ``train`` does. More saves per-member calls; each member still draws from its own generator, so
    it trains the same whatever pack it is in. On the CPU the generator's stream is sequential and the
    numbers are the single run's either way (tested); on CUDA, Philox offsets advance per call, so a
    member gets other, equally random batches than its single run (which never agreed with a pack
    bit for bit there anyway: other kernels). ``"auto"``: 1 on a CPU, ``CUDA_DRAW_AHEAD`` on a GPU,
    rounded down to a divisor of the checkpoint steps.

    ``names`` name the members (default ``m0, m1, ...``): keys of the ``report`` mapping and of the
    result. Each member's files (``model/``, ``metrics.json``) go to its config's ``out_dir``, else
    ``<out_dir>/members/<name>``; the pack checkpoint (``pack_state.pt`` + every member's best model)
    is ``<out_dir>/checkpoint``. ``report(metrics_by_member, checkpoint_dir)`` is called after every
    validation with the metrics of the members validated then (as ``train``'s ``report``).
    ``checkpoint`` resumes from such a folder. Returns ``{"members": {name: result}, "model_steps",
    "model_steps_saved", "wall_seconds", "out_dir"}``; each result is what ``train`` returns for it,
    with status ``finished`` | ``diverged`` | ``stopped_early``.
    """
    started = time.perf_counter()
    cfgs = check_pack(configs)
    names = [f"m{i}" for i in range(len(cfgs))] if names is None else [str(name) for name in names]
    if len(names) != len(cfgs) or len(set(names)) != len(names):
        raise PackError(f"names must be {len(cfgs)} distinct strings, got {names}")
    if distributed_context().active:
        raise PackError("packed training runs in one process: no DDP process group may be up")
    setup = prepare_training(cfgs[0])
    device = setup.device
    steps = cfgs[0].steps
    val_every = cfgs[0].val_every
    fused = _fused_adam_available(setup)
    if draw_ahead == "auto":
        draw_ahead = CUDA_DRAW_AHEAD if device.type == "cuda" else 1
    if activation_mode == "auto":
        activation_mode = "mask" if device.type == "cuda" else "runs"
    if not isinstance(draw_ahead, int) or isinstance(draw_ahead, bool):
        raise PackError(f"draw_ahead must be 'auto' or a positive int, got {draw_ahead!r}")
    drawer = _DrawAhead(draw_ahead_steps(draw_ahead, val_every))

    pack_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="fhn_pack_"))
    checkpoint_dir = pack_dir / CHECKPOINT_FOLDER
    checkpoint_dir.mkdir(parents=True, exist_ok=True)

    members: list[_Member] = []
    for index, (cfg, name) in enumerate(zip(cfgs, names)):
        spec = setup.make_spec(cfg)
        with torch.random.fork_rng(devices=[]):  # as train(): seeded init, the caller's RNG untouched
            torch.manual_seed(cfg.seed)
            model = build_model(spec).to(device)
        generator = torch.Generator(device=device)
        generator.manual_seed(cfg.seed * 1_000_003 + 1)  # train()'s seed for rank 0
        base_lr = cfg.lr or setup.recipe.lr
        scheduler = None
        if setup.recipe.steps_on_loss:
            stand_in = torch.optim.SGD([torch.zeros(1)], lr=base_lr)
            scheduler = setup.recipe.make_scheduler(stand_in, steps, cfg.warmup_steps)
        counts = model_counts(spec)
        member_out = Path(cfg.out_dir) if cfg.out_dir else pack_dir / "members" / name
        members.append(_Member(index=index, name=name, cfg=cfg, model=model, generator=generator,
                               scheduler=scheduler, out_dir=member_out, counts=counts, base_lr=base_lr))
    # members with the same lr schedule next to each other: one Adam call per run of equal lr
    active = _built_order(members)
    net = PackedMLP([_surrogate(member.model) for member in active], device, activation_mode)
    moments = [[torch.zeros_like(p) for p in net.parameters] for _ in range(2)]
    stats = _PackStatistics(_surrogate(active[0].model), device)
    weights = torch.tensor([term.weight for term in setup.terms], dtype=torch.float32, device=device)
    rungs = halving.rungs(steps) if halving is not None else []
    rows = [member.index for member in active]  # which member each row of the stacked tensors holds
    step = 0
    model_steps = 0
    saved_steps = 0
    if checkpoint is not None:
        step, model_steps, saved_steps, active, rows, moments, rungs = _restore_pack(
            Path(checkpoint), checkpoint_dir, members, net, moments)

    names_terms = [term.name for term in setup.terms]
    full_validation: list | None = None  # the whole validation split, read once for all members
    running = torch.zeros(len(active), len(names_terms) + 1, device=device)
    steps_in_interval = 0
    interval_start = time.perf_counter()
    while step < steps and active:
        batches = drawer.next(setup, active)
        values = _pack_losses(setup, net, stats, batches)
        totals = (values * weights).sum(dim=1)
        for tensor in net.parameters:
            tensor.grad = None
        totals.sum().backward()
        net.mask_gradients()
        with torch.no_grad():
            _adam_step(net, moments, [_member_lr(member, setup, step) for member in active], step, fused)
        if setup.recipe.steps_on_loss:
            for member, total in zip(active, totals.tolist()):
                member.scheduler.step(total)
        running += torch.cat((totals.detach().unsqueeze(1), values.detach()), dim=1)
        steps_in_interval += 1
        step += 1
        model_steps += len(active)
        at_validation = step % val_every == 0 or step == steps
        check = step % DIVERGENCE_CHECK_EVERY == 0 or at_validation
        diverged = set()
        if check:
            finite = torch.isfinite(running).all(dim=1).tolist()
            diverged = {m for m, ok in enumerate(finite) if not ok}
        if not at_validation and not diverged:
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - interval_start
        means = (running / max(1, steps_in_interval)).tolist()
        records: dict[str, dict[str, Any]] = {}
        for m, member in enumerate(active):
            if not at_validation and m not in diverged:
                continue
            member.step = step
            member.train_seconds += seconds
            metrics = member.interval_metrics(means[m], names_terms, _member_lr(member, setup, step), seconds,
                                              steps_in_interval)
            metrics["pack_members"] = len(active)
            status = "diverged" if m in diverged else "running"
            if status != "diverged":
                net.copy_into(m, _surrogate(member.model))
                metrics.update(validation_metrics(member.model, setup.val_x, setup.val_y, setup.rollout))
                if not math.isfinite(metrics["val_mean_err"]):
                    status = "diverged"
            if status != "diverged" and member.record_best(metrics, step):
                save_model(member.model, checkpoint_dir / BEST_MODEL_FOLDER / str(member.index),
                           torchscript=member.cfg.write_torchscript)
            if status == "running" and step >= steps:
                status = "finished"
                if full_validation is None:
                    full_validation = list(full_validation_batches(member.cfg, setup))
                metrics.update(final_full_metrics(member.model, full_validation, device,
                                                  full_rollout(member.cfg, setup)))
                metrics.update(final_physiology(member.model, member.cfg, setup))
                save_model(member.model, checkpoint_dir / FINAL_MODEL_FOLDER / str(member.index),
                           torchscript=member.cfg.write_torchscript)
            member.status = status
            records[member.name] = member.close(metrics, status, member.counts)
        if at_validation and rungs and step >= rungs[0] and step < steps:
            while rungs and step >= rungs[0]:
                rungs.pop(0)
            contenders = [m for m, member in enumerate(active) if member.status == "running"]
            keep = halving.survivors(len(contenders))
            ranked = halving.rank([(m, active[m].name, records[active[m].name]) for m in contenders])
            for m in ranked[keep:]:
                active[m].status = "stopped_early"
                records[active[m].name]["status"] = "stopped_early"
                saved_steps += steps - step
        for m, member in enumerate(active):
            if member.name in records:
                member.history.append(records[member.name])
        kept = [m for m, member in enumerate(active) if member.status == "running"]
        if kept and len(kept) < len(active):  # compact; when none is left the last tensors stay as they are
            moments = net.keep(kept, moments)
            running = running[kept]
            rows = [rows[m] for m in kept]
        active = [active[m] for m in kept]
        running.zero_()
        _save_pack(checkpoint_dir, step, model_steps, saved_steps, members, active, rows, net, moments, rungs)
        if report is not None and records:
            report(records, str(checkpoint_dir))
        steps_in_interval = 0
        interval_start = time.perf_counter()

    results = {}
    for member in members:
        results[member.name] = _write_member(member, checkpoint_dir, setup)
    return {"members": results, "model_steps": model_steps, "model_steps_saved": saved_steps,
            "wall_seconds": time.perf_counter() - started, "out_dir": str(pack_dir)}


def _write_member(member: _Member, checkpoint_dir: Path, setup: TrainingSetup) -> dict[str, Any]:
    """The member's ``model/`` and ``metrics.json``, as ``train`` writes them for a single run: a
    finished member's model is the one at the last step, a stopped or diverged one's its best."""
    last = dict(member.history[-1]) if member.history else {"step": member.step}
    status = member.status
    member.out_dir.mkdir(parents=True, exist_ok=True)
    best = checkpoint_dir / BEST_MODEL_FOLDER / str(member.index)
    final = checkpoint_dir / FINAL_MODEL_FOLDER / str(member.index)
    source = final if status == "finished" else best
    result = {**last, "status": status, "out_dir": str(member.out_dir), "model_dir": None,
              "dataset_dir": str(setup.dataset_dir),
              "best_model_dir": str(best) if (best / "spec.json").exists() else None,
              "reported_error": REPORTED_ERROR_METRIC if status == "finished" else "best_subset_val_mean_err",
              "model_selection": "final" if status == "finished" else "best_subset"}
    if (source / "spec.json").exists():
        shutil.copytree(source, member.out_dir / MODEL_FOLDER, dirs_exist_ok=True)
        result["model_dir"] = str(member.out_dir / MODEL_FOLDER)
    write_json(member.out_dir / METRICS_FILE, {"final": result, "config": member.cfg.to_dict(),
                                                "history": member.history})
    return result


#: What a member's entry in ``pack_state.pt`` holds besides its generator and scheduler.
_PROGRESS_FIELDS = ("status", *(item.name for item in fields(Progress)))


def _save_pack(checkpoint_dir: Path, step: int, model_steps: int, saved_steps: int, members: Sequence[_Member],
               active: Sequence[_Member], rows: Sequence[int], net: PackedMLP, moments: list[list[torch.Tensor]],
               rungs: Sequence[int]) -> None:
    state = {
        "version": PACK_STATE_VERSION, "step": step, "model_steps": model_steps, "model_steps_saved": saved_steps,
        "rungs_left": list(rungs), "active": [member.index for member in active], "rows": list(rows),
        "parameters": [t.detach().clone() for t in net.parameters],
        "exp_avg": moments[0], "exp_avg_sq": moments[1],
        "configs": [member.cfg.to_dict() for member in members],
        "members": [{**{name: getattr(member, name) for name in _PROGRESS_FIELDS},
                     "generator": member.generator.get_state(),
                     "scheduler": None if member.scheduler is None else member.scheduler.state_dict()}
                    for member in members],
    }
    save_state(checkpoint_dir / PACK_STATE_FILE, state)


def _restore_pack(source: Path, checkpoint_dir: Path, members: list[_Member], net: PackedMLP,
                  moments: list[list[torch.Tensor]]):
    """Load ``pack_state.pt`` from ``source`` (and copy its best models into ``checkpoint_dir``)."""
    state_path = source / PACK_STATE_FILE
    state = load_state(state_path, device=net.device, what="train_pack",
                       required=("version", "step", "model_steps", "model_steps_saved", "rungs_left", "active", "rows",
                                 "parameters", "exp_avg", "exp_avg_sq", "configs", "members"))
    if int(state.get("version", 0)) != PACK_STATE_VERSION:
        raise PackError(f"pack checkpoint {state_path} has version {state.get('version')}, this code reads "
                        f"{PACK_STATE_VERSION}")
    saved_configs = state["configs"]
    ours = [member.cfg.to_dict() for member in members]
    if saved_configs != ours:
        raise PackError(f"pack checkpoint {state_path} was written for other member configs; resume with the "
                        f"same configs (in the same order)")
    for member, saved in zip(members, state["members"]):
        for name in _PROGRESS_FIELDS:
            setattr(member, name, saved[name])
        member.generator.set_state(saved["generator"].cpu())
        if member.scheduler is not None and saved["scheduler"] is not None:
            member.scheduler.load_state_dict(saved["scheduler"])
    by_index = {member.index: member for member in members}
    active = [by_index[index] for index in state["active"]]
    rows = [int(index) for index in state["rows"]]
    if active:  # (a pack saved after its last step has nothing left to train)
        # the pack was built in _built_order over all members; keep the saved rows, in the saved order
        position = {member.index: p for p, member in enumerate(_built_order(members))}
        moments = net.keep([position[index] for index in rows], moments)
        with torch.no_grad():
            for tensor, saved in zip(net.parameters, state["parameters"]):
                tensor.copy_(saved)
            for mine, saved in zip(moments[0] + moments[1], state["exp_avg"] + state["exp_avg_sq"]):
                mine.copy_(saved)
    copy_model_folders(source, checkpoint_dir, (BEST_MODEL_FOLDER, FINAL_MODEL_FOLDER))
    return (int(state["step"]), int(state["model_steps"]), int(state["model_steps_saved"]), active, rows, moments,
            [int(rung) for rung in state["rungs_left"]])


def _built_order(members: Sequence[_Member]) -> list[_Member]:
    """The members' order in the stacked tensors: equal lr schedules adjacent (one Adam call per run of
    equal lr), then by activation sequence (few activation runs per layer)."""
    return sorted(members, key=lambda member: (member.lr_group[0], str(member.lr_group[1]),
                                               tuple(layer.activation for layer in member.cfg.layers), member.index))
