"""Saving and loading surrogates: ``spec.json`` + ``weights.pt`` (state_dict) + ``model.ts`` (TorchScript).

No pickles of classes: the spec is JSON and the weights a plain state_dict, so ``load_model`` rebuilds
the module from this package alone, and ``model.ts`` runs with plain torch
(``torch.jit.load(path)(x_raw)``; iterators also offer ``.rollout(x0, n_steps)``) for simulators and
the post-stage that never import fhn_automl.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from fhn_automl._atomic import write_bytes
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.spec import ModelSpec

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.pt"
TORCHSCRIPT_FILE = "model.ts"


def unwrap(model: nn.Module) -> nn.Module:
    """The surrogate inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_model(model: nn.Module, out_dir: str | os.PathLike, *, torchscript: bool = True) -> Path:
    """Write ``spec.json``, ``weights.pt`` and (unless asked not to) ``model.ts`` into ``out_dir``.

    The TorchScript copy is made on the CPU so it loads on machines without a GPU.
    Returns the folder.
    """
    model = unwrap(model)
    spec: ModelSpec = model.spec
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(out / WEIGHTS_FILE, buffer.getvalue())
    if torchscript:
        cpu_copy = build_model(spec)
        cpu_copy.load_state_dict(state)
        cpu_copy.eval()
        scripted = torch.jit.script(cpu_copy)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        write_bytes(out / TORCHSCRIPT_FILE, buffer.getvalue())
    # spec last: a folder with a spec.json is a complete model
    write_bytes(out / SPEC_FILE, spec.to_json().encode())
    return out


def load_spec(model_dir: str | os.PathLike) -> ModelSpec:
    return ModelSpec.from_json((Path(model_dir) / SPEC_FILE).read_text())


def load_model(model_dir: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved surrogate (eval mode) from its spec and weights, without any training code."""
    spec = load_spec(model_dir)
    model = build_model(spec)
    state = torch.load(Path(model_dir) / WEIGHTS_FILE, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model.to(map_location).eval()


def load_torchscript(model_dir: str | os.PathLike, *, map_location: str | torch.device = "cpu"):
    """The self-contained TorchScript module (what a simulator would load)."""
    return torch.jit.load(str(Path(model_dir) / TORCHSCRIPT_FILE), map_location=map_location)
