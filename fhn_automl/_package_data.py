"""Where the non-Python files live: the search-space YAML files and the CUDA kernel sources.

Their source of truth is the repository's top-level ``search_spaces/`` and ``cuda/`` folders (the
design puts them there, beside ``jobs/``). A wheel cannot reach outside the package, so the build
copies them into it as ``fhn_automl/package_data/<folder>/`` (``setup.py``'s ``build_py`` step;
``MANIFEST.in`` puts them in the sdist). At run time an installed copy reads its own files, and a
source checkout (editable install, ``PYTHONPATH``) reads the top-level folders. Dependency-free and
below every layer, like ``_provenance``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: the folder inside the installed package that the build fills
PACKAGED = "package_data"
#: top-level folder -> the file patterns the build ships (setup.py reads this too)
SHIPPED = {"search_spaces": ("*.yaml", "README.md"), "cuda": ("*.cu", "*.cuh")}


def package_data_dir(name: str) -> Path:
    """``search_spaces`` or ``cuda``: the installed copy if this is an installed package, else the
    checkout's top-level folder."""
    if name not in SHIPPED:
        raise ValueError(f"unknown package data folder {name!r}; known: {', '.join(SHIPPED)}")
    installed = files("fhn_automl").joinpath(PACKAGED, name)
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[1] / name
