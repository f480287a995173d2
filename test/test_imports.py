"""The import structure: no cycles, no upward imports (``docs/architecture.md`` draws the layers).

Read from the source with ``ast`` (nothing is imported): every ``import ser_robot...`` and
``from ser_robot... import``, at module level or inside a function (a lazy import is still a
dependency), except under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "ser_robot"

# Bottom to top. A package (or top-level module) of ser_robot may import from its own layer or a lower one.
LAYERS = [
    ("errors", "metrics", "config_io", "streams", "command_line"),  # ground floor: no ROS, no torch models
    ("data", "bag"),  # manifests, corpora, splits; MCAP reading and writing
    ("audio", "acoustics", "augment"),  # signals: PCM, channels, resampling, rooms, augmentation
    ("features", "sim"),  # eGEMAPS, log-Mel, VAD, streaming pipeline; the robot simulator
    ("config", "models", "adversarial"),  # node parameter specs (they validate audio/feature choices); networks; attacks
    ("train",),
    ("inference",),
    ("eval",),
    ("experiments", "ros"),
    ("cli", "__main__"),
]


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: pathlib.Path, module_level_only: bool) -> set[str]:
    """The ser_robot modules that ``path`` imports (``from M import name`` counts as ``M.name`` when
    that is a module)."""
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ser_robot")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "ser_robot":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            visit(child, top)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return {name for name in found if name in MODULES}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as a list of nodes (first repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = walk(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return []


def test_every_package_has_a_layer():
    layered = {name for layer in LAYERS for name in layer}
    packages = {_package(module) for module in MODULES} - {""}
    assert packages - layered == set(), "add the new package to LAYERS (and to docs/architecture.md)"
    assert layered - packages == set(), "LAYERS names a package that is gone"


def test_no_import_cycle_at_import_time():
    graph = {module: _imports(path, module_level_only=True) - {module} for module, path in MODULES.items()}
    assert _find_cycle(graph) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    level = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    package = _package(module)
    if not package:
        return
    upward = sorted(dep for dep in _imports(MODULES[module], module_level_only=False)
                    if _package(dep) and level[_package(dep)] > level[package])
    assert upward == [], f"{module} ({package}, layer {level[package]}) imports from a higher layer"


def test_packages_do_not_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph.setdefault(_package(module), set()).update(
            _package(dep) for dep in _imports(path, module_level_only=False) if _package(dep) != _package(module))
    assert _find_cycle(graph) == []


def test_the_checker_sees_a_cycle_and_a_lazy_import(tmp_path):
    """The checks can fail: a made-up cycle is found, and an import inside a function counts."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from ser_robot.cli import main\n")
    assert _imports(lazy, module_level_only=False) == {"ser_robot.cli"}
    assert _imports(lazy, module_level_only=True) == set()
