"""Train one surrogate: ``python -m fhn_automl.train PROBLEM --layers silu-32,tanh-32,silu-32 --out DIR``.

Builds (or reuses) the problem's dataset through the physics layer unless ``--data-dir`` is given,
trains with ``fhn_automl.learning.train``, prints a progress line at every validation and leaves
the model at the end of training (``DIR/model``: spec.json, weights.pt, model.ts; a run that diverged
leaves its best validation checkpoint instead), ``DIR/metrics.json`` (``final.final_full_val_mean_err``:
that model on the whole validation set, the figure searches rank by; ``best_subset_val_mean_err``: the
best point on the validation subset during training) and the resume checkpoint (``DIR/checkpoint``).

``--extra-region detect`` runs the thesis' detection step (4.2.3, 4.3;
``learning.high_error_region.train_base_and_detect``): train a base model on the homogeneous set
(``--steps`` is its budget; it stops earlier at a plateau), select the high-error places of the
training split by the problem's thesis rule (iterator: the top 5 % of points; C: trajectories with
mean error > 0.1) or ``--detect-rule``, sample and solve around them (physics.high_error), then
train again with that set as an extra data term.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fhn_automl._cli import device_name, non_negative_float, non_negative_int, positive_float, positive_int
from fhn_automl.learning.architecture import LayerNotationError, parse_layers
from fhn_automl.physics.problems import UnknownProblemError, get_problem


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fhn_automl.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", help="problem name, e.g. problem_b_s (see fhn_automl.physics.problems), or "
                        "'beat:MODEL_FILE?vary=P1,P2' for a beat problem of your own cell model (README, "
                        "\"Your own cell model\")")
    parser.add_argument("--layers", default="silu-32,tanh-32,silu-32", help="hidden layers, e.g. silu-32,tanh-32,silu-32")
    parser.add_argument("--kind", choices=("ddnn", "pinn", "iter"), default=None,
                        help="model kind (default: iter for iterator problems, else ddnn)")
    parser.add_argument("--recipe", choices=("fast", "paper"), default="fast",
                        help="optimiser settings: fast (inputs scaled, batch 1024, lr 2e-2, cosine decay) or "
                             "paper (the thesis': raw inputs, batch 128, Adam 1e-3, constant lr); default fast")
    parser.add_argument("--steps", type=positive_int, default=20_000, help="training steps (default 20000)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="data batch (recipe default: fast 1024, paper 128)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate (recipe default: fast 2e-2, paper 1e-3)")
    parser.add_argument("--val-every", type=positive_int, default=None,
                        help="validation interval (default: steps / 20)")
    parser.add_argument("--window", default=None, help="time windows: split:4, split:0,5,20,50 or chained:5")
    parser.add_argument("--extra-region", default=None,
                        help="physics:u0=0.35:0.45 | data:SET_OR_PATH | unstable_equilibrium | detect")
    parser.add_argument("--detect-rule", default=None,
                        help="with --extra-region detect: top_fraction:0.05 | trajectory_mean_above:0.1 "
                             "[,max_centres:N] (default: the thesis' rule for the problem)")
    parser.add_argument("--physics-weight", type=non_negative_float, default=None,
                        help="weight of a PINN's physics term, >= 0 (default 1)")
    parser.add_argument("--physics-batch-size", type=positive_int, default=None,
                        help="collocation points of a PINN per step (default: the data batch)")
    parser.add_argument("--ic-batch-size", type=positive_int, default=None,
                        help="initial-condition batch of a PINN (default: data batch / 4)")
    parser.add_argument("--train-split", default=None,
                        help="training set of the dataset (default: train; problem A: scarce | complete)")
    parser.add_argument("--device", default="auto", type=lambda text: text if text == "auto" else device_name(text),
                        help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default 1: a small MLP gains from a second thread only at "
                             "batch >= 4096, and OpenMP threads spin badly on a shared machine)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the weights and the batches (default 0; same seed, same model)")
    parser.add_argument("--data-dir", default=None, help="an existing dataset folder (default: build under --data-root)")
    parser.add_argument("--data-root", default="data",
                        help="folder the problem's dataset is built under or reused from (default data)")
    parser.add_argument("--n-trajectories", type=positive_int, default=None,
                        help="dataset size when it has to be built")
    parser.add_argument("--resume", default=None, help="a checkpoint folder to continue from")
    parser.add_argument("--out", required=True, help="output folder")
    return parser


def _progress_printer(steps: int):
    started = time.perf_counter()

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        line = (f"step {metrics['step']:>8d}/{steps}  loss {metrics['loss']:.3e}  "
                f"val mean {metrics['val_mean_err']:.3e}  max {metrics['val_max_err']:.3e}  "
                f"best {metrics['best_val_mean_err']:.3e}  lr {metrics['lr']:.1e}  "
                f"{metrics['step_time_ms']:.2f} ms/step  {time.perf_counter() - started:6.1f} s  {metrics['status']}")
        print(line, flush=True)

    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fhn_automl.learning import train

    try:
        problem = get_problem(args.problem)
        parse_layers(args.layers)
    except (UnknownProblemError, LayerNotationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: --out {args.out}: exists and is not a folder", file=sys.stderr)
        return 2
    if args.resume is not None and not (Path(args.resume) / "train_state.pt").is_file():
        print(f"error: --resume {args.resume}: no train_state.pt there (a checkpoint folder is DIR/checkpoint "
              "of an earlier run)", file=sys.stderr)
        return 2
    kind = args.kind or ("iter" if problem.kind == "iterator" else "ddnn")
    config: dict[str, Any] = {
        "problem": problem.key, "layers": args.layers, "kind": kind, "recipe": args.recipe, "steps": args.steps,
        "val_every": args.val_every or max(1, args.steps // 20), "seed": args.seed, "device": args.device,
        "data_root": args.data_root, "out_dir": args.out,
    }
    optional = {"batch_size": args.batch_size, "lr": args.lr, "window": args.window, "threads": args.threads,
                "data_dir": args.data_dir, "n_trajectories": args.n_trajectories,
                "physics_weight": args.physics_weight, "physics_batch_size": args.physics_batch_size,
                "ic_batch_size": args.ic_batch_size, "train_split": args.train_split}
    config.update({key: value for key, value in optional.items() if value is not None})
    out = Path(args.out)
    if args.extra_region == "detect":
        from fhn_automl.learning.high_error_region import HighErrorDetectionError, parse_rule

        try:
            rule = parse_rule(args.detect_rule) if args.detect_rule else None
            result = _train_with_detection(config, out, rule)
        except (ValueError, HighErrorDetectionError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    else:
        if args.extra_region is not None:
            config["extra_region"] = args.extra_region
        try:
            result = train(config, _progress_printer(args.steps),
                           checkpoint=args.resume)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print(json.dumps({key: result[key] for key in ("status", "model_selection", "final_full_val_mean_err",
                                                   "final_full_val_max_err", "best_subset_val_mean_err", "best_step",
                                                   "model_dir") if key in result}, indent=2))
    return 0 if result["status"] == "finished" else 1


def _train_with_detection(config: dict[str, Any], out: Path, rule=None) -> dict[str, Any]:
    """The detection step (base model to a plateau, the rule, a set around the places), then the
    model trained with that set as an extra data term."""
    from fhn_automl.learning import train
    from fhn_automl.learning.high_error_region import train_base_and_detect

    set_path = out / "high_error.parquet"
    _, detection = train_base_and_detect({**config, "out_dir": str(out / "detect_base")}, set_path, rule=rule,
                                         report=_progress_printer(config["steps"]), seed=config.get("seed", 0),
                                         device="cpu" if config.get("device") == "cpu" else "auto")
    print(f"high-error set written to {set_path}: {detection['centres']} centres by the rule "
          f"'{detection['rule']}' x {detection['n_per_centre']} (base model stopped at step "
          f"{detection['base_steps']})", flush=True)
    (out / "high_error.json").write_text(json.dumps(detection, indent=1, default=str))
    return train({**config, "extra_region": {"kind": "data", "source": str(set_path.resolve())}},
                 _progress_printer(config["steps"]))


if __name__ == "__main__":
    raise SystemExit(main())
