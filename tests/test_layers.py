"""The layer contract, checked on the source: imports only go downward and no modules import each
other in a circle (docs/ARCHITECTURE.md).

Every import counts, also those inside functions (a lazy import is still a dependency) and those
under ``TYPE_CHECKING``.

And the import rule (issue 15): a project module is imported inside a function only where that keeps a
slow or optional package (``HEAVY_PACKAGES``) out of the importing module, or breaks a cycle. What a
module loads at import time is found by walking module-level imports, never by importing.
"""

from __future__ import annotations

import ast

import pytest
from pathlib import Path

import fhn_automl
import fhn_automl.learning  # torch-free: its re-exports are lazy

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


#: What a lazily re-exporting package (PEP 562) hands out: ``from fhn_automl.learning import train`` is an
#: import of ``fhn_automl.learning.trainer``.
LAZY_EXPORTS = {"fhn_automl.learning": {name: f"fhn_automl.learning.{module}"
                                        for name, module in fhn_automl.learning._EXPORTS.items()}}


def import_targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute names one import statement of module ``name`` loads (a project module, a package, or
    a name in a module: see ``project_module``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    # `from package import submodule` depends on the submodule, otherwise on `base`
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES
            else LAZY_EXPORTS.get(base, {}).get(alias.name, base) for alias in node.names]


def project_module(target: str) -> str | None:
    """The fhn_automl module (or package) an import target is in; None outside the project."""
    if target != "fhn_automl" and not target.startswith("fhn_automl."):
        return None
    while target not in MODULES:  # `import fhn_automl.x.y` of a name in a module
        target = target.rpartition(".")[0]
    return target


def imported_modules(name: str, path: Path) -> set[str]:
    """The fhn_automl modules (or packages) that ``name`` imports anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(filter(None, map(project_module, import_targets(name, path, node))))
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


#: Packages slow to import (each 0.4 s or more here, numpy 0.15 s) or optional: a function-local import
#: of a project module is justified by loading one of these late (docs/ARCHITECTURE.md). numba, scipy,
#: pandas and sympy are dependencies, but only some paths need them; myokit is the ``models`` extra.
HEAVY_PACKAGES = frozenset({"torch", "ray", "mlflow", "optuna", "cupy", "torch_tensorrt", "statsmodels",
                            "matplotlib", "numba", "scipy", "pandas", "sympy", "myokit"})


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.Module) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.Import | ast.ImportFrom]]:
    """A module's import statements that run, as (at import time, inside functions); those under
    ``if TYPE_CHECKING:`` never run."""
    at_import: list[ast.Import | ast.ImportFrom] = []
    in_functions: list[ast.Import | ast.ImportFrom] = []

    def visit(nodes: list[ast.AST], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, in_function)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                (in_functions if in_function else at_import).append(node)
            visit(list(ast.iter_child_nodes(node)),
                  in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree.body, False)
    return at_import, in_functions


TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _loads_at_import(name: str) -> tuple[set[str], set[str]]:
    """(project modules, other top-level packages) that executing module ``name`` imports."""
    project: set[str] = set()
    other: set[str] = set()
    for node in runtime_imports(TREES[name])[0]:
        for target in import_targets(name, MODULES[name], node):
            module = project_module(target)
            if module is None:
                other.add(target.partition(".")[0])
            else:
                project.add(module)
    return project, other


def with_parents(name: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


AT_IMPORT = {name: _loads_at_import(name) for name in MODULES}


def heavy_at_import(name: str) -> frozenset[str]:
    """The heavy packages ``import name`` loads, found by walking module-level imports (not by importing)."""
    seen: set[str] = set()
    todo = with_parents(name)
    heavy: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen or module not in MODULES:
            continue
        seen.add(module)
        project, other = AT_IMPORT[module]
        heavy |= other & HEAVY_PACKAGES
        for target in project:
            todo.extend(with_parents(target))
    return frozenset(heavy)


def test_the_import_cost_walk_sees_what_the_docs_promise():
    """Guards the walk below, and docs/ARCHITECTURE.md's promises: the physics and learning layers load
    no ray, mlflow or optuna; the search-file validation loads no torch."""
    assert "torch" in heavy_at_import("fhn_automl.learning.trainer")
    assert "mlflow" in heavy_at_import("fhn_automl.search.mlflow_surrogate_model")
    for name in ("fhn_automl.learning", "fhn_automl.learning.architecture", "fhn_automl.search.space"):
        assert "torch" not in heavy_at_import(name), name
    for name in MODULES:
        if layer_of(name) in (0, 1):
            assert not heavy_at_import(name) & {"ray", "mlflow", "optuna"}, name
    # the commands parse their arguments (--help, a bad value) before loading anything heavy
    for name in ("fhn_automl.pipeline", "fhn_automl.search.cli", "fhn_automl.train", "fhn_automl.bench",
                 "fhn_automl.pull", "fhn_automl.serve", "fhn_automl.reproduce"):
        assert not heavy_at_import(name), (name, heavy_at_import(name))


def hidden_imports(name: str, source: str) -> list[str]:
    """``line module`` for each function-local import in ``source`` (as module ``name``) of a project module
    that loads no heavy package ``name`` does not load already, and has no ``# cycle: ...`` comment on or
    above it (importing it at the top would close an import cycle)."""
    lines = source.splitlines()
    own = heavy_at_import(name)
    hidden = []
    for node in runtime_imports(ast.parse(source))[1]:
        if any("# cycle:" in line for line in lines[max(node.lineno - 2, 0):node.end_lineno]):
            continue
        modules = {project_module(target) for target in import_targets(name, MODULES[name], node)} - {None}
        hidden.extend(f"{node.lineno} {module}" for module in sorted(modules) if not heavy_at_import(module) - own)
    return hidden


def test_the_hidden_import_check_tells_them_apart():
    """Guards the check below on made-up sources: what it must flag and what it must let be."""
    name = "fhn_automl.search.grid"  # loads nothing heavy
    light = "def f():\n    from fhn_automl.physics.problems import get_problem\n"
    assert hidden_imports(name, light) == ["2 fhn_automl.physics.problems"]
    assert hidden_imports(name, "def f():\n    # cycle: problems imports grid\n" + light[9:]) == []
    assert hidden_imports(name, "class C:\n    def f(self):\n        import fhn_automl.search.tracking\n") == \
        ["3 fhn_automl.search.tracking"]
    assert hidden_imports(name, "def f():\n    from fhn_automl.learning import train\n") == []  # the trainer: torch
    assert hidden_imports(name, "def f():\n    from fhn_automl.search.monitor import SearchMonitor\n") == []  # ray
    # a module that loads torch already gains nothing by loading another torch module late
    assert hidden_imports("fhn_automl.learning.losses", "def f():\n    from fhn_automl.learning import mlp\n") == \
        ["2 fhn_automl.learning.mlp"]
    assert hidden_imports(name, "from fhn_automl.physics.problems import get_problem\n") == []  # at the top


def test_function_local_imports_of_the_project_avoid_something_heavy():
    """A project module is imported inside a function only where importing it at the top would load a
    heavy package the importing module does not load already, or would close an import cycle (a
    ``# cycle: ...`` comment on or above the import says so). Everything else is imported at the top,
    where a reader sees the module's dependencies."""
    hidden = [f"{path.relative_to(PACKAGE_ROOT.parent)}:{line}" for name, path in MODULES.items()
              for line in hidden_imports(name, path.read_text())]
    assert not hidden, "function-local imports that avoid nothing heavy (move them to the top):\n" + \
        "\n".join(hidden)


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


#: The edges where a problem's name (or key) becomes a ``Problem`` (issue 15 item 2); every module below
#: them takes the object and never calls ``get_problem`` again.
PROBLEM_EDGES = frozenset({
    "fhn_automl.physics.problems",    # defines get_problem; code_variant checks a name
    "fhn_automl.physics.datasets",    # build_dataset / ensure_dataset: documented entry points that take a name
    "fhn_automl.learning.config",     # TrainConfig.resolved_problem: a train config arrives as a mapping (Ray worker)
    "fhn_automl.learning.model_io",   # a model folder's spec.json names its problem
    "fhn_automl.search.space",        # a search file and --problem are parsed; TrialSpec.resolved_problem
    "fhn_automl.post.runs",           # a trial's MLflow params name its problem
    "fhn_automl.post.registry",       # a registered model's problem (MLflow), one no longer known tolerated
    "fhn_automl.post.analysis",       # the analysis tables carry a problem key per row, as MLflow holds it
    "fhn_automl.post.stage",          # once per problem of the trial table (keys from MLflow)
    "fhn_automl.train",               # command line
    "fhn_automl.bench",               # command line, and --model-dir's spec.json
    "fhn_automl.reproduce",           # command line, and the problem keys of the runs it measures
})


def test_problem_names_are_resolved_only_at_the_edges():
    """``get_problem`` is called only in ``PROBLEM_EDGES``; nothing else turns a name into a ``Problem``
    (nor coerces ``problem if isinstance(problem, str)``): the functions below take the object."""
    calls = []
    for name, tree in TREES.items():
        if name in PROBLEM_EDGES:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                coerces = (called == "isinstance" and len(node.args) == 2 and isinstance(node.args[0], ast.Name)
                           and node.args[0].id == "problem" and ast.unparse(node.args[1]) == "str")
                if called == "get_problem" or coerces:
                    calls.append(f"{MODULES[name].relative_to(PACKAGE_ROOT.parent)}:{node.lineno}: {ast.unparse(node)}")
    assert not calls, ("a problem resolved below the edges (pass the Problem down, or add the module to "
                       "PROBLEM_EDGES with its reason):\n" + "\n".join(calls))
    assert PROBLEM_EDGES <= set(MODULES)  # no stale entry
