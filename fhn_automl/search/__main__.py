"""``python -m fhn_automl.search SEARCH [--budget smoke|small|paper] [--no-post]``: see ``search.cli``.

An entry point, not a module of the search layer: nothing imports it but ``python -m``. The command
the README promises runs the post-stage after the search, and the search layer may not import the
post-stage above it, so the chaining lives in the top-level ``fhn_automl.pipeline`` and this file
only hands over to it (the import-layering test lists it as the one allowed upward import).
"""

from __future__ import annotations

import sys

from fhn_automl.pipeline import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
