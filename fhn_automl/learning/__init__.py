"""The learning layer: layer-sequence MLP surrogates, their losses and the training loop.

Imports torch and ``fhn_automl.physics`` only (never Ray or MLflow), so a trial is a plain function
``train(config, report)`` that runs anywhere torch does. Public names are re-exported here; the
modules are named after their concept (``activations``, ``architecture``, ``mlp``, ``model_io``,
``losses``, ``windows``, ``recipes``, ``trainer``, ...).

The re-exports are lazy (PEP 562): ``import fhn_automl.learning.architecture`` (and ``activations``,
``windows``, ``config``, ``recipes``, ``spec``) must work without torch, because the search driver
validates search files with them; importing the trainer here would pull torch in for all of them.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(("ACTIVATIONS", "SHAPE_CLASSES", "LayerNotationError", "LayerSpec",
                     "architecture_figures", "count_macs", "count_neurons", "count_parameters",
                     "format_layers", "parse_layers", "shape_class"), "architecture"),
    **dict.fromkeys(("ACTIVATION_REGISTRY", "Activation", "get_activation"), "activations"),
    "TrainConfig": "config",
    **dict.fromkeys(("ChainedWindowSurrogate", "IteratorSurrogate", "SplitWindowSurrogate",
                     "SurrogateMLP", "build_model"), "mlp"),
    **dict.fromkeys(("load_model", "load_spec", "load_torchscript", "save_model"), "model_io"),
    **dict.fromkeys(("RECIPES", "Recipe", "get_recipe"), "recipes"),
    **dict.fromkeys(("SPEC_VERSION", "ModelSpec"), "spec"),
    **dict.fromkeys(("untrained_model", "untrained_spec"), "untrained"),
    "train": "trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
