"""python -m fhn_automl.post EXPERIMENT: Pareto front, benchmark report, plots and registration after a search.

Writes the report to ``runs/post/EXPERIMENT`` (or ``--out``), logs it as artifacts of a post-stage
run in the same MLflow experiment, and registers the front as the registered model
``fhn_automl.<problem>`` (e.g. ``fhn_automl.problem_b_s``) with the alias family ``pareto``, or
``smoke`` when the search ran at the smoke budget (pull it with ``python -m fhn_automl.pull PROBLEM
--to DIR``, serve it with ``python -m fhn_automl.serve PROBLEM``). The stage's sizes default to the
search's own budget (the experiment's ``fhn_automl.budget`` tag), so this reruns what the search's
post-stage ran. Exit 2 on bad input (unknown experiment, no finished trials, a backend that is not
installed), with nothing written.
"""

from __future__ import annotations

import argparse
import sys

from fhn_automl._cli import device_name, non_negative_float, positive_int
from fhn_automl.post import stage  # stage.run_post_stage looked up per call, so a stand-in takes effect
from fhn_automl.post.compile import BACKENDS, PRECISIONS
from fhn_automl.post.console import where_to_look
from fhn_automl.post.errors import cli_error_message
from fhn_automl.post.settings import BUDGET_NAMES, DEFAULT_BUDGET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.post", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="MLflow experiment of the search, e.g. problem_b_s-smoke")
    parser.add_argument("--tracking-uri", default=None,
                        help="default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlruns/mlflow.db")
    parser.add_argument("--out", default=None, help="report folder (default runs/post/EXPERIMENT)")
    parser.add_argument("--budget", choices=BUDGET_NAMES, default=None,
                        help="sizes of the stage (fhn_automl.post.settings): smoke (CI, < 1 min for a few trials), "
                             "small, paper (the thesis' scale); default: the search's budget (as the search's own "
                             f"post-stage), {DEFAULT_BUDGET} when the experiment has none; the options below "
                             "override single sizes")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: tensorrt where CUDA + torch_tensorrt exist, else torch.compile, else eager")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp16 needs a CUDA device")
    parser.add_argument("--device", default=None, type=device_name,
                        help="cpu | cuda[:N] (default: cuda when torch sees one)")
    parser.add_argument("--bench-n", type=positive_int, default=None,
                        help="initial conditions of the benchmark (default: the budget's, e.g. small: "
                             "16,000,000 on a GPU, 100,000 on a CPU)")
    parser.add_argument("--n-ref", type=positive_int, default=None,
                        help="ICs whose errors are measured against DOP853")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed calls per batch size while tuning (median; default: the budget's)")
    parser.add_argument("--front-rounds", type=positive_int, default=None,
                        help="interleaved timings of every model at its batch size, which the front compares "
                             "(median; min-max = the spread; default: the budget's, smoke 7, small 9, paper 11)")
    parser.add_argument("--tune-points", type=positive_int, default=None,
                        help="points per call while tuning the batch size")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for both torch and numba (default: the budget's; 1 below paper)")
    parser.add_argument("--time-rtol", type=non_negative_float, default=0.05,
                        help="times within this fraction tie on the front, as do times whose spreads overlap; "
                             "multiply-adds then decide (default 0.05)")
    parser.add_argument("--no-register", action="store_true", help="write the report, register nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the front is still printed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = stage.run_post_stage(args.experiment, args.tracking_uri, args.out, budget=args.budget,
                                      backend=args.backend, precision=args.precision, device=args.device,
                                      bench_n=args.bench_n, n_ref=args.n_ref, repeats=args.repeats,
                                      front_rounds=args.front_rounds,
                                      tune_points=args.tune_points, threads=args.threads, time_rtol=args.time_rtol,
                                      register=not args.no_register, quiet=args.quiet)
    except KeyboardInterrupt:  # the stage removed its staging folder and rolled back a registration in progress
        print("post-stage interrupted: no report written, no registration left half-done", file=sys.stderr)
        return 130
    except Exception as exc:  # a named error, or MLflow that stalls or fails mid-way: not a traceback
        reason = cli_error_message(exc)
        if reason is None:
            raise
        print(f"error: {reason}", file=sys.stderr)
        return 2
    print(where_to_look(result, result.tracking_uri or ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
