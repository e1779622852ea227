"""The whole job in one command: a search, then the post-stage on its experiment.

``python -m fhn_automl.search SEARCH [options] [--no-post]`` runs this (the README's main job). It
lives at the top level because it chains two layers: the search layer must not import the
post-stage above it, and a top-level command may import every layer. The search's own options,
``--dry-run`` and exit codes are ``fhn_automl.search.cli``'s; this module adds ``--no-post``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import fhn_automl.post
from fhn_automl.post.console import mlflow_ui_address, where_to_look
from fhn_automl.search.cli import build_parser as build_search_parser
from fhn_automl.search.cli import run_search_command
from fhn_automl.search.job_records import job_working_dir_copy


def build_parser() -> argparse.ArgumentParser:
    parser = build_search_parser()
    parser.add_argument("--no-post", action="store_true",
                        help="do not run the post-stage after the search")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code, summary = run_search_command(args)
    if code == 0 and summary is not None and args.no_post:
        _print_mlflow_address(summary.experiment, summary.tracking_uri)
    if code != 0 or summary is None or args.no_post:
        return code

    out_dir = None
    if job_working_dir_copy() is not None and args.storage and "://" not in args.storage:
        # a Ray job: the report beside Tune's folder, not in Ray's temporary copy of the working dir
        out_dir = str(Path(args.storage) / "post" / summary.experiment)
    return run_post_stage(summary.experiment, summary.tracking_uri, args.budget, out_dir=out_dir)


def _print_mlflow_address(experiment: str, tracking_uri: str) -> None:
    """Where the search's runs are, when no post-stage follows to say it (best effort: a tracking
    hiccup here must not turn a finished search into a failure)."""
    try:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
        address, command = mlflow_ui_address(tracking_uri, found.experiment_id if found else None)
    except Exception as exc:  # noqa: BLE001 - only a hint is lost
        print(f"[search] MLflow address not found ({exc})", file=sys.stderr)
        return
    print(f"MLflow:      {address}" + (f"\n             (start the UI first: {command})" if command else ""), flush=True)


def run_post_stage(experiment: str, tracking_uri: str, budget: str | None = None,
                   out_dir: str | None = None) -> int:
    """The post-stage on a finished search, at the preset of the search's budget; 1 if it fails."""
    try:
        post_stage = fhn_automl.post.run_post_stage  # loads post.stage (torch and friends) here, not at import
    except ImportError as exc:  # an optional dependency of the post-stage is missing
        print(f"post-stage not run: it cannot be imported ({exc}); run it later with "
              f"python -m fhn_automl.post {experiment}", file=sys.stderr)
        return 0
    print(f"[search] post-stage on {experiment}", flush=True)
    try:
        result = post_stage(experiment, tracking_uri, budget=budget, out_dir=out_dir)  # the preset of that name
    except KeyboardInterrupt:  # the search is complete in MLflow; the post-stage can be run again alone
        print(f"post-stage interrupted: no report written, no registration left half-done; run it again with "
              f"python -m fhn_automl.post {experiment}", file=sys.stderr)
        return 130
    except Exception as exc:  # the search's results are safe in MLflow; report and fail the command
        print(f"error: the post-stage failed on {experiment!r}: {exc}", file=sys.stderr)
        return 1

    print("\n" + where_to_look(result, tracking_uri), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
