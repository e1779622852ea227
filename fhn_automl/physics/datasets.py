"""Training and validation sets as Parquet files: sampled initial states, solved with forward Euler.

One folder per request (problem, size, seed) with ``train.parquet``, ``val.parquet`` (+ problem A's
``scarce`` / ``complete``, the iterator's ``rollout``) and a ``manifest.json`` that records what was
asked for, how it was solved, the code's commit and every file's SHA-256.

Why the care with files: a search starts hundreds of trials that all read the same dataset, often
on other nodes, and a dataset can take minutes to make. So a folder is built once and reused when
the manifest says it is the same request and every checksum matches; a file that is missing, cut
short or altered is rebuilt alone (generation is deterministic, so the rebuilt file has the bytes the
manifest remembers). Every file is written under a temporary name and renamed into place, so an
interrupted build never leaves a half file that looks whole, and two processes building the same
folder serialise on a lock file. Same request, same seed -> the same bytes: no timestamps anywhere.

Rows (float columns float32, ``traj`` int64):
  trajectory problems  ``traj, <inputs among t, u0, w0, k>, u, w`` -- every stored state of each
                       trajectory, t = 0, save_dt, ..., t_end
  iterator problems    ``traj, u, w[, k], u_next, w_next`` -- a state and the state dt_net later,
                       the states half homogeneous in the domain, half visited by the dynamics
                       (``sampling.sample_iterator_states``);
                       ``rollout.parquet``: ``traj, t, u0, w0[, k], u, w`` whole trajectories
``traj`` numbers the trajectories (or pairs) of a folder; train and val never share one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fhn_automl import __version__
from fhn_automl._atomic import final_name, write_atomically, write_text
from fhn_automl._provenance import git_commit
from fhn_automl.physics._euler_cpu import numba_available
from fhn_automl.physics.cell_datasets import build_beat_dataset, build_state_dataset
from fhn_automl.physics.dataset_files import DatasetError, build_lock as _build_lock, file_sha256, prepare_output_dir
from fhn_automl.physics.euler import euler_trajectories, iter_euler_chunks, n_saved_states, resolve_backend
from fhn_automl.physics.problems import Problem, get_problem
from fhn_automl.physics.sampling import sample_initial_states, sample_iterator_states

#: bump when the files' layout or contents change for the same request: old caches then rebuild
DATASET_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: the solver integrates in float64 (the stored float32 then carries no accumulated rounding)
SOLVER_DTYPE = np.float64
#: rows per Parquet row group / per solver chunk: bounds memory at ~100 MB whatever the dataset size
ROWS_PER_CHUNK = 1 << 21
#: the smallest validation sets a scaled-down iterator dataset keeps, so its metrics mean something
MIN_ITERATOR_VAL_PAIRS = 100
MIN_ROLLOUT_TRAJECTORIES = 20


@dataclass(frozen=True)
class DatasetRequest:
    """What identifies a dataset folder: equal requests reuse the same files."""

    problem: str
    n_trajectories: int | None
    seed: int

    def folder_name(self) -> str:
        size = "thesis" if self.n_trajectories is None else f"n{self.n_trajectories}"
        return f"{self.problem}-{size}-seed{self.seed}"


# ----------------------------------------------------------------------------------------- public


def build_dataset(problem: str | Problem, out_dir: str | os.PathLike, *, n_trajectories: int | None = None,
                  seed: int = 0, device: str = "auto") -> Path:
    """Write (or reuse) the dataset of ``problem`` in ``out_dir``; returns its absolute path.

    ``n_trajectories``: total over train + val in the problem's default ratio (iterators: pairs; the
    rollout set scales along); None = the thesis' sizes. ``device``: ``auto`` | ``cpu`` | ``cuda``.
    Everything is validated before anything is written: an unknown problem, a bad size, ``cuda``
    without CuPy or an unwritable folder raise (``UnknownProblemError``, ``DatasetError``,
    ``CudaUnavailableError``) and leave the disk untouched.
    """
    problem = get_problem(problem) if isinstance(problem, str) else problem
    if problem.kind == "beat":  # an N-state cell model's paced beats (issue 22): physics.cell_datasets
        _check_seed(seed)
        backend = _beat_backend(device)
        out = prepare_output_dir(Path(out_dir))
        with _build_lock(out):
            return build_beat_dataset(problem, out, n_cells=_check_size(n_trajectories), seed=seed, backend=backend,
                                      progress=_progress)
    if problem.kind == "cell_state":  # an N-state model's free trajectories from initial states (issue 22)

        _check_seed(seed)
        backend = _beat_backend(device)
        out = prepare_output_dir(Path(out_dir))
        with _build_lock(out):
            return build_state_dataset(problem, out, n_trajectories=_check_size(n_trajectories), seed=seed,
                                       backend=backend, progress=_progress)
    plan = _plan(problem, DatasetRequest(problem.name, _check_size(n_trajectories), _check_seed(seed)))
    _check_memory(problem, plan.sizes)
    backend = resolve_backend(device)
    out = prepare_output_dir(Path(out_dir))
    with _build_lock(out):
        manifest = _read_manifest(out)
        files = dict(manifest.get("files", {})) if manifest.get("key") == plan.key else {}
        rebuilt = []
        for name, writer in plan.writers.items():
            if name in files and _file_matches(out / name, files[name]["sha256"]):
                continue
            _progress(f"{problem.name}: writing {name}")
            rows = write_atomically(out / name, lambda path, writer=writer: writer(path, backend))
            files[name] = {"sha256": file_sha256(out / name), "bytes": (out / name).stat().st_size, "rows": rows}
            rebuilt.append(name)
        if rebuilt or manifest.get("files") != files:
            backends = dict(manifest.get("backends", {})) if manifest.get("key") == plan.key else {}
            backends.update({name: _backend_label(backend) for name in rebuilt})
            _write_manifest(out, plan, {name: files[name] for name in plan.writers}, backends)
    return out


def ensure_dataset(problem: str | Problem, *, root: str | os.PathLike = "data", n_trajectories: int | None = None,
                   seed: int = 0, device: str = "auto") -> Path:
    """:func:`build_dataset` under ``root/<problem>-<n<N>|thesis>-seed<S>``: one folder per request,
    so every caller (the search driver, a trial, the CLI) finds the same cache."""
    problem = get_problem(problem) if isinstance(problem, str) else problem
    request = DatasetRequest(problem.name, _check_size(n_trajectories), _check_seed(seed))
    return build_dataset(problem, Path(root) / request.folder_name(), n_trajectories=n_trajectories,
                         seed=seed, device=device)


def _beat_backend(device: str) -> str:
    """The N-state solver backend for ``device``: ``numba`` on CPU, ``cuda`` (CuPy) where asked or found."""
    return "cuda" if resolve_backend(device) == "cuda" else "numba"


def read_split(dataset_dir: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """The columns of ``<dataset_dir>/<split>.parquet`` as NumPy arrays (float columns float32)."""
    path = Path(dataset_dir) / f"{split}.parquet"
    if not path.is_file():
        available = sorted(p.stem for p in Path(dataset_dir).glob("*.parquet")) if Path(dataset_dir).is_dir() else []
        raise FileNotFoundError(f"no split {split!r} in {dataset_dir}: available {available or 'none'}")
    table = pq.read_table(path)
    columns = {}
    for name in table.column_names:
        values = table.column(name).to_numpy()
        columns[name] = values.astype(np.float32, copy=False) if values.dtype.kind == "f" else values
    return columns


def iter_split(dataset_dir: str | os.PathLike, split: str, columns: tuple[str, ...] | list[str],
               batch_rows: int = ROWS_PER_CHUNK) -> Iterator[dict[str, np.ndarray]]:
    """The ``columns`` of ``<dataset_dir>/<split>.parquet`` in batches of at most ``batch_rows`` rows
    (float columns float32): a whole split at bounded memory (validating on all of problem C's)."""
    path = Path(dataset_dir) / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no split {split!r} in {dataset_dir}")
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=list(columns)):
        out = {}
        for name in columns:
            values = batch.column(name).to_numpy(zero_copy_only=False)
            out[name] = values.astype(np.float32, copy=False) if values.dtype.kind == "f" else values
        yield out


def check_dataset_dir(dataset_dir: str | os.PathLike, problem_name: str, splits: Iterable[str]) -> Path:
    """A dataset folder given by the user (``--data-dir``), judged before training reads it.

    It must be a folder with a readable ``manifest.json`` of ``problem_name``, and each of ``splits``
    (a split name; Parquet paths are left to the reader) must be there and, when the manifest lists
    it, match its SHA-256. ``DatasetError`` names the folder, the file and what is wrong.
    """
    path = Path(dataset_dir)
    if not path.is_dir():
        raise DatasetError(f"data_dir {path}: {'not a folder' if path.exists() else 'no such folder'}")
    manifest_path = path / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"data_dir {path}: no {MANIFEST_NAME}, so not a dataset written by "
                           f"python -m fhn_automl.data") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{manifest_path}: not readable JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DatasetError(f"{manifest_path}: field 'files' is missing; the manifest is broken")
    recorded = manifest.get("problem")
    if recorded is not None and recorded != problem_name:
        raise DatasetError(f"data_dir {path}: its manifest says problem {recorded!r}, not {problem_name!r}")
    files = manifest["files"]
    for split in splits:
        if str(split).endswith(".parquet"):
            continue
        name = f"{split}.parquet"
        entry = files.get(name)
        if entry is None:
            if not (path / name).is_file():
                available = sorted(n.removesuffix(".parquet") for n in files)
                raise DatasetError(f"data_dir {path}: no split {split!r}; available: {', '.join(available) or 'none'}")
            continue  # a set added beside the dataset (not in its manifest): read as it is
        if not isinstance(entry, dict) or not _file_matches(path / name, str(entry.get("sha256"))):
            raise DatasetError(f"{path / name}: missing, or its SHA-256 differs from {MANIFEST_NAME} "
                               f"(changed or truncated); rebuild it with python -m fhn_automl.data")
    return path


def read_manifest(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder (empty dict when there is none or it is unreadable)."""
    return _read_manifest(Path(dataset_dir))


def dataset_sizes(problem: Problem, n_trajectories: int | None) -> dict[str, int]:
    """Trajectories (pairs for iterator train/val) per file for a request; see :func:`build_dataset`."""
    n_trajectories = _check_size(n_trajectories)
    if problem.sampling == "fixed":  # one trajectory; its point sets have fixed sizes
        return {"train": 1, "val": 1, **{name: 1 for name in problem.extra_sets}}
    if n_trajectories is None:
        sizes = {"train": problem.n_train, "val": problem.n_val}
        if problem.kind == "iterator":
            sizes["rollout"] = problem.n_rollout_val
        return sizes
    if n_trajectories < 2:
        raise DatasetError(f"n_trajectories must be at least 2 (one for train, one for val), got {n_trajectories}")
    val_share = problem.n_val / (problem.n_train + problem.n_val)
    if problem.kind == "iterator":
        n_val = min(n_trajectories // 2, max(MIN_ITERATOR_VAL_PAIRS, round(n_trajectories * val_share)))
        rollout_share = problem.n_rollout_val / (problem.n_train + problem.n_val)
        n_rollout = min(problem.n_rollout_val, max(MIN_ROLLOUT_TRAJECTORIES, round(n_trajectories * rollout_share)))
        return {"train": n_trajectories - n_val, "val": n_val, "rollout": n_rollout}
    n_val = min(n_trajectories - 1, max(1, round(n_trajectories * val_share)))
    return {"train": n_trajectories - n_val, "val": n_val}


def solver_settings(problem: Problem) -> dict[str, Any]:
    """Step, storing stride and precision of the data-generating solve."""
    save_every = round(problem.save_dt / problem.solver_dt)
    if not np.isclose(save_every * problem.solver_dt, problem.save_dt):
        raise ValueError(f"{problem.name}: save_dt {problem.save_dt} is not a multiple of dt {problem.solver_dt}")
    return {"method": "forward_euler", "dt": problem.solver_dt, "save_dt": problem.save_dt,
            "save_every": save_every, "dtype": np.dtype(SOLVER_DTYPE).name}


def trajectory_columns(problem: Problem) -> tuple[str, ...]:
    """Column names of a trajectory problem's files: ``traj``, its inputs, its outputs."""
    return ("traj", *problem.inputs, *problem.outputs)


def iterator_columns(problem: Problem) -> tuple[str, ...]:
    """Column names of an iterator problem's pair files: ``traj``, the state[, k], the next state."""
    return ("traj", *problem.inputs, *problem.outputs)


def rollout_columns(problem: Problem) -> tuple[str, ...]:
    return ("traj", "t", "u0", "w0", *(("k",) if problem.has_k else ()), "u", "w")


# --------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Plan:
    key: dict[str, Any]
    sizes: dict[str, int]
    writers: dict[str, Callable[[Path, str], int]]


def _plan(problem: Problem, request: DatasetRequest) -> _Plan:
    """Which files the request needs and how to write each (independently, for partial rebuilds)."""
    sizes = dataset_sizes(problem, request.n_trajectories)
    streams = np.random.SeedSequence(request.seed).spawn(3)  # one per sample set: files rebuild alone
    key = {"format_version": DATASET_FORMAT_VERSION, "request": asdict(request),
           "problem": _problem_record(problem), "solver": solver_settings(problem)}
    if problem.sampling == "fixed":
        writers = _fixed_state_writers(problem)
    elif problem.kind == "iterator":
        writers = {
            "train.parquet": lambda path, backend: _write_pairs(problem, path, sizes["train"], streams[0], 0, backend),
            "val.parquet": lambda path, backend: _write_pairs(problem, path, sizes["val"], streams[1],
                                                              sizes["train"], backend),
            "rollout.parquet": lambda path, backend: _write_rollout(problem, path, sizes["rollout"], streams[2],
                                                                    sizes["train"] + sizes["val"], backend),
        }
    else:
        def split(part: str) -> dict[str, np.ndarray]:
            # one Latin hypercube over train + val (its rows come in random order): the split is a
            # random partition that keeps the stratification of the whole
            states = sample_initial_states(problem, sizes["train"] + sizes["val"], streams[0])
            rows = slice(0, sizes["train"]) if part == "train" else slice(sizes["train"], None)
            return {name: values[rows] for name, values in states.items()}

        writers = {
            "train.parquet": lambda path, backend: write_trajectories(problem, path, split("train"), 0, backend),
            "val.parquet": lambda path, backend: write_trajectories(problem, path, split("val"),
                                                                     sizes["train"], backend),
        }
    return _Plan(key=key, sizes=sizes, writers=writers)


def _problem_record(problem: Problem) -> dict[str, Any]:
    """The problem's definition as plain data: a changed definition must not reuse old files."""
    record = asdict(problem)
    del record["description"]  # prose: rewording it must not invalidate data
    record["ranges"] = {name: list(bounds) for name, bounds in problem.ranges.items()}
    record["cell_model_parameters"] = problem.model.kernel_constants()
    return json.loads(json.dumps(record))  # tuples -> lists, as they come back from JSON


# ---------------------------------------------------------------------------------------- writing


def write_trajectories(problem: Problem, path: Path, states: dict[str, np.ndarray], first_traj: int,
                       backend: str) -> int:
    """Whole trajectories, every stored state, streamed chunk by chunk to one Parquet file."""
    settings = solver_settings(problem)
    n_steps = round(problem.t_end / problem.solver_dt)
    n_saved = n_saved_states(n_steps, settings["save_every"])
    times = (np.arange(n_saved) * problem.save_dt).astype(np.float32)
    n = len(states["u0"])
    k = states.get("k", np.zeros(n))
    columns = trajectory_columns(problem)
    with _ParquetStream(path, columns) as stream, _Progress(final_name(path), n, "trajectories") as progress:
        for rows, U, W in iter_euler_chunks(problem.model, states["u0"], states["w0"], problem.i_app(k),
                                            chunk_size=max(1, ROWS_PER_CHUNK // n_saved), dt=problem.solver_dt,
                                            n_steps=n_steps, save_every=settings["save_every"],
                                            backend=backend, dtype=SOLVER_DTYPE, reuse_buffers=True):
            m = rows.stop - rows.start
            data = {"traj": np.repeat(np.arange(first_traj + rows.start, first_traj + rows.stop), n_saved),
                    "t": np.tile(times, m), "u": _host(U).reshape(-1), "w": _host(W).reshape(-1)}
            for name in ("u0", "w0", "k"):
                if name in columns:
                    data[name] = np.repeat(states[name][rows] if name != "k" else k[rows], n_saved)
            stream.write(data)
            progress.advance(m)
    return n * n_saved


def _write_pairs(problem: Problem, path: Path, n_pairs: int, seed: np.random.SeedSequence, first_traj: int,
                 backend: str) -> int:
    """Iterator pairs from homogeneous and visited states (u, w[, k]): ``sample_iterator_states``."""
    states = sample_iterator_states(problem, n_pairs, seed, backend="cpu" if backend == "numpy" else backend)
    return write_pairs(problem, path, states, first_traj, backend)


def write_pairs(problem: Problem, path: Path, states: dict[str, np.ndarray], first_traj: int, backend: str) -> int:
    """Iterator pairs: each state (u, w[, k]) and the state ``dt_net`` later, to one Parquet file."""
    n_pairs = len(states["u"])
    k = states.get("k", np.zeros(n_pairs))
    n_steps = _steps(problem.dt_net, problem.solver_dt)
    columns = iterator_columns(problem)
    with _ParquetStream(path, columns) as stream, _Progress(final_name(path), n_pairs, "pairs") as progress:
        for rows, U, W in iter_euler_chunks(problem.model, states["u"], states["w"], problem.i_app(k),
                                            chunk_size=ROWS_PER_CHUNK, dt=problem.solver_dt, n_steps=n_steps,
                                            save_every=n_steps, backend=backend, dtype=SOLVER_DTYPE,
                                            reuse_buffers=True):
            U, W = _host(U), _host(W)
            data = {"traj": np.arange(first_traj + rows.start, first_traj + rows.stop),
                    "u": states["u"][rows], "w": states["w"][rows], "u_next": U[:, -1], "w_next": W[:, -1]}
            if "k" in columns:
                data["k"] = k[rows]
            stream.write(data)
            progress.advance(rows.stop - rows.start)
    return n_pairs


def _write_rollout(problem: Problem, path: Path, n_traj: int, seed: np.random.SeedSequence, first_traj: int,
                   backend: str) -> int:
    """Whole trajectories to ``rollout_t_end`` from homogeneous initial states, for rollout validation."""
    sampled = sample_initial_states(problem, n_traj, seed)
    states = {"u0": sampled["u"], "w0": sampled["w"], **({"k": sampled["k"]} if "k" in sampled else {})}
    # the iterator problem seen as a trajectory problem to rollout_t_end, for writing only
    rollout = dataclasses.replace(problem, kind="trajectory", t_span=(0.0, problem.rollout_t_end),
                                  inputs=rollout_columns(problem)[1:-2], outputs=("u", "w"))
    return write_trajectories(rollout, path, states, first_traj, backend)


def _fixed_state_writers(problem: Problem) -> dict[str, Callable[[Path, str], int]]:
    """Problem A: one trajectory; 'val' is it at save_dt spacing, the point sets are subsets of the
    solver's own grid (no interpolation), both ends included; 'train' is the 'complete' set."""

    def points(count: int | None) -> Callable[[Path, str], int]:
        def write(path: Path, backend: str) -> int:
            n_steps = round(problem.t_end / problem.solver_dt)
            u0, w0 = problem.fixed_initial_state
            U, W = euler_trajectories(problem.model, [u0], [w0], problem.i_app(0.0), dt=problem.solver_dt,
                                      n_steps=n_steps, backend=backend, dtype=SOLVER_DTYPE)
            if count is None:
                steps = np.arange(0, n_steps + 1, solver_settings(problem)["save_every"])
            else:
                steps = np.unique(np.round(np.linspace(0, n_steps, count)).astype(np.int64))
            data = {"traj": np.zeros(len(steps), dtype=np.int64), "t": steps * problem.solver_dt,
                    "u0": np.full(len(steps), u0), "w0": np.full(len(steps), w0),
                    "u": _host(U)[0, steps], "w": _host(W)[0, steps]}
            with _ParquetStream(path, trajectory_columns(problem)) as stream:
                stream.write(data)
            return len(steps)

        return write

    writers = {"train.parquet": points(problem.extra_sets.get("complete")), "val.parquet": points(None)}
    writers.update({f"{name}.parquet": points(count) for name, count in problem.extra_sets.items()})
    return writers


class _ParquetStream:
    """Row groups appended to one Parquet file, with deterministic bytes (no timestamps, fixed
    compression, columns in a fixed order and dtype)."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.columns = columns
        self.schema = pa.schema([(name, pa.int64() if name == "traj" else pa.float32()) for name in columns])
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd", compression_level=3)

    def write(self, data: dict[str, np.ndarray]) -> None:
        arrays = [pa.array(np.ascontiguousarray(data[name], dtype=np.int64 if name == "traj" else np.float32))
                  for name in self.columns]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def __enter__(self) -> "_ParquetStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()


def _write_manifest(out: Path, plan: _Plan, files: dict[str, dict[str, Any]], backends: dict[str, str]) -> None:
    manifest = {
        "problem": plan.key["request"]["problem"],
        "seed": plan.key["request"]["seed"],
        "n_trajectories": plan.key["request"]["n_trajectories"],
        "sizes": plan.sizes,
        "solver": plan.key["solver"],
        "backends": backends,
        "code": {"git_commit": git_commit() or "unknown", "package_version": _package_version()},
        "files": files,
        "key": plan.key,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    write_text(out / MANIFEST_NAME, text)


def _read_manifest(out: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


# ---------------------------------------------------------------------------------------- helpers


def _check_size(n_trajectories: int | None) -> int | None:
    if n_trajectories is None:
        return None
    if isinstance(n_trajectories, bool) or int(n_trajectories) != n_trajectories or n_trajectories < 1:
        raise DatasetError(f"n_trajectories must be a positive integer, got {n_trajectories!r}")
    return int(n_trajectories)


def available_memory_bytes() -> int | None:
    """Physical memory free now (POSIX ``sysconf``); None where the platform does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(problem: Problem, sizes: Mapping[str, int]) -> None:
    """Refuse a dataset whose arrays cannot fit in memory before any is allocated: 1e15 trajectories
    once went straight to numpy's allocator. The estimate counts each kept state as 8 float64 columns
    (the solver's output and the Parquet columns built from it)."""
    kept = int(round((problem.t_span[1] - problem.t_span[0]) / 0.1)) + 1 if problem.kind == "trajectory" else 2
    rows = sum(int(v) for v in sizes.values()) * kept
    needed = rows * 8 * 8
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise DatasetError(f"n_trajectories {sum(int(v) for v in sizes.values())}: about {needed / 2**30:.3g} GiB of "
                           f"arrays ({rows:.3g} rows), more than the {available / 2**30:.1f} GiB free; ask for fewer")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _steps(span: float, dt: float) -> int:
    n_steps = round(span / dt)
    if not np.isclose(n_steps * dt, span):
        raise ValueError(f"time span {span} is not a multiple of the solver step {dt}")
    return n_steps


def _file_matches(path: Path, sha256: str) -> bool:
    return path.is_file() and file_sha256(path) == sha256


def _package_version() -> str:
    return __version__


def _backend_label(backend: str) -> str:
    if backend == "cpu":
        return "cpu-numba" if numba_available() else "cpu-numpy"
    return backend


def _host(array: Any) -> np.ndarray:
    """NumPy view of a solver result (CuPy arrays are copied to the host)."""
    return array if isinstance(array, np.ndarray) else array.get()


def _progress(message: str) -> None:
    print(f"[fhn_automl.data] {message}", file=sys.stderr, flush=True)


class _Progress:
    """Progress lines on stderr for long writes, at most one every few seconds."""

    def __init__(self, label: str, total: int, unit: str, every_s: float = 5.0):
        self.label, self.total, self.unit, self.every_s = label, total, unit, every_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            _progress(f"{self.label}: {self.done:,}/{self.total:,} {self.unit} "
                      f"({100 * self.done / self.total:.0f}%, {now - self.start:.1f} s)")

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and time.monotonic() - self.start >= 1.0:
            _progress(f"{self.label}: {self.total:,} {self.unit} in {time.monotonic() - self.start:.1f} s")
