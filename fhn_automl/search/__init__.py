"""Search layer: search-space files -> Ray Tune trials trained by Ray Train workers, tracked in MLflow.

``space`` (files, validation, trials), ``grid`` (the layer-sequence grid), ``budgets``, ``runner``
(Ray), ``tracking`` (MLflow), ``untrained`` (sweeps without training); ``python -m
fhn_automl.search`` is the command. Ray and MLflow are imported only by ``runner`` and ``tracking``.
"""
