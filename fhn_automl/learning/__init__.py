"""The learning layer: layer-sequence MLP surrogates, their losses and the training loop.

Imports torch and ``fhn_automl.physics`` only (never Ray or MLflow), so a trial is a plain function
``train(config, report)`` that runs anywhere torch does. Public names are re-exported here; the
modules are named after their concept (``architecture``, ``mlp``, ``model_io``, ``losses``,
``windows``, ``recipes``, ``trainer``, ...).
"""

from fhn_automl.learning.architecture import (ACTIVATIONS, SHAPE_CLASSES, LayerNotationError, LayerSpec,
                                              count_macs, count_neurons, count_parameters, format_layers,
                                              parse_layers, shape_class)
from fhn_automl.learning.config import TrainConfig
from fhn_automl.learning.mlp import (ChainedWindowSurrogate, IteratorSurrogate, SplitWindowSurrogate, SurrogateMLP,
                                     build_model)
from fhn_automl.learning.model_io import load_model, load_spec, load_torchscript, save_model
from fhn_automl.learning.recipes import RECIPES, Recipe, get_recipe
from fhn_automl.learning.spec import SPEC_VERSION, ModelSpec
from fhn_automl.learning.trainer import train

__all__ = [
    "ACTIVATIONS", "SHAPE_CLASSES", "LayerNotationError", "LayerSpec", "count_macs", "count_neurons",
    "count_parameters", "format_layers", "parse_layers", "shape_class", "TrainConfig", "ChainedWindowSurrogate",
    "IteratorSurrogate", "SplitWindowSurrogate", "SurrogateMLP", "build_model", "load_model", "load_spec",
    "load_torchscript", "save_model", "RECIPES", "Recipe", "get_recipe", "SPEC_VERSION", "ModelSpec", "train",
]
