"""Compile a surrogate for inference: Torch-TensorRT, else ``torch.compile``, else eager.

The thesis (3.6) ran its networks with TensorRT on the GPU's tensor cores; this module keeps that
as the first choice and degrades on machines without it, recording which backend produced every
number (``CompiledSurrogate.backend``), because a time without its backend cannot be compared.

- ``tensorrt``: ``torch_tensorrt.compile(model, ir="dynamo", inputs=[Input(min, opt, max)],
  enabled_precisions=...)`` with a dynamic batch dimension, FP32 or FP16; the raw engine is
  serialised too (``convert_exported_program_to_serialized_trt_engine``) so ``pull`` can ship it.
  Needs CUDA and the ``tensorrt`` extra. NOT VERIFIED in this workplace (no TensorRT wheels can be
  installed here, FACTS.md): written from the library's documented API.
- ``compile``: ``torch.compile(dynamic=True)`` (inductor, one graph for every batch size); on CPU it
  beat eager by ~30 % on the thesis workload. Compiling costs 2-10 s per model with a warm inductor
  cache (``/tmp/torchinductor_$USER``) and 20-60 s for the first model of a cold one on 2 busy cores.
- ``eager``: the module as it is.
- ``cudagraph`` / ``compile-cudagraph`` (CUDA only, never chosen by ``auto``): the eager or the
  compiled module captured once per input shape in a CUDA graph (``torch.cuda.CUDAGraph``) and
  replayed, so a call costs one graph launch instead of one launch per layer: what a small MLP on a
  fast GPU is bound by. Inputs are copied into the graph's static buffer, outputs cloned out of it.

``auto`` walks that list and falls back on any failure, saying why in ``note``; a backend asked for
by name that cannot run raises ``BackendNotInstalledError`` with what to install.
The best batch size is found by trial (``tune_batch_size``), as the thesis does.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fhn_automl.post.errors import BackendNotInstalledError
from fhn_automl.post.timing import Timing, time_call

BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "compile", "eager", "cudagraph", "compile-cudagraph")
#: backends that replay CUDA graphs: CUDA devices only
CUDA_GRAPH_BACKENDS: tuple[str, ...] = ("cudagraph", "compile-cudagraph")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
TENSORRT_INSTALL_HINT = ("install Torch-TensorRT on a CUDA host: `pip install -e '.[tensorrt]'` (torch-tensorrt "
                         "pins torch's minor version: pick the torch-tensorrt release matching your torch)")


@dataclass
class CompiledSurrogate:
    """A callable on raw inputs ``(N, n_in)`` plus where and how it was built."""

    module: Callable[[torch.Tensor], torch.Tensor]
    backend: str            # "tensorrt", "compile" or "eager"
    precision: str          # "fp32" or "fp16"
    device: str             # "cpu", "cuda", "cuda:1", ...
    n_in: int
    compile_seconds: float = 0.0
    engine_bytes: bytes | None = None
    note: str = ""          # why a fallback happened, if it did

    @property
    def label(self) -> str:
        """``backend-precision@device``: the tag recorded next to every figure."""
        return f"{self.backend}-{self.precision}@{self.device}"

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def tensorrt_installed() -> bool:
    return importlib.util.find_spec("torch_tensorrt") is not None


def default_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def check_compile_request(backend: str, precision: str, device: str) -> None:
    """Raise, naming the value, if this backend / precision / device cannot run here (before any work)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown compile backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if device.startswith("cuda") and not cuda_available():
        raise BackendNotInstalledError(
            f"device {device!r} asked for but torch sees no CUDA GPU (torch {torch.__version__}); install a "
            "CUDA build of torch on a GPU host, or use --device cpu")
    if backend in CUDA_GRAPH_BACKENDS and not device.startswith("cuda"):
        raise ValueError(f"the {backend} backend replays CUDA graphs: it needs --device cuda")
    if backend == "tensorrt":
        if not device.startswith("cuda"):
            raise BackendNotInstalledError("the tensorrt backend needs a CUDA device (--device cuda)")
        if not tensorrt_installed():
            raise BackendNotInstalledError(f"the tensorrt backend needs torch_tensorrt, which is not installed: "
                                           f"{TENSORRT_INSTALL_HINT}")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ValueError("fp16 inference is for CUDA devices (tensor cores); use fp32 on the CPU")


def _sample_batch(n_in: int, batch: int, device: str) -> torch.Tensor:
    # values inside [0, 1] are inside every input range of the FHN problems except t's upper part
    return torch.rand(batch, n_in, device=device)


def _compile_tensorrt(model: nn.Module, n_in: int, precision: str, device: str,
                      batch_range: tuple[int, int, int], build_engine: bool) -> tuple[Callable, bytes | None, str]:
    """UNVERIFIED here (no TensorRT in this workplace): the documented dynamo path with a dynamic batch."""
    import torch_tensorrt

    low, opt, high = batch_range
    spec = torch_tensorrt.Input(min_shape=(low, n_in), opt_shape=(opt, n_in), max_shape=(high, n_in),
                                dtype=torch.float32)
    precisions = {torch.float32} if precision == "fp32" else {torch.float16, torch.float32}
    compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=[spec], enabled_precisions=precisions)
    engine, note = None, ""
    if build_engine:
        try:
            batch = torch.export.Dim("batch", min=low, max=high)
            exported = torch.export.export(model, (_sample_batch(n_in, opt, device),),
                                           dynamic_shapes=({0: batch},))
            engine = torch_tensorrt.dynamo.convert_exported_program_to_serialized_trt_engine(
                exported, inputs=[spec], enabled_precisions=precisions)
            engine = bytes(engine)
        except Exception as exc:  # the compiled module still works; only the raw engine is missing
            note = f"raw TensorRT engine not serialised: {type(exc).__name__}: {exc}"
    return compiled, engine, note


class CudaGraphModule:
    """``module`` captured in one CUDA graph per input shape and dtype, then replayed.

    A graph's input is a static buffer (the call copies ``x`` into it) and its output a static
    tensor that the next replay overwrites, so the call returns a clone. Each shape's graph keeps its
    own memory pool; the first call at a shape pays the warm-up and the capture.
    """

    def __init__(self, module: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.module = module
        self.graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor, "torch.cuda.CUDAGraph"]] = {}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        if key not in self.graphs:
            self.graphs[key] = self._capture(x)
        static_in, static_out, graph = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def keep_only(self, rows: set[int]) -> None:
        """Free the graphs (and their memory pools) of every batch size but ``rows``."""
        self.graphs = {key: graph for key, graph in self.graphs.items() if key[0][0] in rows}
        torch.cuda.empty_cache()

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, "torch.cuda.CUDAGraph"]:
        static_in = x.clone()
        # warm up on a side stream first, as CUDA graph capture requires (lazy inits, autotuning)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self.module(static_in)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in)
        return static_in, static_out, graph


def _compile_one(model: nn.Module, backend: str, n_in: int, precision: str, device: str,
                 batch_range: tuple[int, int, int], build_engine: bool) -> tuple[Callable, bytes | None, str]:
    if backend in CUDA_GRAPH_BACKENDS:
        inner, _, note = _compile_one(model, "compile" if backend == "compile-cudagraph" else "eager", n_in,
                                      precision, device, batch_range, build_engine)
        graphed = CudaGraphModule(inner)
        with torch.no_grad():  # capture now so a failure shows here, not mid-benchmark
            graphed(_sample_batch(n_in, batch_range[1], device).to(next(model.parameters()).dtype))
        return graphed, None, note
    if backend == "tensorrt":
        return _compile_tensorrt(model, n_in, precision, device, batch_range, build_engine)
    if backend == "compile":
        # every SurrogateMLP shares one forward code object, and dynamo's cache for it holds 8 entries:
        # past the 8th model it would silently run eager. One model at a time, so start clean.
        torch._dynamo.reset()
        # dynamic=True: one graph for every batch size. With the default, the graph was specialised to
        # the first batch and the tuner's second size recompiled it as dynamic, so the first candidate
        # was timed on a different graph than the rest and the benchmark's remainder batches could
        # recompile again; one dynamic graph costs one compile and times every size on the same code.
        compiled = torch.compile(model, dynamic=True)
        with torch.no_grad():  # torch.compile is lazy: compile now so failures show here, not mid-benchmark
            compiled(_sample_batch(n_in, batch_range[1], device))
        return compiled, None, ""
    return model, None, ""


def compile_surrogate(model: nn.Module, n_in: int, *, backend: str = "auto", precision: str = "fp32",
                      device: str | None = None, batch_range: tuple[int, int, int] = (1, 65_536, 1_048_576),
                      build_engine: bool = False) -> CompiledSurrogate:
    """Compile ``model`` (raw inputs ``(N, n_in)``) with the best available backend.

    ``batch_range`` = (min, opt, max) rows for TensorRT's dynamic batch dimension. ``auto`` tries
    tensorrt (only where CUDA and torch_tensorrt exist), then compile, then eager.
    """
    device = device or default_device()
    check_compile_request(backend, precision, device)
    model = model.eval().to(device)
    if precision == "fp16" and backend != "tensorrt":
        model = model.half()
    if backend == "auto":
        chain = (["tensorrt"] if device.startswith("cuda") and tensorrt_installed() else []) + ["compile", "eager"]
    else:
        chain = [backend]
    notes: list[str] = []
    if backend == "auto" and device.startswith("cuda") and not tensorrt_installed():
        notes.append(f"tensorrt skipped: torch_tensorrt not installed ({TENSORRT_INSTALL_HINT})")
    for position, name in enumerate(chain):
        started = time.perf_counter()
        try:
            module, engine, note = _compile_one(model, name, n_in, precision, device, batch_range, build_engine)
        except Exception as exc:
            if position == len(chain) - 1:
                raise
            notes.append(f"{name} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        if note:
            notes.append(note)
        module_precision = precision
        call = module
        if precision == "fp16" and name != "tensorrt":
            call = _half_io(module)
        return CompiledSurrogate(module=call, backend=name, precision=module_precision, device=device, n_in=n_in,
                                 compile_seconds=time.perf_counter() - started, engine_bytes=engine,
                                 note="; ".join(notes))
    raise AssertionError("unreachable: the last backend in the chain raises")


def _half_io(module: Callable) -> Callable:
    """An fp16 module that takes and returns float32, like the TensorRT one does."""
    return lambda x: module(x.half()).float()


@dataclass(frozen=True)
class BatchTuning:
    """Time per point at each batch size tried; ``best`` has the lowest."""

    best: int
    per_point_s: dict[int, float] = field(default_factory=dict)
    timing: Timing | None = None  # the timing at ``best``


def candidate_batch_sizes(device: str, n_points: int, *, smallest: int | None = None,
                          largest: int | None = None) -> list[int]:
    """Powers of two from ``smallest`` up to the largest useful size (GPUs like far larger batches:
    4,096 to 4M rows there, 256 to 65,536 on a CPU)."""
    smallest = smallest or (1 << 12 if device.startswith("cuda") else 256)
    largest = largest or (1 << 22 if device.startswith("cuda") else 1 << 16)
    sizes, size = [], smallest
    while size <= min(largest, max(n_points, smallest)):
        sizes.append(size)
        size *= 2
    return sizes


@torch.no_grad()
def evaluate_in_batches(surrogate: CompiledSurrogate, x: torch.Tensor, batch_size: int,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """Outputs for all rows of ``x``, ``batch_size`` rows per call, written into ``out`` if given."""
    first = surrogate(x[:batch_size])
    if out is None:
        out = torch.empty(x.shape[0], first.shape[1], dtype=first.dtype, device=first.device)
    out[: first.shape[0]] = first
    for start in range(batch_size, x.shape[0], batch_size):
        out[start:start + batch_size] = surrogate(x[start:start + batch_size])
    return out


def tune_batch_size(surrogate: CompiledSurrogate, *, n_points: int = 262_144, candidates: Sequence[int] | None = None,
                    warmup: int = 1, repeats: int = 3) -> BatchTuning:
    """Time ``n_points`` evaluations at each candidate batch size; the best per-point time wins.

    Inputs and outputs stay on the surrogate's device (no host-device transfers timed).
    """
    device = surrogate.device
    candidates = list(candidates or candidate_batch_sizes(device, n_points))
    x = _sample_batch(surrogate.n_in, n_points, device)
    out: torch.Tensor | None = None
    per_point: dict[int, float] = {}
    timings: dict[int, Timing] = {}
    for batch in candidates:
        if out is None:
            out = evaluate_in_batches(surrogate, x, batch)
        timing = time_call(lambda: evaluate_in_batches(surrogate, x, batch, out), warmup=warmup, repeats=repeats,
                           device=device, transfers=_transfer_note(device))
        per_point[batch] = timing.median_s / n_points
        timings[batch] = timing
    best = min(per_point, key=lambda b: (per_point[b], b))
    if isinstance(surrogate.module, CudaGraphModule):
        surrogate.module.keep_only({best})
    return BatchTuning(best=best, per_point_s=per_point, timing=timings[best])


def _transfer_note(device: str) -> str:
    return ("excluded: inputs and outputs stay on the GPU" if device.startswith("cuda")
            else "none: CPU, no host-device transfers")
