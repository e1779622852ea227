"""One way to time things, used by both sides of every comparison (solver and surrogates).

Warm-up calls first (JIT compilation, caches, CUDA context, page faults of fresh buffers), then
``repeats`` timed calls; the median is the figure reported, min and max show the spread. On a GPU
each call is bracketed by ``torch.cuda.synchronize`` so asynchronous launches are counted in full.
Whether host-device transfers are inside the timed region is decided by the caller (what it passes
in as ``fn``) and recorded in ``Timing.transfers`` so every reported number says it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of ``repeats`` calls after ``warmup`` untimed ones."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    warmup: int
    device: str
    transfers: str  # e.g. "excluded (inputs and outputs stay on the GPU)" or "none (CPU)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def synchronizer(device: str) -> Callable[[], None]:
    """A no-op on the CPU, ``torch.cuda.synchronize`` on a CUDA device."""
    if device.startswith("cuda"):
        import torch

        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_call(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5, device: str = "cpu",
              transfers: str = "none (CPU)") -> Timing:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    sync = synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return Timing(median_s=statistics.median(samples), min_s=min(samples), max_s=max(samples),
                  repeats=repeats, warmup=warmup, device=device, transfers=transfers)


def interleaved_timings(fns: Mapping[str, Callable[[], Any]], *, rounds: int = 7, warmup: int = 1,
                        device: str = "cpu", transfers: str = "none (CPU)") -> dict[str, Timing]:
    """Each ``fns[key]()`` timed ``rounds`` times, the calls of different keys interleaved.

    Timing models one after another lets a burst of load from another process land on one model
    only, which then looks slower (a 1.8x swing for one model between two post-stages was seen on
    the shared 2-core machine). Round-robin rounds, each starting one model later than the last,
    spread the load over every model alike; the per-key min and max are the spread the Pareto
    front's tie rule reads (``fhn_automl.post.pareto``).
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    keys = list(fns)
    sync = synchronizer(device)
    for key in keys:
        for _ in range(warmup):
            fns[key]()
    sync()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    for round_index in range(rounds):
        offset = round_index % max(len(keys), 1)
        for key in keys[offset:] + keys[:offset]:
            start = time.perf_counter()
            fns[key]()
            sync()
            samples[key].append(time.perf_counter() - start)
    return {key: Timing(median_s=statistics.median(values), min_s=min(values), max_s=max(values), repeats=rounds,
                        warmup=warmup, device=device, transfers=transfers) for key, values in samples.items()}


def describe_device(device: str) -> str:
    """A human name for the device a number was measured on (GPU model or CPU model and cores)."""
    if device.startswith("cuda"):
        import torch

        return f"{torch.cuda.get_device_name(device)} ({device})"
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    threads = f"torch threads {torch.get_num_threads()}"
    numba_threads = _numba_threads()
    if numba_threads is not None:
        threads += f", numba threads {numba_threads}"
    return f"{model}, {os.cpu_count()} logical CPUs, {threads}"


def _numba_threads() -> int | None:
    try:
        import numba
    except ImportError:
        return None
    return int(numba.get_num_threads())


def pin_cpu_threads(threads: int | None) -> tuple[int, int | None]:
    """The same CPU thread count for the networks (torch) and the solver (numba); returns the old pair.

    ``None`` means every logical CPU. Both must be set: numba's ``omp`` threading layer shares torch's
    OpenMP runtime and sets its thread count at each parallel launch, so an Euler run silently moved
    torch from 1 to 2 threads (which also invalidates torch.compile's guards and recompiles the model).
    """
    import os

    import torch

    before = (torch.get_num_threads(), _numba_threads())
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    return before


def restore_cpu_threads(before: tuple[int, int | None]) -> None:
    """Undo ``pin_cpu_threads`` (the pair it returned)."""
    import torch

    torch_threads, numba_threads = before
    torch.set_num_threads(torch_threads)
    if numba_threads is not None:
        import numba

        numba.set_num_threads(numba_threads)
