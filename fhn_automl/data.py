"""Generate (or reuse) a problem's training and validation sets: ``python -m fhn_automl.data PROBLEM --out DIR``.

Samples initial states (Latin hypercube; problem A's single fixed state), solves them with forward
Euler (dt = 0.01, a state kept every 0.1 time unit) and writes ``train.parquet``, ``val.parquet``
(+ problem A's ``scarce`` / ``complete``, the iterator's ``rollout``) and ``manifest.json`` into DIR.
Running it again with the same arguments reuses valid files and rebuilds missing or corrupted ones.

A beat problem of your own cell model is a problem too: ``python -m fhn_automl.data
'beat:my_model.mmt?vary=gKr,gKs' --out DIR`` (``physics.problems.beat_file_problem``: options, defaults).

N-state cell models: ``python -m fhn_automl.data --cell-model NAME_OR_PATH --out DIR`` (no problem name)
writes one pre-paced beat per cell, cells differing in their parameters (``physics.cell_datasets``).
NAME is a built-in model (fhn, tp06_epi, tp06_endo, tp06_m, mitchell_schaeffer) or the path of a Myokit ``.mmt`` or
CellML ``.cellml`` file.
"""

from __future__ import annotations

import argparse
import sys

from fhn_automl._cli import non_negative_int, positive_int
from fhn_automl.physics.cell_datasets import build_cell_dataset
from fhn_automl.physics.datasets import DatasetError, build_dataset, read_manifest
from fhn_automl.physics.euler import CudaUnavailableError, resolve_backend
from fhn_automl.physics.ionic_model import CellModelError
from fhn_automl.physics.ionic_sources import resolve_cell_model
from fhn_automl.physics.problems import PROBLEMS, UnknownProblemError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", nargs="?", help=f"one of: {', '.join(sorted(PROBLEMS))}, or "
                        "'beat:MODEL_FILE?vary=P1,P2[&OPTION=VALUE...]' (omit with --cell-model)")
    parser.add_argument("--out", required=True, help="folder for the Parquet files and manifest.json")
    parser.add_argument("--n-trajectories", type=positive_int, default=None,
                        help="trajectories over train + val (iterator: pairs); default: the thesis' sizes")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="sampling seed (same seed -> same bytes)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where Euler runs: cuda needs CuPy and a GPU; auto picks cuda when present")
    cell = parser.add_argument_group("N-state cell models (--cell-model)")
    cell.add_argument("--cell-model", default=None,
                      help="built-in name (fhn, tp06_epi, tp06_endo, tp06_m, mitchell_schaeffer) or a .mmt / .cellml path")
    cell.add_argument("--beats", type=non_negative_int, default=10, help="pre-pacing beats before the stored beat")
    cell.add_argument("--method", choices=("rush_larsen", "euler"), default="rush_larsen", help="explicit solver")
    cell.add_argument("--dt", type=float, default=None, help="solver step (default: the model's)")
    cell.add_argument("--vary", default=None,
                      help="comma-separated parameters drawn per cell (+-30 %%; default: the model's own list, "
                           "none for model files)")
    args = parser.parse_args(argv)
    if (args.problem is None) == (args.cell_model is None):
        parser.error("give either a problem name or --cell-model, not both or neither")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cell_model is not None:
        return _cell_model_dataset(args)
    try:
        out = build_dataset(args.problem, args.out, n_trajectories=args.n_trajectories, seed=args.seed,
                            device=args.device)
    except (UnknownProblemError, DatasetError, CudaUnavailableError, CellModelError) as error:
        print(f"error: {error}", file=sys.stderr)  # CellModelError: a beat problem's cell outside its ranges
        return 2
    _print_manifest(out)
    return 0


def _print_manifest(out) -> None:
    """One line per file the dataset's manifest lists: path, rows, the start of its SHA-256."""
    for name, record in sorted(read_manifest(out)["files"].items()):
        print(f"{out / name}  {record['rows']:,} rows  sha256 {record['sha256'][:12]}")


def _cell_model_dataset(args: argparse.Namespace) -> int:
    try:
        # CudaUnavailableError (saying what to install) before any work; auto: the GPU when there is one
        backend = {"cpu": "numba", "cuda": "cuda"}[resolve_backend(args.device)]
        model = resolve_cell_model(args.cell_model)  # parsed once, here; the object flows down
        out = build_cell_dataset(model, args.out, n_cells=args.n_trajectories or 64, seed=args.seed,
                                 n_beats_prepace=args.beats, dt=args.dt, method=args.method, backend=backend,
                                 vary=None if args.vary is None else tuple(filter(None, args.vary.split(","))))
    except (CellModelError, DatasetError, CudaUnavailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_manifest(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
