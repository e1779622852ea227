"""Write a file whole or not at all: through a hidden temporary name in the same folder, then rename.

Dependency-free and below every layer, so datasets, models, metrics and checkpoints are all written
the same way: a reader (or a resumed run) never sees half a file, and a failed write leaves no
temporary behind. ``os.replace`` is atomic only within one filesystem, hence the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def temporary_name(path: Path) -> Path:
    """``<folder>/.<name>.<pid>.tmp``: hidden, and distinct per process so two writers never share it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def final_name(temporary: Path) -> str:
    """``train.parquet`` for ``.train.parquet.<pid>.tmp``; any other name unchanged (for progress lines)."""
    name = temporary.name
    return name[1:].rsplit(".", 2)[0] if name.startswith(".") and name.endswith(".tmp") else name


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed to ``path``.

    On any error the temporary is removed and ``path`` keeps what it held before.
    """
    target = Path(path)
    temporary = temporary_name(target)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], T]) -> T:
    """Call ``write(temporary)`` and rename the temporary to ``path``; returns what ``write`` returned."""
    with atomic_path(path) as temporary:
        return write(temporary)


def write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """``Path.write_bytes``, atomically."""
    write_atomically(path, lambda temporary: temporary.write_bytes(payload))


def write_text(path: str | os.PathLike, text: str) -> None:
    """``Path.write_text``, atomically."""
    write_atomically(path, lambda temporary: temporary.write_text(text))


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """``payload`` as indented, key-sorted JSON (NumPy and torch scalars as floats), atomically."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=float))
