"""SHA-256 digests of a saved model's files (torch-free, so the search driver can record them).

Recorded on a trial's MLflow run when its model is logged (``search.tracking``) and checked before
any copy of the files is loaded again (``post.integrity``): a ``model.ts`` or ``weights.pt`` swapped in
the artifact store is then refused by name instead of being benchmarked, registered or pulled.
"""

from __future__ import annotations

import os
from pathlib import Path

from fhn_automl.physics.dataset_files import file_sha256

#: The files a saved model consists of (``model_io``'s names, repeated here so torch stays out).
MODEL_FILES = ("spec.json", "weights.pt", "model.ts")


def file_digests(model_dir: str | os.PathLike) -> dict[str, str]:
    """{file name: SHA-256 hex} for each of ``MODEL_FILES`` present in ``model_dir``."""
    digests = {}
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            digests[name] = file_sha256(path)
    return digests
