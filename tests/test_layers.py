"""The layer contract, checked on the source: imports only go downward and no modules import each
other in a circle (docs/ARCHITECTURE.md).

Every import counts, also those inside functions (a lazy import is still a dependency) and those
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast

import pytest
from pathlib import Path

import fhn_automl

PACKAGE_ROOT = Path(fhn_automl.__file__).resolve().parent
#: physics <- learning <- search <- post: a layer imports only those before it in this list.
LAYERS = ("physics", "learning", "search", "post")
#: Entry points that may import upward, with what they may import and why (see each file's docstring).
ENTRY_POINTS = {
    # `python -m fhn_automl.search` runs the post-stage after the search, as the README says; the
    # chaining lives in the top-level command fhn_automl.pipeline and this file only hands over.
    "fhn_automl.search.__main__": {"fhn_automl.pipeline"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def imported_modules(name: str, path: Path) -> set[str]:
    """The fhn_automl modules (or packages) that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import submodule` depends on the submodule, otherwise on `base`
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "fhn_automl" or target.startswith("fhn_automl."):
                while target not in MODULES:  # `import fhn_automl.x.y` of a name in a module
                    target = target.rpartition(".")[0]
                found.add(target)
    found.discard(name)
    return found


GRAPH = {name: imported_modules(name, path) for name, path in MODULES.items()}


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_walk_sees_every_layer_and_their_imports():
    """Guards the test itself: it must find modules of each layer and known downward imports."""
    assert {layer_of(name) for name in MODULES} >= set(range(len(LAYERS)))
    assert "fhn_automl.physics.problems" in GRAPH["fhn_automl.learning.untrained"]
    assert "fhn_automl.search.tracking_tags" in GRAPH["fhn_automl.post.runs"]


def test_layers_import_only_downward():
    upward = []
    for name, targets in GRAPH.items():
        own = layer_of(name)
        if own is None:
            continue  # top-level commands (fhn_automl/*.py) may import every layer
        for target in targets - ENTRY_POINTS.get(name, set()):
            other = layer_of(target)
            top_level_command = other is None and target != "fhn_automl" and \
                not target.rpartition(".")[2].startswith("_")
            if (other is not None and other > own) or top_level_command:
                upward.append(f"{name} imports {target}")
    assert not upward, "imports against the layer order physics <- learning <- search <- post:\n" + \
        "\n".join(sorted(upward))


def test_no_import_cycles():
    """Tarjan's strongly connected components of the import graph: each must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles, "modules that import each other in a circle:\n" + \
        "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_layer_notation_has_one_parser():
    """``activation-width`` is parsed in one place, ``learning.architecture.parse_layer`` (issue 15): no
    other module splits a token at its dash or keeps its own token pattern, so a search file takes
    exactly what the trainer takes."""
    own_parsers = []
    for name, path in MODULES.items():
        if name == "fhn_automl.learning.architecture":
            continue
        source = path.read_text()
        # the shapes a second parser took before (search/space.py's token regex, search/grid.py's split)
        for sign in ('rpartition("-")', "rpartition('-')", "_LAYER_TOKEN", "-[1-9][0-9]*", r"-(\d+)"):
            if sign in source:
                own_parsers.append(f"{name}: {sign}")
    assert own_parsers == []


def test_search_files_take_every_spelling_the_trainer_takes(tmp_path):
    from fhn_automl.learning.architecture import parse_layers
    from fhn_automl.search.grid import layer_width
    from fhn_automl.search.space import SearchSpaceError, load_search_space

    path = tmp_path / "s.yaml"
    path.write_text("problem: problem_b_s\nkind: ddnn\nlayers:\n  choices: [SiLU-32, swish-16, tanh-8]\n"
                    "  depths: [1]\n")
    choices = load_search_space(path).studies[0].layers.choices
    assert choices == ("silu-32", "silu-16", "tanh-8")  # canonical, as the trainer names them
    assert [str(layer) for layer in parse_layers("SiLU-32,swish-16,tanh-8")] == list(choices)
    assert layer_width("swish-16") == 16
    path.write_text("problem: problem_b_s\nkind: ddnn\nlayers:\n  choices: [silu-32, relu6-x]\n  depths: [1]\n")
    with pytest.raises(SearchSpaceError, match=r"layers\.choices.*relu6-x"):
        load_search_space(path)


def test_mlflow_tag_names_have_one_home():
    """fhn_automl's MLflow tag names are constants of ``search.tracking_tags`` (issue 15 item 4): no other
    module spells one out (module names such as ``fhn_automl.post`` are not tags)."""
    import re

    modules = {name.split(".")[1] for name in MODULES if name.count(".") >= 1} | {"search", "post", "learning", "physics"}
    literals = []
    for name, path in MODULES.items():
        if name == "fhn_automl.search.tracking_tags":
            continue
        for match in re.finditer(r"""["']fhn_automl\.([a-z_]+)["']""", path.read_text()):
            if match.group(1) not in modules:
                literals.append(f"{name}: {match.group(0)}")
    assert literals == []
