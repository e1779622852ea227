"""One search per experiment folder at a time: an exclusive ``fcntl.flock`` held for the whole run.

Two identical searches started together used to share a Tune folder: the second one, starting
afresh, deleted the first one's live state. Now the second gets ``SearchLockedError`` before it
touches anything. The lock file sits beside the Tune folder (``<storage>/<name>.lock``), not inside
it, because starting afresh removes that folder. The kernel drops the lock when the holder exits,
killed or not, so a crash never leaves a stale lock. Remote storage (``s3://``) cannot be locked;
there the search runs without one (a warning says so).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


class SearchLockedError(RuntimeError):
    """Another process runs (or syncs) the same search, with the same storage, right now."""


class StorageNotWritableError(RuntimeError):
    """The search's ``--storage`` folder cannot be created or written (read-only, a file, no permission)."""


def lock_path(tune_path: str) -> Path | None:
    """``<storage>/<tune name>.lock`` for a local Tune folder; None for remote storage."""
    if "://" in tune_path:
        return None
    folder = Path(tune_path)
    return folder.with_name(folder.name + ".lock")


@contextmanager
def experiment_lock(tune_path: str) -> Iterator[None]:
    """Hold the search's lock for the ``with`` block; ``SearchLockedError`` if someone else does."""
    path = lock_path(tune_path)
    if path is None:
        logger.warning("storage %s is remote: no lock against a second search of the same experiment",
                       tune_path)
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # first thing written under --storage: the place to say it cannot be
        raise StorageNotWritableError(f"--storage {path.parent}: cannot write there ({exc.strerror}: "
                                      f"{exc.filename}); give a writable folder") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip() or "unknown"
            raise SearchLockedError(
                f"another search of this experiment is running (process {holder}, lock {path}); wait for "
                f"it to end, or give this one another --storage") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)  # who holds it, for the message above
        yield
    finally:
        os.close(descriptor)  # releases the lock
