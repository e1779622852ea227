"""What every dataset writer of the physics layer shares: its error, the output folder, a build lock, file digests.

``datasets`` (FitzHugh-Nagumo problems) and ``cell_datasets`` (N-state cell models) both write folders of
Parquet files with a manifest; they import these from here, so neither imports the other's module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DatasetError", "build_lock", "file_sha256", "prepare_output_dir"]


class DatasetError(ValueError):
    """A dataset request that cannot be served (bad size, unwritable folder); the message says why."""


def prepare_output_dir(out: Path) -> Path:
    """Create ``out`` (with parents) and prove it writable before any work starts."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DatasetError(f"cannot write the dataset to {out}: {error.strerror or error}") from None
    return out.resolve()


@contextlib.contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Serialise builders of one folder (parallel trials asking for the same dataset)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, the atomic renames still keep files whole
        yield
        return
    with open(out / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file, read in 1 MiB blocks: the digest of every manifest (datasets, cell
    datasets) and of model files (``learning.digests``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
