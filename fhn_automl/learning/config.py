"""``TrainConfig``: the validated form of the plain mapping that ``train(config, report)`` takes.

The search layer hands in dicts (from YAML spaces and Tune samples), so the mapping stays the
interface; this dataclass names every key with its default, rejects unknown keys by name, and
resolves recipe-dependent defaults (batch size, lr) in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fhn_automl.learning.architecture import LayerSpec, format_layers, parse_layers
from fhn_automl.learning.recipes import RECIPES
from fhn_automl.learning.spec import MODEL_KINDS
from fhn_automl.physics.problems import Problem, get_problem

#: Upper bounds checked before anything is allocated: a value past them is a typo or an attack
#: (``steps: 1e300``, ``batch_size: 1e15``), never a training run (the thesis' longest is 1e6 steps,
#: its largest batch 1536).
MAX_STEPS = 1_000_000_000
MAX_BATCH_SIZE = 1 << 24

#: Named extra regions: a physics term in the box around the B_S unstable equilibrium U0 ~ alpha = 0.4
#: (thesis 4.2.1, the DDNNa / PINNa models).
EXTRA_REGION_PRESETS: dict[str, dict[str, Any]] = {
    "unstable_equilibrium": {"kind": "physics", "box": {"u0": (0.35, 0.45)}},
}


@dataclass(frozen=True)
class ExtraRegion:
    """Increased cloud-point density (thesis 3.4.2): one extra term restricted to a region.

    ``kind="physics"``: the FHN residual at collocation points in ``box`` (input name -> (lo, hi);
    other inputs keep the problem's range), or, with ``source``, at the input points of that set
    (the detected high-error region, thesis 4.3: physics "limited to the high-error region").
    ``kind="data"``: a data term on the set ``source`` (a split / high-error-set name of the
    dataset, or a Parquet path). ``batch_size`` None -> a quarter
    of the data batch (the thesis keeps extra terms cheap with small batches).
    """

    kind: str
    box: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str | None = None
    weight: float = 1.0
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("physics", "data"):
            raise ValueError(f"extra_region kind must be 'physics' or 'data', got {self.kind!r}")
        if self.kind == "data" and not self.source:
            raise ValueError("a data extra_region needs a source (split name or Parquet path)")
        if self.kind == "physics" and self.source and self.box:
            raise ValueError("a physics extra_region takes a box or a source set, not both")
        for name, bounds in self.box.items():
            if len(bounds) != 2 or not float(bounds[0]) < float(bounds[1]):
                raise ValueError(f"extra_region box for {name!r} must be (low, high) with low < high, got {bounds}")

    def describe(self) -> str:
        if self.kind == "data" or self.source:
            return f"{self.kind}:{self.source}"
        return "physics:" + ",".join(f"{name}={lo:g}:{hi:g}" for name, (lo, hi) in self.box.items())


def parse_extra_region(option: str | Mapping[str, Any] | None) -> ExtraRegion | None:
    """From ``'physics:u0=0.35:0.45[,w0=0:0.05]'``, ``'physics:high_error'`` (the residual at a set's
    points), ``'data:high_error'``, ``'data:/path/set.parquet'``, a preset name
    (``'unstable_equilibrium'``) or a mapping with the ``ExtraRegion`` fields."""
    if option is None or option is False or option == "" or option == "none":
        return None
    if isinstance(option, ExtraRegion):
        return option
    if isinstance(option, Mapping):
        unknown = sorted(set(option) - {f.name for f in dataclasses.fields(ExtraRegion)})
        if unknown:
            raise ValueError(f"unknown extra_region keys {unknown}")
        box = {name: (float(lo), float(hi)) for name, (lo, hi) in dict(option.get("box", {})).items()}
        return ExtraRegion(**{**dict(option), "box": box})
    text = str(option)
    if text in EXTRA_REGION_PRESETS:
        return parse_extra_region(EXTRA_REGION_PRESETS[text])
    kind, _, argument = text.partition(":")
    if kind == "data":
        return ExtraRegion(kind="data", source=argument)
    if kind == "physics" and argument and "=" not in argument:
        return ExtraRegion(kind="physics", source=argument)
    if kind == "physics":
        box = {}
        try:
            for part in filter(None, argument.split(",")):
                name, _, bounds = part.partition("=")
                lo, hi = bounds.split(":")
                box[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise ValueError(f"bad extra_region {text!r}: use 'physics:u0=0.35:0.45'") from None
        return ExtraRegion(kind="physics", box=box)
    raise ValueError(f"bad extra_region {text!r}: use 'physics:NAME=LO:HI[,...]', 'physics:SET_OR_PATH', "
                     f"'data:SET_OR_PATH' or one "
                     f"of the presets {sorted(EXTRA_REGION_PRESETS)}")


@dataclass(frozen=True)
class TrainConfig:
    """Every key ``train`` understands. None means "the recipe's / problem's default"."""

    problem: str
    layers: tuple[LayerSpec, ...] = parse_layers("silu-32,tanh-32,silu-32")
    kind: str = "ddnn"
    recipe: str = "fast"
    steps: int = 20_000
    batch_size: int | None = None          # data batch; recipe default (fast 1024, paper 128)
    lr: float | None = None                # recipe default (fast 2e-2, paper 1e-3)
    warmup_steps: int | None = None        # fast recipe: 2 % of steps
    val_every: int = 1_000
    seed: int = 0
    device: str = "auto"                   # auto | cpu | cuda | cuda:N
    threads: int | None = None             # torch.set_num_threads; None leaves it alone
    # data
    data_dir: str | None = None            # None -> physics.datasets.ensure_dataset(problem, root=data_root, ...)
    data_root: str = "data"
    n_trajectories: int | None = None      # dataset size when it has to be built
    data_seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    val_max_points: int | None = 500_000   # fixed subset of the validation points (same for all trials)
    rollout_max_trajectories: int | None = 2_000
    extra_data: tuple[Mapping[str, Any], ...] = ()  # eq. 3.8: more data terms {source, weight, batch_size}
    data_weight: float = 1.0
    # PINN terms (eq. 3.16)
    physics_weight: float = 1.0
    physics_batch_size: int | None = None  # None -> batch_size
    ic_weight: float = 1.0
    ic_batch_size: int | None = None       # None -> batch_size // 4
    # techniques (thesis 3.4)
    window: str | Mapping[str, Any] | None = None
    continuity_weight: float = 1.0
    continuity_batch_size: int | None = None  # None -> batch_size // 4
    extra_region: ExtraRegion | None = None
    # outputs
    out_dir: str | None = None             # None -> a temporary folder
    write_torchscript: bool = True

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        for name in ("steps", "val_every"):
            if not 1 <= int(getattr(self, name)) <= MAX_STEPS:
                raise ValueError(f"{name} must be in [1, {MAX_STEPS:,}], got {getattr(self, name)}")
        for name in ("batch_size", "physics_batch_size", "ic_batch_size", "continuity_batch_size",
                     "val_max_points", "n_trajectories", "threads", "rollout_max_trajectories"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
            if value is not None and name.endswith("batch_size") and int(value) > MAX_BATCH_SIZE:
                raise ValueError(f"{name} must be at most {MAX_BATCH_SIZE:,}, got {value}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be positive (and finite), got {self.lr}")
        for name in ("data_weight", "physics_weight", "ic_weight", "continuity_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.data_dir is None:  # a generated dataset: its splits are known now, not after the build
            self._check_splits()

    @functools.cached_property
    def resolved_problem(self) -> Problem:
        """The ``Problem`` that ``problem`` (its key) names, resolved once per config: a training config
        arrives as a plain mapping (in a Ray worker too), so this is where its problem becomes the object
        that everything below takes."""
        return get_problem(self.problem)

    def _check_splits(self) -> None:
        try:
            problem = self.resolved_problem
        except KeyError as exc:
            raise ValueError(f"problem: {exc}") from None
        if problem.is_n_state:
            self._check_n_state(problem)
        splits = {"train", "val", *problem.extra_sets} | ({"rollout"} if problem.kind == "iterator" else set())
        for name in ("train_split", "val_split"):
            value = getattr(self, name)
            if value not in splits and not str(value).endswith(".parquet"):
                raise ValueError(f"{name} {value!r} is not a split of {self.problem}'s dataset; "
                                 f"known: {', '.join(sorted(splits))}")

    def _check_n_state(self, problem: Problem) -> None:
        """What an N-state cell model's problem cannot train: a beat (its voltage trace) no PINN; neither an
        iterator nor the FitzHugh-Nagumo high-error physics region. (A cell_state problem's outputs are the
        whole state: PINN trains on it.)"""
        if self.kind == "pinn" and problem.kind == "beat":
            raise ValueError(f"kind 'pinn' is not possible on {problem.name}: its outputs ({', '.join(problem.outputs)}) "
                             f"are not the model's whole state, so the ODE residual cannot be formed; use kind 'ddnn'")
        if self.kind == "iter":
            raise ValueError(f"kind 'iter' needs an iterator problem; {problem.name} is a {problem.kind} problem")
        region = self.extra_region
        if region is not None and region.kind == "physics":
            raise ValueError(f"a physics extra_region needs the FitzHugh-Nagumo equations; on {problem.name} "
                             f"give a data extra_region (data:SET_OR_PATH) or none")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> "TrainConfig":
        """Validate a plain mapping; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown train config keys: {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        if "problem" not in config:
            raise ValueError("train config needs 'problem'")
        values = dict(config)
        if "layers" in values:
            values["layers"] = parse_layers(values["layers"])
        values["extra_region"] = parse_extra_region(values.get("extra_region"))
        values["extra_data"] = tuple(dict(item) for item in values.get("extra_data", ()) or ())
        for name in ("steps", "val_every", "seed", "data_seed"):
            if name in values:
                values[name] = int(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (layers in the notation, extra region as its mapping)."""
        out = dataclasses.asdict(self)
        out["layers"] = format_layers(self.layers)
        out["extra_data"] = [dict(item) for item in self.extra_data]
        if self.extra_region is not None:
            out["extra_region"] = dataclasses.asdict(self.extra_region)
        return out
