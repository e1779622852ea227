"""python -m fhn_automl.pull PROBLEM [--alias pareto] --to DIR: the registered Pareto models, ready for a simulator.

Per model, a folder with ``model.ts`` (self-contained TorchScript: ``torch.jit.load('model.ts')(x)``
on raw float32 inputs, plain torch only), ``spec.json``, ``model.engine`` (the raw TensorRT engine,
where one was built) and ``model_card.md`` / ``model_card.json`` (inputs, ranges, units, validation
error, latency and the device it was measured on); ``index.json`` lists them in front order (alias
``pareto`` = most accurate, then ``pareto-2``, ...) of the registered model ``fhn_automl.PROBLEM``
(the same versions load as MLflow models: ``mlflow.pyfunc.load_model("models:/fhn_automl.PROBLEM@pareto")``).
DIR is replaced as a whole, only once every file has been fetched. Exit 2 when the problem has no
registered models. A smoke-budget search registers its models under the alias family ``smoke``
(``--alias smoke``), never ``pareto``.
"""

from __future__ import annotations

import argparse
import sys

from fhn_automl.post.errors import cli_error_message
from fhn_automl.post.registry import pull_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.pull", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", help="problem name, e.g. problem_b_s (registered model fhn_automl.problem_b_s)")
    parser.add_argument("--alias", default="pareto",
                        help="alias family to pull (default pareto; smoke for the models of a smoke-budget search)")
    parser.add_argument("--to", required=True, help="folder to write: new, empty or an earlier pull's (only the "
                        "files it wrote are replaced); "
                        "any other folder is refused")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db")
    args = parser.parse_args(argv)
    try:
        folders = pull_models(args.problem, args.to, alias=args.alias, tracking_uri=args.tracking_uri)
    except Exception as exc:  # a named error, or MLflow that stalls or fails mid-way: not a traceback
        reason = cli_error_message(exc)
        if reason is None:
            raise
        print(f"error: {reason}", file=sys.stderr)
        return 2
    for folder in folders:
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
