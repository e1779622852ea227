"""fhn_automl: neural surrogates of cardiac cell ODE models, searched on Ray and tracked in MLflow.

Layers (each imports only those before it):
``physics`` (cell models, problems, Euler solver, datasets) -> ``learning`` (MLPs, losses, training)
-> ``search`` (Ray Tune / Train, MLflow) -> ``post`` (Pareto front, compile, benchmark, registry).
"""

__version__ = "0.1.0"
