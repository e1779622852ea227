"""What the MLflow side of a trial costs the search driver: the MLflow model and the dataset inputs.

Per finished trial the driver logs the trial's model as an MLflow PyTorch model
(``tracking.log_mlflow_model``) and, per trial run, the dataset's train/validation files as
dataset inputs (``tracking.log_dataset_inputs``). This times both on a small trained B_S model in a
throw-away SQLite store, first call (imports included) and the following ones.

    python benchmarks/tracking_cost.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from fhn_automl.learning.trainer import train

    with tempfile.TemporaryDirectory(prefix="tracking_cost_") as tmp:
        root = Path(tmp)
        trained = train({"problem": "problem_b_s", "layers": "silu-32,tanh-32,silu-32", "steps": 100, "val_every": 100,
                         "n_trajectories": 40, "data_root": str(root / "data"), "out_dir": str(root / "train"),
                         "device": "cpu", "threads": 1, "seed": 0})
        started = time.perf_counter()
        from mlflow.tracking import MlflowClient

        from fhn_automl.search.tracking import log_dataset_inputs, log_mlflow_model

        uri = f"sqlite:///{root / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri)
        experiment_id = client.create_experiment("cost", artifact_location=(root / "artifacts").as_uri())
        print(f"store set-up (imports, schema): {time.perf_counter() - started:.2f} s")
        for label, log in (("log_mlflow_model", lambda run: log_mlflow_model(client, experiment_id, run,
                                                                               Path(trained["model_dir"]))),
                           ("log_dataset_inputs", lambda run: log_dataset_inputs(client, run, trained["dataset_dir"]))):
            seconds = []
            for _ in range(args.repeats + 1):
                run = client.create_run(experiment_id).info.run_id
                t0 = time.perf_counter()
                log(run)
                seconds.append(time.perf_counter() - t0)
            later = seconds[1:]
            print(f"{label}: first call {seconds[0]:.3f} s; next {len(later)}: median {statistics.median(later):.3f} s, "
                  f"max {max(later):.3f} s")


if __name__ == "__main__":
    main()
