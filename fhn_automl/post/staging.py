"""Write a whole output folder or nothing, and never remove anything fhn_automl did not write.

The post-stage report, the benchmark report and a pulled model folder all go through here: the folder
is built in a hidden sibling and renamed into place, so an interrupted or failed run never leaves a
half-written folder that looks complete.

Every folder written here carries a marker file (``MARKER``). An existing target is replaced only
when it holds that marker (our own earlier output) or is empty; any other folder, or a file, is
refused with ``ForeignOutputFolderError`` before any work starts, so ``--out .`` or ``--to ~`` can
never wipe a user's files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fhn_automl.post.errors import ForeignOutputFolderError

#: Written into every output folder; its presence is what allows a later run to replace the folder.
MARKER = ".fhn_automl-output"


def check_output_target(target: Path) -> None:
    """Raise ``ForeignOutputFolderError`` unless ``target`` is absent, empty, or our own earlier output."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise ForeignOutputFolderError(f"output path {target} exists and is not a folder; choose another "
                                       f"--out/--to (nothing was written)")
    if (target / MARKER).is_file():
        return
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise ForeignOutputFolderError(f"output folder {target} cannot be read ({exc.strerror})") from exc
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ForeignOutputFolderError(
            f"output folder {target} is not empty ({shown}) and was not written by fhn_automl (no {MARKER} "
            f"file), so it will not be replaced; pass a new or empty folder, e.g. {target / 'report'}")


def new_staging_folder(target: Path, label: str = "writing") -> Path:
    """An empty hidden folder beside ``target`` (same filesystem, so the final rename is atomic).

    Checks ``target`` first (``ForeignOutputFolderError``), so a refused folder costs no work.
    """
    check_output_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.{label}-", dir=target.parent))
    except OSError as exc:
        raise ForeignOutputFolderError(f"cannot write beside {target} ({exc.strerror}: {exc.filename}); "
                                       f"choose a writable --out/--to") from exc


def swap_into_place(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target`` with renames only.

    Our own earlier output is swapped out whole and removed afterwards; an empty folder keeps its
    identity (it may be the user's current directory) and receives the entries, the marker first so
    that an interruption leaves a folder the next run may replace. Anything else is refused, also
    when it appeared while the stage ran.
    """
    (staging / MARKER).write_text(json.dumps({"written_by": "fhn_automl", "pid": os.getpid(),
                                              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    try:
        check_output_target(target)
    except ForeignOutputFolderError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(staging, target)
    elif (target / MARKER).is_file():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:  # empty folder
        os.replace(staging / MARKER, target / MARKER)
        for entry in staging.iterdir():
            os.replace(entry, target / entry.name)
        staging.rmdir()


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
