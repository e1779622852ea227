"""Evaluate a saved ``model.ts`` with plain torch (no fhn_automl import) on a dataset split.

    python benchmarks/torchscript_reproduce.py MODEL_DIR DATASET_DIR [--split val]

Reads ``spec.json`` only for the input / output column names, feeds the raw columns to the
TorchScript module and prints the thesis' mean and max point error |dU| + |dW| over the whole split.
The done-when check of the learning layer: this reproduces the validation error ``train`` reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("dataset_dir")
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)
    spec = json.loads((Path(args.model_dir) / "spec.json").read_text())
    table = pq.read_table(Path(args.dataset_dir) / f"{args.split}.parquet")
    x = torch.from_numpy(np.stack([table.column(n).to_numpy().astype(np.float32) for n in spec["inputs"]], axis=1))
    y = torch.from_numpy(np.stack([table.column(n).to_numpy().astype(np.float32) for n in spec["outputs"]], axis=1))
    model = torch.jit.load(str(Path(args.model_dir) / "model.ts"))
    with torch.no_grad():
        errors = torch.cat([(model(x[i:i + 65536]) - y[i:i + 65536]).abs().sum(dim=1) for i in range(0, len(x), 65536)])
    print(json.dumps({"points": len(errors), "mean_err": float(errors.mean()), "max_err": float(errors.max()),
                      "fhn_automl_imported": "fhn_automl" in sys.modules}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
