"""Write a whole output folder or nothing, and never remove anything fhn_automl did not write.

The post-stage report, the benchmark report and a pulled model folder all go through here: the folder
is built in a hidden sibling first, so a failed run writes nothing into the target.

Every folder written here carries a marker file (``MARKER``) holding a manifest: the relative paths of
the files (and the sub-folders) this tool put there. A later run into the same folder removes exactly
those paths and nothing else; files a user added since are kept, and a new file that would land on a
user's file is refused. The folder itself is never renamed, removed or re-moded once it exists (it may
be the user's current directory). A folder that holds files but no marker is refused with
``ForeignOutputFolderError`` before any work starts, so ``--out .`` or ``--to ~`` can never wipe a
user's files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from fhn_automl.post.errors import ForeignOutputFolderError

#: Written into every output folder; its manifest lists what a later run may remove.
MARKER = ".fhn_automl-output"
_MANIFEST_VERSION = 2


def check_output_target(target: Path) -> None:
    """Raise ``ForeignOutputFolderError`` unless ``target`` is absent, empty, or holds our marker."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise ForeignOutputFolderError(f"output path {target} exists and is not a folder; choose another "
                                       f"--out/--to (nothing was written)")
    if (target / MARKER).is_file():
        _read_manifest(target)  # a marker we cannot read is refused now, before any work
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


def _safe_relative(value: object, target: Path) -> str:
    """A manifest entry is a plain relative path inside the folder; anything else is refused (a planted
    marker must not make us delete ``../../elsewhere``)."""
    if not isinstance(value, str) or not value:
        raise ForeignOutputFolderError(f"{target / MARKER}: manifest entry {value!r} is not a path; "
                                       "remove the folder yourself or choose another --out/--to")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or value != str(path) or path.name == MARKER:
        raise ForeignOutputFolderError(f"{target / MARKER}: manifest entry {value!r} is outside the folder; "
                                       "remove the folder yourself or choose another --out/--to")
    return value


def _read_manifest(target: Path) -> tuple[set[str], set[str]]:
    """(files, folders) this tool wrote into ``target`` earlier; empty sets when it has no marker."""
    marker = target / MARKER
    if not marker.is_file():
        return set(), set()
    try:
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ForeignOutputFolderError(f"{marker}: unreadable marker ({exc}); remove the folder yourself or "
                                       "choose another --out/--to") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list) or not isinstance(data.get("dirs", []), list):
        # a marker from before manifests: which files are ours is not known, so none is removed
        raise ForeignOutputFolderError(
            f"{marker} lists no files (written by an older fhn_automl, or edited), so fhn_automl cannot tell its "
            f"files from yours in {target}; remove the folder yourself or choose another --out/--to")
    files = {_safe_relative(v, target) for v in data["files"]}
    dirs = {_safe_relative(v, target) for v in data.get("dirs", [])}
    return files, dirs


def _no_symlink_on_the_way(target: Path, relative: str) -> bool:
    """True when no folder between ``target`` and ``relative`` is a symlink (a swapped-in link must not
    redirect a removal or a write outside the folder)."""
    current = target
    for part in PurePosixPath(relative).parts[:-1]:
        current = current / part
        if current.is_symlink():
            return False
    return True


def _write_marker(folder: Path, files: set[str], dirs: set[str]) -> None:
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"written_by": "fhn_automl", "manifest_version": _MANIFEST_VERSION,
                               "pid": os.getpid(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "files": sorted(files), "dirs": sorted(dirs)}, indent=1) + "\n")
    os.replace(tmp, folder / MARKER)


def _default_folder_mode() -> int:
    """The mode ``mkdir`` would give a new folder (0o777 less the umask); mkdtemp's 0o700 is for the
    hidden staging folder only, not for what the user gets."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def new_staging_folder(target: Path, label: str = "writing") -> Path:
    """An empty hidden folder beside ``target`` (same filesystem, so the moves are renames).

    Checks ``target`` first (``ForeignOutputFolderError``), so a refused folder costs no work.
    """
    check_output_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.{label}-", dir=target.parent))
    except OSError as exc:
        raise ForeignOutputFolderError(f"cannot write beside {target} ({exc.strerror}: {exc.filename}); "
                                       f"choose a writable --out/--to") from exc


def _contents(staging: Path) -> tuple[set[str], set[str]]:
    files, dirs = set(), set()
    for path in staging.rglob("*"):
        relative = path.relative_to(staging).as_posix()
        if path.is_dir() and not path.is_symlink():
            dirs.add(relative)
        elif relative != MARKER:
            files.add(relative)
    return files, dirs


def swap_into_place(staging: Path, target: Path) -> None:
    """Move what ``staging`` holds into ``target``; only paths in the old manifest are removed.

    A new target is the staging folder renamed (given a normal folder mode). An existing target (empty,
    or holding our marker) keeps its identity and mode: the marker is first rewritten to list both the
    old and the new files (so an interruption leaves nothing that a later run could not clean up), the
    old files are removed, the new ones moved in, and the marker rewritten to list the new ones. A new
    file that would replace a file not in the manifest is refused before anything is touched.
    """
    try:
        check_output_target(target)
    except ForeignOutputFolderError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files, dirs = _contents(staging)
    if not target.exists() and not target.is_symlink():
        _write_marker(staging, files, dirs)
        os.chmod(staging, _default_folder_mode())
        os.replace(staging, target)
        return
    try:
        old_files, old_dirs = _read_manifest(target)
        clashes = sorted(f for f in files | dirs if f not in old_files and f not in old_dirs
                         and ((target / f).exists() or (target / f).is_symlink())
                         and not (f in dirs and (target / f).is_dir() and not (target / f).is_symlink()))
        unsafe = sorted(f for f in files | dirs | old_files if not _no_symlink_on_the_way(target, f))
        if clashes or unsafe:
            shown = ", ".join((clashes + unsafe)[:5])
            raise ForeignOutputFolderError(
                f"output folder {target}: {shown} would be replaced but fhn_automl did not write it (or it is "
                f"reached through a symlink); nothing was changed; move it away or choose another --out/--to")
    except ForeignOutputFolderError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    created = {d for d in dirs if not (target / d).is_dir()}
    ours_dirs = (old_dirs & dirs) | created
    _write_marker(target, old_files | files, old_dirs | created)  # first: an interruption stays recoverable
    for relative in sorted(old_files - files):
        path = target / relative
        if (path.is_file() or path.is_symlink()) and not path.is_dir():
            path.unlink()
    for relative in sorted(dirs):  # parents sort before their children
        (target / relative).mkdir(exist_ok=True)
    for relative in sorted(files):
        os.replace(staging / relative, target / relative)
    for relative in sorted(old_dirs - dirs, key=lambda d: -len(PurePosixPath(d).parts)):
        try:
            (target / relative).rmdir()  # only when empty: a user's file inside keeps it
        except OSError:
            if (target / relative).is_dir():  # still there: still ours, so a later run may retry
                ours_dirs.add(relative)
    _write_marker(target, files, ours_dirs)
    shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_folder(target: Path, label: str = "writing") -> Iterator[Path]:
    """Yield a staging folder; on success its files move into ``target``, on any error it is deleted."""
    staging = new_staging_folder(target, label)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, target)
