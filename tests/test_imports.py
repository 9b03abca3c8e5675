"""The package's import structure: no import cycle, and no function-level import without a reason.

Read from the source (``ast``), not by importing: every module of ``fastmri_zoo``
(``pkgutil.walk_packages`` over the package folder) gives

- its module-level imports (class bodies, ``if`` / ``try`` blocks included; function
  bodies and ``if TYPE_CHECKING:`` blocks excluded), from which the module graph is built;
  a cycle in that graph fails the test, named module by module;
- its function-level imports of ``fastmri_zoo`` modules (absolute or relative). Each must
  say why it is lazy with a comment ``# lazy: <reason>`` on one of its lines or on the line
  just above it (e.g. ``# lazy: TensorFlow-free start-up of list/info``). An import made
  lazy only to dodge a cycle has no such reason: make the graph acyclic instead.

Edges follow what Python executes: ``from pkg.a import b`` runs ``pkg/__init__`` (unless
``pkg`` is a package the importing module sits in, which is already initialised), ``pkg.a``
and, when ``b`` is a submodule, ``pkg.a.b``. Importing a name (not a submodule) from a
package one sits in reads that package's ``__init__``, so it is an edge too.
"""

from __future__ import annotations

import ast
import pkgutil
from functools import lru_cache
from pathlib import Path

import fastmri_zoo

PACKAGE = "fastmri_zoo"
ROOT = Path(fastmri_zoo.__file__).resolve().parent
LAZY_MARKER = "# lazy:"


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """``{dotted name: source file}`` of the package and every module under it."""
    found = {PACKAGE: ROOT / "__init__.py"}

    def walk(folder: Path, prefix: str) -> None:
        # pkgutil.iter_modules per folder rather than walk_packages, which imports every subpackage
        for info in pkgutil.iter_modules([str(folder)]):
            name = f"{prefix}.{info.name}"
            if info.ispkg:
                found[name] = folder / info.name / "__init__.py"
                walk(folder / info.name, name)
            else:
                found[name] = folder / f"{info.name}.py"

    walk(ROOT, PACKAGE)
    return found


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module named by a ``from ... import`` in ``module``."""
    if not node.level:
        return node.module or ""
    package = module if is_package(module) else module.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The fastmri_zoo modules whose code runs (or is read) because ``module`` executes ``node``."""
    names = modules()
    ours = lambda name: name == PACKAGE or name.startswith(PACKAGE + ".")  # noqa: E731
    own_packages = set(_ancestors(module)) | ({module} if is_package(module) else set())
    found: set[str] = set()

    def add(name: str, names_taken: bool) -> None:
        # name: a module that is imported; names_taken: names (not submodules) are read from it
        for ancestor in _ancestors(name):
            if ancestor not in own_packages:
                found.add(ancestor)
        if name not in own_packages or names_taken:
            found.add(name)

    if isinstance(node, ast.Import):
        for alias in node.names:
            if ours(alias.name) and alias.name in names:
                add(alias.name, names_taken=False)
        return found - {module}
    base = _absolute(module, node)
    if not ours(base) or base not in names:
        return set()
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in names]
    attributes = [alias.name for alias in node.names if f"{base}.{alias.name}" not in names]
    add(base, names_taken=bool(attributes))
    for submodule in submodules:
        add(submodule, names_taken=False)
    return found - {module}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, in_function: bool, found: list) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append((child, in_function))
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            _walk(child, True, found)
        elif isinstance(child, ast.If) and _is_type_checking(child) and not in_function:
            for other in child.orelse:  # the body never runs
                _walk(ast.Module(body=[other], type_ignores=[]), in_function, found)
        else:
            _walk(child, in_function, found)


@lru_cache(maxsize=None)
def imports(module: str) -> tuple[tuple[ast.AST, bool], ...]:
    """``(import node, inside a function)`` of every import statement of ``module``."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"), filename=str(modules()[module]))
    found: list = []
    _walk(tree, False, found)
    return tuple(found)


def import_graph() -> dict[str, set[str]]:
    """Module -> the fastmri_zoo modules its module-level imports run."""
    graph = {name: set() for name in modules()}
    for name in modules():
        for node, in_function in imports(name):
            if not in_function:
                graph[name] |= targets(name, node)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), as a path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, set(component)) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor in sorted(graph[node] & component):
            if successor == start:
                return paths[node] + [start]
            if successor not in paths:
                paths[successor] = paths[node] + [successor]
                queue.append(successor)
    return sorted(component)


def unexplained_lazy_imports() -> list[str]:
    """``path:line: statement`` of each function-level import of a fastmri_zoo module without a ``# lazy:`` reason."""
    problems = []
    for name, path in sorted(modules().items()):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, in_function in imports(name):
            if not in_function or not targets(name, node):
                continue
            statement = lines[node.lineno - 1 : node.end_lineno]
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if any(LAZY_MARKER in line for line in statement) or above.startswith(LAZY_MARKER):
                continue
            problems.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {statement[0].strip()}")
    return problems


# ---------------------------------------------------------------------------- the tests


def test_every_module_is_walked():
    names = set(modules())
    assert {"fastmri_zoo", "fastmri_zoo.registry", "fastmri_zoo.presets", "fastmri_zoo.models.base",
            "fastmri_zoo.legacy.checkpoints", "fastmri_zoo.physics.nufft"} <= names
    assert all(path.is_file() for path in modules().values())


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles (module-level imports):\n" + "\n".join(" -> ".join(c) for c in found)


def test_function_level_imports_say_why_they_are_lazy():
    problems = unexplained_lazy_imports()
    assert not problems, (
        f"function-level imports of fastmri_zoo modules without a '{LAZY_MARKER} <reason>' comment "
        "(a lazy import is for start-up speed, never to dodge a cycle):\n" + "\n".join(problems)
    )


# ---------------------------------------------------------------------------- the checker checks itself


def _graph_of(tmp_path, files: dict[str, str]) -> tuple[dict[str, set[str]], list[str]]:
    """Run the checker on a throwaway package ``fastmri_zoo`` made of ``files``."""
    global ROOT
    package = tmp_path / PACKAGE
    for relative, text in files.items():
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    saved = ROOT
    ROOT = package
    for cached in (modules, imports):
        cached.cache_clear()
    try:
        return import_graph(), unexplained_lazy_imports()
    finally:
        ROOT = saved
        for cached in (modules, imports):
            cached.cache_clear()


def test_checker_finds_cycles_and_unexplained_lazy_imports(tmp_path):
    graph, lazy = _graph_of(tmp_path, {
        "__init__.py": "from .a import f\n",
        "a.py": "from .b import g\n\ndef f():\n    from . import c\n",
        "b.py": "import typing\nif typing.TYPE_CHECKING:\n    from .a import f\n\ndef g():\n"
                "    from .a import f  # lazy: imports TensorFlow\n",
        "c.py": "from .sub.d import h\n",
        "sub/__init__.py": "from . import d\n",
        "sub/d.py": "from .. import c\n\nclass K:\n    from ..a import f\n",
        "e.py": "from . import __version__\n",
    })
    assert graph["fastmri_zoo.a"] == {"fastmri_zoo.b"}
    assert graph["fastmri_zoo.b"] == set()  # TYPE_CHECKING and function bodies do not count
    assert graph["fastmri_zoo.c"] == {"fastmri_zoo.sub", "fastmri_zoo.sub.d"}
    assert graph["fastmri_zoo.sub"] == {"fastmri_zoo.sub.d"}  # its own submodule, not itself
    assert graph["fastmri_zoo.sub.d"] == {"fastmri_zoo.c", "fastmri_zoo.a"}  # class bodies run at import
    assert graph["fastmri_zoo.e"] == {"fastmri_zoo"}  # a name read from the package's __init__
    found = cycles(graph)
    assert found == [["fastmri_zoo.c", "fastmri_zoo.sub.d", "fastmri_zoo.c"]]  # a shortest cycle, named
    assert lazy == ["fastmri_zoo/a.py:4: from . import c"]
