"""Tune's own pickles under ``--storage``, guarded by a MAC: only what this user's searches wrote is restored.

``Tuner.restore`` (``--resume``) unpickles ``tuner.pkl``, the cloudpickle blobs inside
``experiment_state-*.json``, the searcher's and callbacks' state files, and, once the restored search
ends, each errored trial's ``error.pkl``. Unpickling runs whatever code the file names, so anyone who
can write to a shared ``--storage`` could run code in the driver. fhn_automl's own reading of the Tune
folder (``search.replay``, ``--sync-tracking``) parses plain JSON only; for the files Tune itself must
restore, the driver records an HMAC-SHA256 of each as it is written, and ``--resume`` checks every such
file against those records before Tune opens any of them (``UntrustedTuneStateError`` otherwise).

The key is this user's (``~/.config/fhn_automl/tune_state.key``, mode 600, made on first use; or
``FHN_AUTOML_TUNE_STATE_KEY``, hex, for a driver that moves between machines); the records sit beside
the Tune folder (``<storage>/<experiment>.macs.json``): they can be read by anyone, forged by no one
without the key. ``FHN_AUTOML_TRUST_TUNE_STATE=1`` skips the check for a folder one trusts (a search
started by an older fhn_automl, which recorded nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_ENV = "FHN_AUTOML_TUNE_STATE_KEY"
TRUST_ENV = "FHN_AUTOML_TRUST_TUNE_STATE"
#: How many MACs the record keeps (Tune rewrites its experiment state every few seconds).
MAX_RECORDS = 2_000
_lock = threading.Lock()


class UntrustedTuneStateError(RuntimeError):
    """A pickle in the Tune folder that this user's searches did not write (or that changed since):
    ``--resume`` refuses to let Tune unpickle it."""


def _key_path() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "fhn_automl" / "tune_state.key"


def state_key() -> bytes:
    """This user's MAC key (made on first use, readable by the user only)."""
    text = os.environ.get(KEY_ENV)
    if text:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise UntrustedTuneStateError(f"{KEY_ENV} is not hex") from None
    path = _key_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # two drivers at once: the first one's key wins
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(os.urandom(32).hex().encode())
    return bytes.fromhex(path.read_text().strip())


def record_path(tune_path: str | os.PathLike) -> Path:
    folder = Path(tune_path)
    return folder.with_name(folder.name + ".macs.json")


def _mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _read_records(tune_path: str | os.PathLike) -> list[str]:
    try:
        records = json.loads(record_path(tune_path).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, str)] if isinstance(records, list) else []


def sign_files(tune_path: str | os.PathLike, files: list[Path]) -> None:
    """Record the MAC of each file's current content (files that vanished are skipped)."""
    key = state_key()
    macs = []
    for path in files:
        with contextlib.suppress(OSError):
            macs.append(_mac(key, Path(path).read_bytes()))
    if not macs:
        return
    with _lock:
        records = _read_records(tune_path)
        records = [r for r in records if r not in macs] + macs
        target = record_path(tune_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(records[-MAX_RECORDS:]))
        os.replace(temporary, target)


def guarded_files(tune_path: str | os.PathLike) -> list[Path]:
    """The files of a Tune folder that ``Tuner.restore`` (and the result grid after it) unpickles."""
    root = Path(tune_path)
    if not root.is_dir():
        return []
    top = [p for p in root.iterdir() if p.is_file() and (p.suffix == ".pkl" or
                                                         (p.name.startswith("experiment_state") and p.suffix == ".json"))]
    errors = [p for p in root.glob("*/error.pkl") if p.is_file()]
    return sorted(top + errors)


def check_before_restore(tune_path: str | os.PathLike) -> None:
    """Raise ``UntrustedTuneStateError`` naming the first guarded file whose MAC was not recorded."""
    if os.environ.get(TRUST_ENV) == "1":
        logger.warning("%s=1: the Tune folder %s is restored unchecked", TRUST_ENV, tune_path)
        return
    key = state_key()
    records = set(_read_records(tune_path))
    for path in guarded_files(tune_path):
        if _mac(key, path.read_bytes()) not in records:
            raise UntrustedTuneStateError(
                f"--resume: {path} was not written by a search of yours (no matching MAC in "
                f"{record_path(tune_path)}), or was changed since; Tune would unpickle it, which runs any code "
                f"it holds, so nothing was restored. If you trust everyone who can write to this --storage, "
                f"set {TRUST_ENV}=1; otherwise start the search afresh (without --resume)")


@contextlib.contextmanager
def signing_tune_writes(tune_path: str | os.PathLike) -> Iterator[None]:
    """While Tune runs in this driver: every experiment state it writes is signed as it is written.

    Tune writes its state into a local staging folder (``TuneController.save_to_dir``) and copies it
    to ``--storage`` afterwards; the MAC is taken of the staged content, before the copy, so a driver
    killed at any point leaves no state in storage whose MAC was not already recorded.
    """
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.save_to_dir

    def save_and_sign(self: TuneController) -> None:
        original(self)
        staging = Path(self._storage.experiment_driver_staging_path)
        sign_files(tune_path, [p for p in staging.iterdir() if p.is_file()])

    TuneController.save_to_dir = save_and_sign
    try:
        yield
    finally:
        TuneController.save_to_dir = original


def error_signer(tune_path: str | os.PathLike):
    """A Tune callback that signs each errored trial's ``error.pkl`` as Tune writes it (Tune calls
    ``on_trial_error`` after ``Trial.handle_error`` has written the file)."""
    from ray.tune import Callback

    class _SignErrors(Callback):
        def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
            path = getattr(trial, "pickled_error_file", None)
            if path:
                sign_files(tune_path, [Path(path)])

    return _SignErrors()
