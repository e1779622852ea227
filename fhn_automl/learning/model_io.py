"""Saving and loading surrogates: ``spec.json`` + ``weights.pt`` (state_dict) + ``model.ts`` (TorchScript).

No pickles of classes: the spec is JSON and the weights a plain state_dict, so ``load_model`` rebuilds
the module from this package alone, and ``model.ts`` runs with plain torch
(``torch.jit.load(path)(x_raw)``; iterators also offer ``.rollout(x0, n_steps)``) for simulators and
the post-stage that never import fhn_automl.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from torch import nn

from fhn_automl._atomic import write_bytes
from fhn_automl.learning.mlp import build_model
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import get_problem

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


class ModelFolderError(ValueError):
    """A saved model folder that cannot be loaded as given: the message names the file, the field and
    the value (a missing or broken spec.json, an unknown problem or activation, weights that are
    truncated, hold Python objects, or do not fit the spec's layers)."""


def load_spec(model_dir: str | os.PathLike) -> ModelSpec:
    """The folder's ``spec.json`` as a ``ModelSpec``; ``ModelFolderError`` names what is wrong with it."""
    path = Path(model_dir) / SPEC_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFolderError(f"{path}: no such file; not a saved model folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFolderError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        spec = ModelSpec.from_dict(data)
    except KeyError as exc:
        raise ModelFolderError(f"{path}: field {exc.args[0]!r} is missing") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFolderError(f"{path}: {exc}") from None
    try:
        problem = get_problem(spec.problem)
    except KeyError as exc:
        raise ModelFolderError(f"{path}: field 'problem': {exc}") from None
    if not spec.inputs or not spec.outputs:
        raise ModelFolderError(f"{path}: field {'inputs' if not spec.inputs else 'outputs'!r} is empty")
    if spec.kind != "iter" and (list(spec.inputs) != list(problem.inputs) or list(spec.outputs) != list(problem.outputs)):
        raise ModelFolderError(f"{path}: fields 'inputs' / 'outputs' {list(spec.inputs)} -> {list(spec.outputs)} are "
                               f"not {spec.problem}'s {list(problem.inputs)} -> {list(problem.outputs)}")
    return spec


def load_model(model_dir: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved surrogate (eval mode) from its spec and weights, without any training code.

    Everything that can be wrong with the folder is a ``ModelFolderError`` naming the file.
    ``weights_only=True``: a weights file holding Python objects is refused, never unpickled.
    """
    import pickle

    spec = load_spec(model_dir)
    model = build_model(spec)
    path = Path(model_dir) / WEIGHTS_FILE
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ModelFolderError(f"{path}: no such file; the model's weights are missing") from None
    except pickle.UnpicklingError:
        raise ModelFolderError(f"{path}: holds Python objects, not only tensors; refused unloaded "
                               f"(weights_only)") from None
    except (EOFError, RuntimeError, OSError, ValueError) as exc:
        raise ModelFolderError(f"{path}: not a readable weights file (empty or truncated?): "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFolderError(f"{path}: expected a state_dict (names -> tensors), got {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFolderError(f"{path}: does not fit spec.json's layers {spec.to_dict()['layers']}: "
                               f"{' '.join(line.strip() for line in first[1:3]) or first[0]}"[:400]) from None
    return model.to(map_location).eval()


def load_torchscript(model_dir: str | os.PathLike, *, map_location: str | torch.device = "cpu"):
    """The self-contained TorchScript module (what a simulator would load)."""
    return torch.jit.load(str(Path(model_dir) / TORCHSCRIPT_FILE), map_location=map_location)
