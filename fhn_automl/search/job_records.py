"""Where a search's records go when it runs as a Ray job (``ray job submit --working-dir . -- ...``).

Ray runs a job's entrypoint in its own temporary copy of the working directory
(``.../runtime_resources/working_dir_files/_ray_pkg_<hash>``). Every relative default of a search (the
MLflow store ``mlruns/mlflow.db``, the registry inside it, Tune's folder ``runs/ray``, the datasets
``data/`` and the post-stage report ``runs/post/``) then lands in that copy, which the user never sees and
Ray deletes. So, in such a job, the search asks for a place the user looks:

- MLflow: ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` (a tracking server, or an absolute
  ``sqlite:////path/mlflow.db`` outside the copy);
- Tune's folder: ``--storage`` (an absolute path outside the copy, or ``s3://...``);

and stops with ``JobRecordsNotKeptError`` (exit 2) before any work otherwise. A relative
``--data-root`` and the post-stage report are then put under the storage folder (``<storage>/data``,
``<storage>/post/<experiment>``). Outside such a job nothing changes.

Standard library only: it runs before Ray or MLflow are imported.
"""

from __future__ import annotations

import os
from pathlib import Path


class JobRecordsNotKeptError(ValueError):
    """A Ray job would write its records into Ray's temporary copy of the working directory."""


def job_working_dir_copy(cwd: Path | None = None) -> Path | None:
    """Ray's temporary working-directory copy this process runs in as a job entrypoint, else None."""
    # Ray's job supervisor sets this variable for the entrypoint (the search already reads it in
    # ray_cluster.init_ray); the copy's path has Ray's package folder names in it
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        return None
    cwd = (cwd or Path.cwd()).resolve()
    in_copy = any(part.startswith("_ray_pkg_") for part in cwd.parts) or "working_dir_files" in cwd.parts
    return cwd if in_copy else None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True


def check_job_records(tracking_uri: str | None, storage: str | None, *, cwd: Path | None = None) -> Path | None:
    """Raise ``JobRecordsNotKeptError`` when a Ray job's records would stay in Ray's temporary copy.

    Returns the copy (None outside such a job). ``tracking_uri``: ``--tracking-uri`` (the
    environment's ``MLFLOW_TRACKING_URI`` is read here too); ``storage``: ``--storage``.
    """
    copy = job_working_dir_copy(cwd)
    if copy is None:
        return None
    how = ("; give the job a place you look at, e.g. ray job submit ... -- python -m fhn_automl.search SEARCH "
           "--tracking-uri http://MLFLOW_HOST:5000 (or sqlite:////abs/path/mlflow.db) --storage /abs/path/runs "
           "(jobs/README.md)")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise JobRecordsNotKeptError(
            f"running as a Ray job in Ray's temporary copy of the working directory ({copy}): without "
            "--tracking-uri or MLFLOW_TRACKING_URI the MLflow store and the registry would be written there "
            f"and lost from sight{how}")
    if uri.startswith("sqlite:"):
        path = uri.split(":", 1)[1].lstrip("/")
        absolute = uri.startswith("sqlite:////")
        if not absolute or _inside(Path("/" + path), copy):
            raise JobRecordsNotKeptError(
                f"running as a Ray job in Ray's temporary copy of the working directory ({copy}): the tracking "
                f"store {uri!r} is {'relative' if not absolute else 'inside that copy'} and would be lost from "
                f"sight{how}")
    elif uri.startswith("file:") or "://" not in uri:
        raise JobRecordsNotKeptError(f"running as a Ray job ({copy}): tracking URI {uri!r} is a local file store; "
                                     f"use a tracking server or an absolute sqlite:////... path{how}")
    if not storage:
        raise JobRecordsNotKeptError(
            f"running as a Ray job in Ray's temporary copy of the working directory ({copy}): without --storage "
            f"Tune's folder (checkpoints, --resume, --sync-tracking) would be written there{how}")
    if "://" not in storage and (not Path(storage).is_absolute() or _inside(Path(storage), copy)):
        raise JobRecordsNotKeptError(
            f"running as a Ray job in Ray's temporary copy of the working directory ({copy}): --storage "
            f"{storage!r} is {'relative' if not Path(storage).is_absolute() else 'inside that copy'}{how}")
    return copy


def job_data_root(data_root: str, storage: str | None, copy: Path | None) -> str:
    """In a Ray job, a relative ``--data-root`` under the (checked, absolute) storage folder."""
    if copy is None or Path(data_root).is_absolute() or not storage or "://" in storage:
        return data_root
    return str(Path(storage) / data_root)


__all__ = ["JobRecordsNotKeptError", "check_job_records", "job_data_root", "job_working_dir_copy"]
