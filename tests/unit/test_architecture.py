"""Layering rules of DESIGN.md that a careless import would break."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = sorted([*ROOT.joinpath("functions").rglob("*.py"), *ROOT.joinpath("layers").rglob("*.py")])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_the_local_stack(path: Path) -> None:
    assert not {m for m in imported_modules(path) if m.split(".")[0] in {"devstack", "tests", "moto"}}


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("functions").rglob("app.py")), ids=lambda p: p.parent.name)
def test_handlers_are_thin(path: Path) -> None:
    """A handler module defines one function, the handler; logic lives in the layer."""
    tree = ast.parse(path.read_text())
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    assert functions == ["lambda_handler"]
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)]


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_logic_never_reads_the_environment(path: Path) -> None:
    if path.name == "config.py":
        return
    source = path.read_text()
    assert "os.environ" not in source
    assert "getenv(" not in source
