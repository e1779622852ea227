"""Check a model's files against the digests recorded when it was logged, before they are loaded.

Trust boundary: the tracking store's run records (where the digests are tags) are trusted; the files
in the artifact store, a downloaded copy and a pulled folder are not, and a file whose SHA-256 differs
from the record is refused with ``ModelDigestError`` naming it. ``model.ts`` is TorchScript, which
runs whatever code it holds when called, so it must never be loaded unchecked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fhn_automl.learning.digests import file_digests
from fhn_automl.post.errors import ModelDigestError
from fhn_automl.search.tracking_tags import MODEL_DIGESTS_TAG

logger = logging.getLogger(__name__)


def recorded_digests(client: Any, run_id: str) -> dict[str, str] | None:
    """The digests recorded on ``run_id`` when its model was logged; None for a run logged before
    fhn_automl recorded them (its files cannot be checked; a warning says so)."""
    text = client.get_run(run_id).data.tags.get(MODEL_DIGESTS_TAG)
    if text is None:
        logger.warning("run %s records no model digests (logged by an older fhn_automl): its files are not checked",
                       run_id)
        return None
    try:
        digests = json.loads(text)
    except ValueError:
        digests = None
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise ModelDigestError(f"run {run_id}: tag {MODEL_DIGESTS_TAG} is not a {{file: sha256}} record ({text[:80]!r})")
    return digests


def verify_model_files(folder: str | os.PathLike, expected: Mapping[str, str] | None, *, what: str) -> None:
    """Raise ``ModelDigestError`` unless every file in ``expected`` is in ``folder`` with that digest.

    ``what`` names the model in the message (a run id, a registered version). ``expected`` None: no
    record to check against (an older run); nothing is checked.
    """
    if expected is None:
        return
    actual = file_digests(folder)
    for name, digest in sorted(expected.items()):
        if name not in actual:
            raise ModelDigestError(f"{what}: {name} is missing from {folder}, but was logged with the model; "
                                   "refusing the incomplete model")
        if actual[name] != digest:
            raise ModelDigestError(
                f"{what}: {Path(folder) / name} has SHA-256 {actual[name][:16]}..., but {digest[:16]}... was recorded "
                f"when the model was logged; the file was changed after logging, so it is not loaded")
