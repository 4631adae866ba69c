"""Layering is law (DESIGN §1): runtime knows neither actors nor orch; actors use only messages of others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_runtime_imports_neither_actors_nor_orch() -> None:
    for path in (ROOT / "runtime").rglob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in {"actors", "orch"}, f"{path}: imports {name}"


def test_actors_never_import_orch_or_another_actors_internals() -> None:
    shared = {"storage"}
    for path in (ROOT / "actors").rglob("*.py"):
        own = path.relative_to(ROOT / "actors").parts[0]
        for name in _imports(path):
            parts = name.split(".")
            assert parts[0] != "orch", f"{path}: imports {name}"
            if parts[0] == "actors" and len(parts) > 1 and parts[1] not in shared | {own}:
                assert parts[2:3] == ["messages"], f"{path}: imports {name} (only messages modules may cross)"
