"""Which code produced a result: the git commit of the checkout fhn_automl runs from.

Dependency-free and below every layer, so the physics manifests and the search's MLflow tags
record the commit the same way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent


def git_commit(*, mark_dirty: bool = False) -> str | None:
    """``HEAD`` of the checkout (``-dirty`` appended when asked and tracked files changed); None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_CHECKOUT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        if not mark_dirty:
            return commit
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_CHECKOUT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
