"""Layer-sequence MLPs that take raw inputs and return raw outputs, plus the windowed / iterator wrappers.

Input scaling to [-1, 1] and output de-standardisation live inside the module (as buffers), so a
simulator calls a surrogate on raw ``t, u0, w0, k`` and gets raw ``u, w`` back, and the saved
TorchScript needs nothing else. Training uses ``forward_normalised`` (the standardised outputs the
loss compares) and ``time_tangent`` (outputs and their d/dt in one forward pass, for the PINN
residual: a hand-written forward-mode tangent costs ~2.2x a plain step where reverse-mode
``autograd.grad`` costs ~3.1x, FACTS.md).

Every model class here is final and has the same face: ``spec``, ``forward(x_raw)``,
``forward_normalised(x_raw)``, ``time_tangent(x_raw)`` (trajectory models) and, for iterators,
``rollout(x0, n_steps)``. ``build_model(spec)`` picks the class.
"""

from __future__ import annotations

import torch
from torch import nn

from fhn_automl.learning.activations import get_activation
from fhn_automl.learning.spec import ModelSpec


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for a canonical name (rows of ``activations.ACTIVATION_REGISTRY``)."""
    return get_activation(name).module()


def activation_with_derivative(name: str, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sigma(z) and sigma'(z), sharing work between the two (both stay differentiable)."""
    return get_activation(name).value_and_slope(z)


def _scaling(spec: ModelSpec, t_range: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre, 1 / half-width) per input, so that (x - centre) * inv maps each range onto [-1, 1]."""
    centre, inverse = [], []
    for name in spec.inputs:
        lo, hi = t_range if (name == "t" and t_range is not None) else spec.ranges[name]
        if spec.input_scaling and hi > lo:
            centre.append(0.5 * (lo + hi))
            inverse.append(2.0 / (hi - lo))
        else:
            centre.append(0.0)
            inverse.append(1.0)
    return torch.tensor(centre, dtype=torch.float32), torch.tensor(inverse, dtype=torch.float32)


class SurrogateMLP(nn.Module):
    """One MLP: raw inputs ``(N, n_in)`` in ``spec.inputs`` order -> raw outputs ``(N, n_out)``.

    ``t_range`` overrides the scaling range of ``t`` (a window network of a split model sees only
    its own window).
    """

    __jit_ignored_attributes__ = ["spec"]

    def __init__(self, spec: ModelSpec, *, t_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.spec = spec
        centre, inverse = _scaling(spec, t_range)
        self.register_buffer("input_centre", centre)
        self.register_buffer("input_inverse_half_width", inverse)
        self.register_buffer("output_mean", torch.tensor(spec.output_mean, dtype=torch.float32))
        self.register_buffer("output_std", torch.tensor(spec.output_std, dtype=torch.float32))
        layers: list[nn.Module] = []
        width_in = spec.n_in
        for layer in spec.layers:
            layers += [nn.Linear(width_in, layer.width), make_activation(layer.activation)]
            width_in = layer.width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, spec.n_out)
        self.activation_names = [layer.activation for layer in spec.layers]
        self.time_index = spec.inputs.index("t") if "t" in spec.inputs else -1

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_centre) * self.input_inverse_half_width

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised outputs (what the losses compare): (y - mean) / std."""
        return self.head(self.body(self.scale_inputs(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalised(x) * self.output_std + self.output_mean

    def output_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) that de-standardise the outputs."""
        return self.output_mean, self.output_std

    def time_tangent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(standardised outputs, their raw-time derivative d/dt) by a forward-mode tangent.

        The tangent of the scaled input along t is a constant one-hot vector, so the first layer's
        tangent is a single weight column broadcast over the batch; each later layer costs one extra
        matmul. Units: d(y_normalised)/d(t_raw), i.e. dy_raw/dt = result * output_std.
        """
        if self.time_index < 0:
            raise ValueError("time_tangent needs a model with a 't' input")
        h = self.scale_inputs(x)
        modules = list(self.body)
        tangent: torch.Tensor | None = None
        for position in range(0, len(modules), 2):
            linear = modules[position]
            z = linear(h)
            if tangent is None:
                dz = (linear.weight[:, self.time_index] * self.input_inverse_half_width[self.time_index]).unsqueeze(0)
            else:
                dz = tangent @ linear.weight.t()
            h, slope = activation_with_derivative(self.activation_names[position // 2], z)
            tangent = slope * dz
        return self.head(h), tangent @ self.head.weight.t()


class SplitWindowSurrogate(nn.Module):
    """Time-domain splitting (a), thesis 3.4.1: one network per window [t_k, t_k+1].

    A point is evaluated by the network of the window that holds its t (interface points belong to
    the later window; t beyond the last edge to the last window). The continuity loss (eq. 3.20)
    ties neighbouring networks at the interfaces during training.
    """

    __jit_ignored_attributes__ = ["spec"]

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        edges = spec.window_edges
        self.windows = nn.ModuleList(
            SurrogateMLP(spec, t_range=(edges[k], edges[k + 1])) for k in range(len(edges) - 1))
        self.register_buffer("inner_edges", torch.tensor(edges[1:-1], dtype=torch.float32))
        self.time_index = spec.inputs.index("t")

    def window_index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bucketize(x[:, self.time_index].contiguous(), self.inner_edges, right=True)

    def _dispatch(self, x: torch.Tensor, normalised: bool) -> torch.Tensor:
        which = self.window_index(x)
        out = torch.empty(x.shape[0], self.output_dim(), dtype=x.dtype, device=x.device)
        for k, net in enumerate(self.windows):
            rows = (which == k).nonzero().squeeze(1)
            if rows.numel() > 0:
                part = x.index_select(0, rows)
                y = net.forward_normalised(part) if normalised else net(part)
                out.index_copy_(0, rows, y)
        return out

    def output_dim(self) -> int:
        return self.windows[0].head.out_features

    def output_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows[0].output_statistics()

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        return self._dispatch(x, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._dispatch(x, False)

    def time_tangent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        which = self.window_index(x)
        n_out = self.output_dim()
        value = torch.zeros(x.shape[0], n_out, dtype=x.dtype, device=x.device)
        slope = torch.zeros_like(value)
        for k, net in enumerate(self.windows):
            rows = (which == k).nonzero().squeeze(1)
            if rows.numel() > 0:
                y, dy = net.time_tangent(x.index_select(0, rows))
                value = value.index_copy(0, rows, y)
                slope = slope.index_copy(0, rows, dy)
        return value, slope


class ChainedWindowSurrogate(nn.Module):
    """Time-domain splitting (b), thesis 3.4.1 / Fig. 11: one network trained on [0, T_w] with the
    initial state as input, marched at inference: the state at the end of one window becomes the
    initial condition of the next, up to ``spec.horizon``.
    """

    __jit_ignored_attributes__ = ["spec"]

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = SurrogateMLP(spec, t_range=(spec.window_edges[0], spec.window_edges[1]))
        self.window_length = float(spec.window_edges[1] - spec.window_edges[0])
        self.time_index = spec.inputs.index("t")
        # the state inputs that the previous window's outputs replace, in output order
        state_inputs = {"u": "u0", "w": "w0"}
        self.state_indices = [spec.inputs.index(state_inputs[name]) for name in spec.outputs]

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Within the training window only (what the training losses use)."""
        return self.net.forward_normalised(x)

    def output_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.output_statistics()

    def time_tangent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.time_tangent(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x[:, self.time_index]
        n_hops = torch.clamp(torch.floor(t / self.window_length), min=0.0)
        local = x.clone()
        local[:, self.time_index] = t - n_hops * self.window_length
        hop = x.clone()
        hop[:, self.time_index] = torch.full_like(t, self.window_length)
        most_hops = int(n_hops.max().item()) if x.shape[0] > 0 else 0
        for j in range(most_hops):
            still_marching = (n_hops > j).unsqueeze(1)
            end_state = self.net(hop)
            for position, column in enumerate(self.state_indices):
                hop[:, column] = torch.where(still_marching[:, 0], end_state[:, position], hop[:, column])
        for column in self.state_indices:
            local[:, column] = hop[:, column]
        return self.net(local)


class IteratorSurrogate(nn.Module):
    """Iterator model (ITNN, thesis 3.3.3): state (u, w[, k]) -> state ``dt_net`` later.

    ``rollout`` applies it repeatedly, keeping the parameters (k) fixed, as the thesis' validation
    of whole trajectories does (4.2.3).
    """

    __jit_ignored_attributes__ = ["spec"]

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.net = SurrogateMLP(spec)
        self.n_state = spec.n_out

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_normalised(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def output_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.output_statistics()

    @torch.jit.export
    def rollout(self, x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        """States at 0, dt_net, ..., n_steps * dt_net: shape ``(N, n_steps + 1, n_state)``."""
        states = [x0[:, : self.n_state]]
        parameters = x0[:, self.n_state:]
        x = x0
        for _ in range(n_steps):
            nxt = self.net(x)
            states.append(nxt)
            x = torch.cat([nxt, parameters], dim=1)
        return torch.stack(states, dim=1)


def build_model(spec: ModelSpec) -> nn.Module:
    """The module a spec describes, freshly initialised (load weights with ``load_state_dict``)."""
    if spec.kind == "iter":
        if spec.window_mode != "none":
            raise ValueError("iterator models take no time windows")
        return IteratorSurrogate(spec)
    if spec.window_mode == "split":
        return SplitWindowSurrogate(spec)
    if spec.window_mode == "chained":
        return ChainedWindowSurrogate(spec)
    return SurrogateMLP(spec)
