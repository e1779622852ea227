"""Post-stage: Pareto front, compile (TensorRT -> torch.compile -> eager), benchmark against Euler,
ANOVA and plots, model registry and pull.

``run_post_stage(experiment_name, tracking_uri=None, out_dir=None, ...)`` is the one entry point:
``fhn_automl.pipeline`` (what ``python -m fhn_automl.search`` runs) calls it after a search, with
``budget=<the search's budget>``, which picks the sizes from ``fhn_automl.post.settings.PRESETS``; the
search layer itself never imports this package. ``python -m fhn_automl.post EXPERIMENT [--budget NAME]``
is the same from a shell.
Heavy and optional packages (mlflow, statsmodels, matplotlib, torch_tensorrt) are imported inside
functions; ``run_post_stage`` and ``PostStageResult`` (which load torch) are resolved on first use, so
importing a light module of this package (errors, settings, staging, thesis_tables) stays light.
"""

from fhn_automl.post.errors import (BackendNotInstalledError, ExperimentNotFoundError, NoFinishedTrialsError,
                                    NoRegisteredModelsError, PostStageError)
from fhn_automl.post.settings import PostSettings, post_settings


def __getattr__(name: str):
    if name in ("run_post_stage", "PostStageResult"):  # post.stage loads torch: on first use only
        from fhn_automl.post import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'fhn_automl.post' has no attribute {name!r}")


__all__ = ["run_post_stage", "PostStageResult", "PostSettings", "post_settings", "PostStageError", "ExperimentNotFoundError", "NoFinishedTrialsError",
           "NoRegisteredModelsError", "BackendNotInstalledError"]
