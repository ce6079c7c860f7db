"""The package's import graph has no cycle, and every module imports alone in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lenet_fn"
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__main__")


def _imports(module: str) -> set[str]:
    """The lenet_fn modules that ``module`` imports anywhere, inside functions too (a lazy import
    dodges a cycle, it does not remove it). ``from lenet_fn import x`` counts as module ``x`` when
    ``x`` is one, else as the package (``__init__``); relative imports are resolved likewise."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = ".".join(["lenet_fn", *([node.module] if node.module else [])]) if node.level else node.module or ""
            parts = source.split(".")
            if parts[0] != "lenet_fn":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(alias.name if alias.name in MODULES else "__init__" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("lenet_fn."))
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = {module: _imports(module) - {module} for module in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, set())):
            if state.get(imported) == "open":
                pytest.fail(f"import cycle: {' -> '.join([*path, module, imported])}")
            if imported not in state:
                visit(imported, [*path, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_every_module_imports_alone_in_any_order() -> None:
    order = [f"lenet_fn.{module}" for module in MODULES if module != "__init__"]
    script = "import importlib, random, sys\nnames = sys.argv[1:]\nrandom.Random(0).shuffle(names)\nfor name in names: importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", script, *order], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for name in order:  # each first, alone: a module that needs another imported before it fails here
        alone = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, check=False)
        assert alone.returncode == 0, f"{name}: {alone.stderr.strip().splitlines()[-1]}"
