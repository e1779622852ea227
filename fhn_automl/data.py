"""Generate (or reuse) a problem's training and validation sets: ``python -m fhn_automl.data PROBLEM --out DIR``.

Samples initial states (Latin hypercube; problem A's single fixed state), solves them with forward
Euler (dt = 0.01, a state kept every 0.1 time unit) and writes ``train.parquet``, ``val.parquet``
(+ problem A's ``scarce`` / ``complete``, the iterator's ``rollout``) and ``manifest.json`` into DIR.
Running it again with the same arguments reuses valid files and rebuilds missing or corrupted ones.
"""

from __future__ import annotations

import argparse
import sys

from fhn_automl._cli import non_negative_int, positive_int
from fhn_automl.physics.datasets import DatasetError, build_dataset, read_manifest
from fhn_automl.physics.euler import CudaUnavailableError
from fhn_automl.physics.problems import PROBLEMS, UnknownProblemError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", help=f"one of: {', '.join(sorted(PROBLEMS))}")
    parser.add_argument("--out", required=True, help="folder for the Parquet files and manifest.json")
    parser.add_argument("--n-trajectories", type=positive_int, default=None,
                        help="trajectories over train + val (iterator: pairs); default: the thesis' sizes")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (same seed -> same bytes)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where Euler runs: cuda needs CuPy and a GPU; auto picks cuda when present")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = build_dataset(args.problem, args.out, n_trajectories=args.n_trajectories, seed=args.seed,
                            device=args.device)
    except (UnknownProblemError, DatasetError, CudaUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    manifest = read_manifest(out)
    for name, record in sorted(manifest["files"].items()):
        print(f"{out / name}  {record['rows']:,} rows  sha256 {record['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
