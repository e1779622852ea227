"""Search layer: search-space files -> Ray Tune trials trained by Ray Train workers, tracked in MLflow.

``space`` (files, validation, trials), ``grid`` (the layer-sequence grid), ``budgets``, ``options``
(what a search is asked and answers), ``runner`` (runs a search on Ray), with ``resources``,
``endpoints``, ``ray_cluster``, ``trial`` (the Tune trainables), ``worker`` (training on a worker)
and ``monitor`` (the Tune callback); ``tracking`` and ``tracking_tags`` (MLflow), ``high_error``
(high-error sets), ``untrained`` (sweeps without training), ``cli`` (the command's options).
``python -m fhn_automl.search`` runs ``fhn_automl.pipeline`` (search, then post-stage). Ray is imported
at module level by the Tune pieces (``monitor``, ``moasha``, ``packed_trial``, ``mo_packed``) and
``runner``, which imports ``monitor``; MLflow only by ``mlflow_surrogate_model`` (the model code MLflow
loads). The rest import them inside functions, so ``cli`` and ``space`` load neither.
"""
