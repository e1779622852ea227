"""Search layer: search-space files -> Ray Tune trials trained by Ray Train workers, tracked in MLflow.

``space`` (files, validation, trials), ``grid`` (the layer-sequence grid), ``budgets``, ``options``
(what a search is asked and answers), ``runner`` (runs a search on Ray), with ``resources``,
``ray_cluster``, ``trial`` (the Tune trainables), ``worker`` (training on a worker) and ``monitor``
(the Tune callback); ``tracking`` (MLflow), ``high_error`` (high-error sets), ``untrained`` (sweeps
without training); ``python -m fhn_automl.search`` is the command. Ray and MLflow are imported at
module level only by ``monitor`` (Ray) and lazily elsewhere.
"""
