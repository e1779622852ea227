"""The resume-checkpoint format, one home for both training loops (``trainer.train`` and
``packed.train_pack``): how a state file is written, read, and refused.

A state file is a ``torch.save`` of a dict of tensors and plain Python values, written atomically.
It is read with ``torch.load(weights_only=True)``: a checkpoint folder may come from elsewhere (a
shared storage, a copied run), and a full unpickle would run any code it names. So:

* a file that needs more than tensors and plain values is refused, never executed
  (``UnsafeCheckpointError``);
* a missing, empty, truncated or foreign file is a ``CheckpointError`` naming it, as is one without
  the keys its loop needs.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fhn_automl._atomic import write_atomically


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be resumed: missing, truncated, or of another architecture.
    The message names the file."""


class UnsafeCheckpointError(CheckpointError):
    """A state file that needs a full unpickle (arbitrary objects): refused, never executed."""


def plain(value: Any) -> Any:
    """NumPy scalars and arrays as Python values, so the state loads under ``weights_only=True``."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file, never half of one)."""
    write_atomically(path, lambda temporary: torch.save(state, temporary))


def load_state(path: Path, *, device: torch.device | str, required: Iterable[str], what: str) -> dict[str, Any]:
    """The state dict at ``path`` (``weights_only``); ``what`` names the writer for the error messages."""
    if not path.exists():
        raise CheckpointError(f"no {path.name} in checkpoint folder {path.parent}"
                              + ("" if path.parent.is_dir() else " (no such folder)"))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path} holds objects other than tensors and plain Python values, so it was not loaded "
            f"(it was not written by fhn_automl's {what}, or was tampered with): {str(exc).splitlines()[0]}") from exc
    except (EOFError, RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (empty or truncated?): "
                              f"{(str(exc).splitlines() or [type(exc).__name__])[0][:200]}") from None
    required = tuple(required)
    if not isinstance(state, dict) or any(key not in state for key in required):
        raise CheckpointError(f"{path}: not a {what} checkpoint (needs {', '.join(required)})")
    return state


def copy_model_folders(source: Path, checkpoint_dir: Path, folders: Iterable[str]) -> None:
    """The resumed run's saved models (best, final, ...) copied into this run's checkpoint folder."""
    if source.resolve() == checkpoint_dir.resolve():
        return
    for folder in folders:
        if (source / folder).exists():
            shutil.copytree(source / folder, checkpoint_dir / folder, dirs_exist_ok=True)
