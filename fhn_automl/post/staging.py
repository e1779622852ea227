"""Write a whole output folder or nothing: build it in a hidden sibling, then rename it into place.

The post-stage report, the benchmark report and a pulled model folder all go through here, so an
interrupted or failed run never leaves a half-written folder that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def new_staging_folder(target: Path, label: str = "writing") -> Path:
    """An empty hidden folder beside ``target`` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{label}-", dir=target.parent))


def swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames only (old content removed after the swap)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


@contextmanager
def staged_folder(target: Path, label: str = "writing") -> Iterator[Path]:
    """Yield a staging folder; on success it becomes ``target``, on any error it is deleted."""
    staging = new_staging_folder(target, label)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, target)
