"""The folder tree is the architecture (docs/architecture.md): no upward import.

Each top-level part of the package may import only the parts listed for it
here. A new import across layers that is not listed fails this test: either
the code belongs in another layer, or the picture in docs/architecture.md
changes together with this table.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

PACKAGE: Final = Path(__file__).resolve().parents[1] / "p2pdm"

#: The light modules every layer may use.
SHARED: Final = frozenset({"errors", "limits", "hints", "homefiles", "__init__"})

#: Part -> the parts it may import (besides itself and SHARED).
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "core": frozenset(),
    "net": frozenset({"core"}),
    "store": frozenset({"core"}),
    "node": frozenset({"core", "store"}),
    "services": frozenset({"core", "net", "store", "node"}),
    "api": frozenset({"core", "store", "node"}),
    "client": frozenset(),
    "daemon": frozenset({"core", "net", "store", "node", "services", "api", "client"}),
    "sim": frozenset({"core", "net", "store", "node", "services", "daemon"}),
    "bench": frozenset({"core", "net", "store", "node", "services", "daemon", "api", "client"}),
    "examples": frozenset({"client", "daemon"}),
    "cli": frozenset(
        {"core", "net", "store", "node", "services", "daemon", "api", "client", "sim", "bench"}
    ),
    "__main__": frozenset({"cli"}),
}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_parts(path: Path) -> set[str]:
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = node.module.split(".")
            if names[0] != "p2pdm":
                continue
            if len(names) > 1:
                parts.add(names[1])
            else:  # from p2pdm import hints, __version__
                parts.update(alias.name for alias in node.names if alias.name != "__version__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "p2pdm" and len(names) > 1:
                    parts.add(names[1])
    return parts


def test_every_part_is_in_the_table() -> None:
    parts = {_part(path) for path in PACKAGE.rglob("*.py")}
    assert parts - SHARED <= set(ALLOWED), "a new top-level part: add it to ALLOWED and the docs"


def test_no_module_imports_above_its_layer() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        allowed = SHARED if part in SHARED else ALLOWED[part] | SHARED | {part}
        for imported in sorted(_imported_parts(path) - allowed):
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports p2pdm.{imported}")
    assert wrong == []


def test_the_shared_modules_import_only_each_other() -> None:
    for name in SHARED - {"__init__"}:
        path = PACKAGE / f"{name}.py"
        assert _imported_parts(path) <= SHARED, name
