"""python -m fhn_automl.serve PROBLEM [--alias pareto] [--port 5001]: serve a registered model over HTTP.

Runs MLflow's scoring server (``mlflow models serve -m models:/fhn_automl.PROBLEM@ALIAS --env-manager
local``) with this Python's environment: MLflow starts the server by running ``uvicorn`` found on PATH,
so ``.venv/bin/mlflow models serve ...`` failed with ``exec: uvicorn: not found`` unless the venv was
on PATH; this command puts the interpreter's own bin folder first. Predict with

    curl http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
         -d '{"dataframe_split": {"columns": ["t", "u0", "w0"], "data": [[1.0, 0.5, 0.0]]}}'
    -> {"predictions": [{"u": ..., "w": ...}]}

Before starting, the registered model and alias are looked up (exit 2 with a named error when the
store, the model or the alias is missing). A smoke-budget search registers the alias family
``smoke`` (``--alias smoke``); ``pareto`` holds the fronts of small and paper searches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from fhn_automl._cli import positive_int
from fhn_automl.post.errors import NoRegisteredModelsError, PostStageError
from fhn_automl.post.registry import registered_model_name
from fhn_automl.post.runs import resolve_tracking_uri


def server_command(model_uri: str, *, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow models serve`` command line and an environment whose PATH finds this venv's uvicorn."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    mlflow_exe = shutil.which("mlflow", path=bin_dir)
    start = [mlflow_exe] if mlflow_exe else [sys.executable, "-m", "mlflow"]
    return start + ["models", "serve", "-m", model_uri, "--env-manager", "local", "--host", host,
                    "--port", str(port)], env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", help="problem name, e.g. problem_b_s (registered model fhn_automl.problem_b_s)")
    parser.add_argument("--alias", default="pareto",
                        help="alias to serve: pareto (most accurate of the front, the default), pareto-2, ...; "
                             "smoke for a smoke-budget search")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this "
                        "machine only; the server has no authentication)")
    parser.add_argument("--port", type=positive_int, default=5001, help="port (default 5001; the MLflow UI takes 5000)")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db")
    args = parser.parse_args(argv)
    try:
        uri = resolve_tracking_uri(args.tracking_uri)
        _check_alias(uri, registered_model_name(args.problem), args.alias)
    except PostStageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command, env = server_command(f"models:/{registered_model_name(args.problem)}@{args.alias}",
                                  host=args.host, port=args.port)
    env["MLFLOW_TRACKING_URI"] = uri
    print(f"serving models:/{registered_model_name(args.problem)}@{args.alias} from {uri} on "
          f"http://{args.host}:{args.port}/invocations", flush=True)
    os.execve(command[0], command, env)
    return 0  # not reached: execve replaces this process


def _check_alias(uri: str, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_model_version_by_alias(name, alias)
    except MlflowException:
        try:
            aliases = sorted(client.get_registered_model(name).aliases)
        except MlflowException:
            raise NoRegisteredModelsError(f"no registered model {name!r} in {uri}; run a search (its post-stage "
                                          "registers the front) or pass --tracking-uri") from None
        raise NoRegisteredModelsError(f"registered model {name!r} has no alias {alias!r} (aliases: "
                                      f"{', '.join(aliases) or 'none'})") from None


if __name__ == "__main__":
    sys.exit(main())
