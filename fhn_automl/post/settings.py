"""How big the post-stage runs: one preset per search budget (``smoke`` | ``small`` | ``paper``).

The search passes its budget name (``python -m fhn_automl.search ... --budget smoke`` runs the post-stage
with ``post_settings("smoke")``); ``python -m fhn_automl.post EXPERIMENT --budget NAME`` picks one by hand,
and single options (``--bench-n``, ``--repeats``, ...) override fields of it.

Every preset does the same work (compile fallback chain, batch-size tuning, timing, Pareto front,
benchmark against Euler at several dt with the work-precision diagram, ANOVA and plots, registry);
they differ only in sizes. Where the time goes at the old, single size (3 trials, 2 busy CPU cores,
328 s): batch-size tuning 180 s (9 batch sizes x 4 calls x 65,536 points, compiled *and* eager, per
model), the benchmark 50 s (mostly one 3x64 network on 100,000 ICs x 10 points, 4 calls), compiling
~10 s with a warm inductor cache (20-60 s for the first model with a cold one), the DOP853 reference
~1 s, plots and ANOVA ~10 s.

``threads``: the CPU threads of *both* sides of every comparison (torch for the networks, numba for
Euler), set once for the whole post-stage. ``None`` uses every logical CPU. On a shared machine two
OpenMP threads on two busy cores made single timings swing 10x, so the small presets use one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fhn_automl.search.budgets import BUDGET_NAMES as SEARCH_BUDGET_NAMES

#: The Euler steps of the FitzHugh-Nagumo benchmark's solver sweep (post.benchmark).
DEFAULT_EULER_DTS: tuple[float, ...] = (0.1, 0.05, 0.02, 0.01, 0.005)
#: The solver steps (ms) of an N-state model's verdict sweep (post.beat_benchmark).
DEFAULT_BEAT_DTS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5)

#: the search's budget names (one home: fhn_automl.search.budgets); each has a preset here
BUDGET_NAMES: tuple[str, ...] = SEARCH_BUDGET_NAMES
DEFAULT_BUDGET = "small"


@dataclass(frozen=True)
class PostSettings:
    """Sizes of one post-stage run; see the module docstring."""

    name: str
    tune_points: int                           # points per timed call while tuning the batch size
    batch_sizes: tuple[int, ...] | None        # candidates; None = powers of two 256 .. device maximum
    warmup: int                                # untimed calls before every timing
    repeats: int                               # timed calls per batch size while tuning (median)
    front_rounds: int                          # interleaved timings of every model at its batch (median
                                               # reported, min-max = the spread the front's ties read)
    eager_full_tuning: bool                    # eager baseline tuned over all candidates, or only at the compiled best
    bench_n_cpu: int                           # initial conditions of the benchmark on a CPU
    bench_n_gpu: int                           # ... on a GPU (the thesis: 16,000,000)
    n_ref: int                                 # ICs whose errors are measured against DOP853
    euler_dts: tuple[float, ...]               # Euler's work-precision curve
    max_bench_models: int                      # front models benchmarked (spread along the front)
    threads: int | None                        # CPU threads for torch and numba alike; None = all
    beat_cells: int = 64                       # beat problems: fresh cells of the verdict (one beat each)
    beat_n_ref: int = 4                        # ... of which solved by the stiff reference (BDF; ~3 s each, TP06)
    beat_dts: tuple[float, ...] = DEFAULT_BEAT_DTS  # ... the solver's dt sweep (ms)

    def bench_n(self, device: str) -> int:
        return self.bench_n_gpu if device.startswith("cuda") else self.bench_n_cpu

    def replace(self, **overrides: Any) -> "PostSettings":
        """A copy with the given fields changed; ``None`` values leave a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, PostSettings] = {
    # CI / the README's `make smoke`: the whole post-stage of a 3-trial search in well under a minute.
    "smoke": PostSettings("smoke", tune_points=16_384, batch_sizes=(1_024, 4_096, 16_384), warmup=1, repeats=3,
                          front_rounds=7, eager_full_tuning=False, bench_n_cpu=10_000, bench_n_gpu=1_000_000, n_ref=64,
                          euler_dts=(0.1, 0.05, 0.02, 0.01), max_bench_models=2, threads=1,
                          beat_cells=8, beat_n_ref=1, beat_dts=(0.05, 0.1, 0.25)),
    # a laptop: the sizes the post-stage had before the presets, with one pinned thread on the CPU.
    "small": PostSettings("small", tune_points=65_536, batch_sizes=None, warmup=1, repeats=3,
                          front_rounds=9, eager_full_tuning=True, bench_n_cpu=100_000, bench_n_gpu=16_000_000, n_ref=256,
                          euler_dts=DEFAULT_EULER_DTS, max_bench_models=4, threads=1),
    # the thesis' scale: 16M ICs on a GPU (1M on a CPU), more repetitions, every core.
    "paper": PostSettings("paper", tune_points=262_144, batch_sizes=None, warmup=2, repeats=5,
                          front_rounds=11, eager_full_tuning=True, bench_n_cpu=1_000_000, bench_n_gpu=16_000_000, n_ref=1_024,
                          euler_dts=DEFAULT_EULER_DTS, max_bench_models=6, threads=None,
                          beat_cells=256, beat_n_ref=16),
}


def post_settings(budget: "str | PostSettings | None" = None) -> PostSettings:
    """The preset of a budget name (``None``: ``small``); a ``PostSettings`` is returned as it is."""
    if isinstance(budget, PostSettings):
        return budget
    name = budget or DEFAULT_BUDGET
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown post-stage budget {name!r}; choose one of {', '.join(BUDGET_NAMES)}") from None


__all__ = ["BUDGET_NAMES", "DEFAULT_BUDGET", "PRESETS", "PostSettings", "post_settings"]
