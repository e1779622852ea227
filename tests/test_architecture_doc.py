"""docs/ARCHITECTURE.md's module map names every module of the package exactly once, and no other."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import fhn_automl

PACKAGE_ROOT = Path(fhn_automl.__file__).resolve().parent
DOC = PACKAGE_ROOT.parent / "docs" / "ARCHITECTURE.md"


def listed_modules(text: str) -> list[str]:
    """The ``.py`` paths of the map (the first fenced block): ``  name/`` opens a sub-package."""
    block = text.split("```")[1]
    listed, package = [], ""
    for line in block.splitlines():
        if folder := re.fullmatch(r"  (\w+)/\s*", line):
            package = folder.group(1) + "/"
        elif module := re.match(r"( +)(\S+\.py)\s", line):
            listed.append((package if len(module.group(1)) > 2 else "") + module.group(2))
    return listed


def test_the_module_map_lists_each_module_once_and_nothing_else():
    if not DOC.is_file():  # an installed wheel carries no docs/
        import pytest

        pytest.skip("docs/ARCHITECTURE.md is not beside the package (installed, not a checkout)")
    listed = listed_modules(DOC.read_text())
    real = {path.relative_to(PACKAGE_ROOT).as_posix() for path in PACKAGE_ROOT.rglob("*.py")}
    assert [name for name, count in Counter(listed).items() if count > 1] == []
    assert sorted(real - set(listed)) == [], "modules missing from docs/ARCHITECTURE.md"
    assert sorted(set(listed) - real) == [], "docs/ARCHITECTURE.md lists modules that do not exist"
