"""The package's import graph: no cycles between Tailor's packages or between its modules,
and serving never reaches training.

Reads the source files under src/tailor (their `import` statements, not the running
interpreter), so a cycle is found even when a lazy import keeps it from failing today; one
test imports `tailor.serving` in a fresh interpreter and looks at what got loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Ids of the nodes under `if TYPE_CHECKING:` (imports for annotations only)."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for inner in ast.walk(node))
    return hidden


def _imports(tree: ast.Module, modules: set[str], top_level_only: bool) -> set[str]:
    """Tailor modules a file imports; `from pkg import submodule` counts as the submodule."""
    hidden = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in tree.body if top_level_only else ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tailor"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.startswith("tailor"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {node.module})
    return found


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """Each tailor module and the tailor modules it imports."""
    paths = {_module_name(path): path for path in (SOURCE / "tailor").rglob("*.py")}
    modules = set(paths)
    return {name: _imports(ast.parse(path.read_text()), modules, top_level_only) & modules
            for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected set of two or more nodes (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_cycle_between_tailor_packages_counting_lazy_imports() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph(top_level_only=False).items():
        packages.setdefault(_package(module), set()).update(
            _package(target) for target in targets if _package(target) != _package(module))
    assert cycles(packages) == []


def test_no_cycle_between_modules_at_import_time() -> None:
    assert cycles(import_graph(top_level_only=True)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


ABOVE_EVENTS = ("tailor.features", "tailor.serving", "tailor.training", "tailor.models",
                "tailor.monitoring", "tailor.experiments")


def _reaches(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def test_the_event_layer_imports_no_layer_above_it_counting_lazy_imports() -> None:
    """Events are the bottom of the data path: whoever needs to hear of committed events
    (session features) hands the collector a commit hook instead of being imported."""
    reaching_up = {module: sorted(target for target in targets if _reaches(target, ABOVE_EVENTS))
                   for module, targets in import_graph(top_level_only=False).items()
                   if _reaches(module, ("tailor.events",))}
    assert {module: targets for module, targets in reaching_up.items() if targets} == {}


def test_the_layer_check_sees_a_lazy_import() -> None:
    tree = ast.parse("def f():\n    from tailor.features.realtime import background_pusher\n")
    found = _imports(tree, {"tailor.features.realtime"}, top_level_only=False)
    assert found == {"tailor.features.realtime"}
    assert _reaches("tailor.features.realtime", ABOVE_EVENTS)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through other Tailor modules."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_serving_module_reaches_training_counting_lazy_imports() -> None:
    graph = import_graph(top_level_only=False)
    reaching = {module: sorted(target for target in _reachable(graph, module)
                               if _package(target) == "tailor.training")
                for module in graph if _package(module) == "tailor.serving"}
    assert reaching and {module: found for module, found in reaching.items() if found} == {}


def test_the_demo_shop_sits_above_serving_and_never_reaches_training() -> None:
    """`tailor.shop` (the demo shop the service mounts) uses serving and events; nothing
    below it imports it, and it never reaches training."""
    graph = import_graph(top_level_only=False)
    shop = {module: sorted(target for target in _reachable(graph, module)
                           if _package(target) == "tailor.training")
            for module in graph if _package(module) == "tailor.shop"}
    assert shop and {module: found for module, found in shop.items() if found} == {}
    below = {module for module in graph
             if _reaches(module, ("tailor.serving", "tailor.events", "tailor.features"))
             and any(_package(target) == "tailor.shop" for target in graph[module])}
    assert below == set()


def test_importing_serving_loads_no_training_library() -> None:
    """In a fresh interpreter (the environment, and so PYTHONPATH, is inherited)."""
    code = ("import sys, tailor.serving, tailor.serving.pipeline, tailor.training.pyfunc; "
            "print([name for name in ('optuna', 'matplotlib') if name in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
