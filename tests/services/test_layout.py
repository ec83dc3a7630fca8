"""The services' import graph: no module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import p2pdm.services

ROOT = Path(p2pdm.services.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Each services module and the services modules it imports (TYPE_CHECKING too)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = ("p2pdm", "services", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("p2pdm.services")
        }
    return graph


def test_no_import_cycles_between_services_modules() -> None:
    graph = _imports()
    assert {"p2pdm.services.dm.sender", "p2pdm.services.mailbox_client"} <= graph.keys()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert not any(
        m.startswith("p2pdm.services.dm") for m in graph["p2pdm.services.mailbox_client"]
    )
