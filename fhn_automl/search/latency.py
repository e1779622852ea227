"""Measured inference latency of an architecture: the ``latency`` objective of a multi-objective search.

The proxies (MACs, parameters, neurons) rank networks of one depth well but not across depths or
activations on a real device: a kernel launch per layer and an activation's cost do not show in MACs.
So the search measures: the architecture's ``SurrogateMLP`` (freshly initialised; weights do not change
the time of these dense kernels) on the search's target device and backend, at its inference batch,
``warmup`` untimed calls then ``repeats`` timed ones, the median in milliseconds per call. On CUDA each
call is bracketed by a synchronize, so asynchronous launches are counted in full.

A measurement depends only on (architecture, device, backend, batch), so it is made once and kept in a
JSON cache under the search's folder (``<storage>/latency/<problem>.json``): a resumed search, and every
seed of one architecture, reuses it. The cache is the tool's own file: written atomically, never
anything else. Torch is imported lazily, so the driver imports this module without it.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fhn_automl._atomic import write_json
from fhn_automl.learning.architecture import parse_layers
from fhn_automl.learning.spec import ModelSpec
from fhn_automl.physics.problems import Problem

BACKENDS = ("eager", "torchscript")
LATENCY_METRIC = "latency_ms"


@dataclass(frozen=True)
class LatencyTarget:
    """Where and how latency is measured: ``device`` (``cpu``, ``cuda``, ``cuda:1``), ``backend``
    (``eager`` | ``torchscript``), inference ``batch`` (points per call), ``threads`` on a CPU."""

    device: str = "cpu"
    backend: str = "eager"
    batch: int = 4096
    repeats: int = 20
    warmup: int = 5
    threads: int = 1

    def key(self, problem: str, layers: str) -> str:
        """The cache key: architecture, device, backend and batch (repeats and warm-up are not part
        of what is measured, only of how precisely)."""
        return f"{problem}|{layers}|{self.device}|{self.backend}|b{self.batch}|t{self.threads}"

    def as_params(self) -> dict[str, Any]:
        return {f"latency_{k}": v for k, v in asdict(self).items()}


def _architecture_module(problem: Problem, layers: str, device: str):
    import torch

    from fhn_automl.learning.mlp import SurrogateMLP

    spec = ModelSpec(problem=problem.key, kind="ddnn", layers=parse_layers(layers), inputs=problem.inputs,
                     outputs=problem.outputs, ranges={name: problem.ranges[name] for name in problem.inputs})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SurrogateMLP(spec).to(device).eval(), spec.n_in


def measure_latency(problem: Problem, layers: str, target: LatencyTarget) -> float:
    """Median milliseconds per call of the architecture ``layers`` at ``target`` (module docstring)."""
    import torch

    threads = torch.get_num_threads()
    if not target.device.startswith("cuda"):
        torch.set_num_threads(target.threads)
    try:
        model, n_in = _architecture_module(problem, layers, target.device)
        x = torch.rand(target.batch, n_in, device=target.device)
        if target.backend == "torchscript":
            with torch.no_grad():
                model = torch.jit.freeze(torch.jit.trace(model, x))
        sync = (lambda: torch.cuda.synchronize(target.device)) if target.device.startswith("cuda") else (lambda: None)
        samples = []
        with torch.inference_mode():
            for _ in range(target.warmup):
                model(x)
            sync()
            for _ in range(target.repeats):
                start = time.perf_counter()
                model(x)
                sync()
                samples.append(time.perf_counter() - start)
        return 1e3 * statistics.median(samples)
    finally:
        torch.set_num_threads(threads)


class LatencyCache:
    """Measured latencies of one problem's architectures, kept in ``path`` (JSON) across searches."""

    def __init__(self, path: str | Path | None, target: LatencyTarget) -> None:
        self.path = None if path is None else Path(path)
        self.target = target
        self._lock = threading.Lock()
        self.values: dict[str, float] = {}
        self.measured = 0  # how many were measured (not read from the cache) by this object
        if self.path is not None and self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.values = {str(k): float(v) for k, v in data.get("latency_ms", {}).items()}
            except (ValueError, AttributeError):  # a damaged cache is measured again, not trusted
                self.values = {}

    def get(self, problem: Problem, layers: str) -> float:
        """The latency of ``layers`` at the target, measured now unless cached."""
        key = self.target.key(problem.key, layers)
        with self._lock:
            if key not in self.values:
                self.values[key] = measure_latency(problem, layers, self.target)
                self.measured += 1
                if self.path is not None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    write_json(self.path, {"latency_ms": self.values,
                                           "how": "median of repeats timed calls after warm-up"})
            return self.values[key]


def cache_path(storage: Any) -> Path | None:
    """``<storage>/latency/latency_ms.json`` for a local search folder; None (measure, keep in memory)
    for remote storage."""
    text = str(storage)
    return None if "://" in text else Path(text) / "latency" / "latency_ms.json"


def grid_latencies(trials: Any, target: LatencyTarget, path: Path | None) -> dict[str, float]:
    """Measured latency of every distinct architecture of ``trials`` (what ``plan["latency_ms"]``
    carries to the trials, which report it); one problem per layer string is assumed, as in a study."""
    cache = LatencyCache(path, target)
    out: dict[str, float] = {}
    for trial in trials:
        if trial.layers not in out:
            out[trial.layers] = cache.get(trial.resolved_problem, trial.layers)
    return out
