"""Layering rules of DESIGN.md that a careless import would break.

The layers, from the top: the handlers in ``functions/`` call ``app`` (each function's
composition root and work), ``api`` and ``web``; those call the use cases (``logic``,
``sync``, ``mail``), which see providers only through ``ports``; the adapters in
``providers`` implement the ports and are named by the composition root alone; the DAL
(``dal``, ``models``) imports neither providers nor mail; ``domain`` imports nothing that
does I/O. :data:`ALLOWED` is the whole table: an import of a package not listed for the
importing package fails, and the table itself must have no cycle.

Every import counts, at module level or inside a function (a deferred import is still a
dependency); only imports under ``if TYPE_CHECKING:`` (annotations) do not.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = sorted([*ROOT.joinpath("functions").rglob("*.py"), *ROOT.joinpath("layers").rglob("*.py")])
PACKAGE = ROOT / "layers" / "crmsync"

#: What each top-level part of ``crmsync`` may import from the others.
ALLOWED: dict[str, frozenset[str]] = {
    "domain": frozenset(),
    "errors": frozenset(),
    "config": frozenset(),
    "webhook_config": frozenset(),
    "guard": frozenset(),
    "observability": frozenset({"redaction", "metrics"}),
    "redaction": frozenset(),
    "light_logging": frozenset({"redaction"}),
    "metrics": frozenset(),
    "batch": frozenset(),
    "ports": frozenset({"domain", "errors"}),
    "providers": frozenset({"ports", "domain", "errors", "config"}),
    "security": frozenset({"errors"}),
    "messaging": frozenset({"security", "domain", "errors"}),
    "models": frozenset({"domain", "security"}),
    "dal": frozenset({"models", "domain", "errors", "guard", "security"}),
    "mail": frozenset({"dal", "domain", "errors", "messaging", "security", "config"}),
    # Gmail sync (F8) logs mail as BCC logging does: the mail package's parser and logbook.
    "sync": frozenset({"ports", "mail", "dal", "domain", "errors", "guard", "messaging", "security"}),
    "logic": frozenset({"ports", "mail", "dal", "domain", "errors", "guard", "messaging", "security"}),
    "api": frozenset({"app", "logic", "mail", "dal", "domain", "errors", "guard", "config", "observability"}),
    "web": frozenset({"api"}),
    "app": frozenset(
        {
            "ports",
            "providers",
            "logic",
            "sync",
            "mail",
            "dal",
            "models",
            "messaging",
            "security",
            "domain",
            "errors",
            "guard",
            "config",
            "webhook_config",
            "observability",
            "metrics",
            "batch",
        }
    ),
}
#: What a handler in ``functions/`` may import of ``crmsync``.
HANDLERS_MAY_IMPORT = frozenset({"app", "api", "web", "observability", "light_logging", "metrics", "batch"})
#: Standard-library modules that do I/O: ``domain`` and ``ports`` import none of them.
IO_STDLIB = frozenset({"socket", "ssl", "http", "urllib", "subprocess", "sqlite3", "smtplib", "asyncio", "shutil"})


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for statement in node.body for n in ast.walk(statement))
    return skipped


def imported_modules(path: Path, *, with_annotations: bool = True) -> set[str]:
    """Every module the file imports (with ``with_annotations=False``, not those imported
    only for type checking)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = set() if with_annotations else _type_checking_nodes(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def part_of(path: Path, package: Path) -> str:
    """The top-level part of the package a file belongs to (``dal``, ``errors``...)."""
    first = path.relative_to(package).parts[0]
    return first.removesuffix(".py")


def layer_violations(package: Path, allowed: dict[str, frozenset[str]]) -> list[str]:
    """``file imports crmsync.x`` for each import the table does not allow; and, for
    ``domain`` and ``ports``, each import of anything but the standard library (without
    its I/O modules) and their allowed parts."""
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        if path.parent == package and path.name == "__init__.py":
            continue
        part = part_of(path, package)
        for module in sorted(imported_modules(path, with_annotations=False)):
            top = module.split(".")[0]
            if top == "crmsync":
                target = module.split(".")[1] if "." in module else ""
                if target and target != part and target not in allowed.get(part, frozenset()):
                    found.append(f"{path.relative_to(package.parent)} imports {module}")
            elif part in ("domain", "ports") and (top not in sys.stdlib_module_names or top in IO_STDLIB):
                found.append(f"{path.relative_to(package.parent)} imports {module} (not plain data)")
    return found


def cycle_in(graph: dict[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def package_graph(package: Path) -> dict[str, set[str]]:
    """Which parts of the package import which (at run time, not for annotations)."""
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        if path.parent == package and path.name == "__init__.py":
            continue
        part = part_of(path, package)
        for module in imported_modules(path, with_annotations=False):
            if module.startswith("crmsync.") and (target := module.split(".")[1]) != part:
                graph.setdefault(part, set()).add(target)
    return graph


def test_every_part_of_the_package_is_in_the_layer_table() -> None:
    parts = {part_of(p, PACKAGE) for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    assert parts <= set(ALLOWED), f"add {sorted(parts - set(ALLOWED))} to ALLOWED"


def test_the_layers_are_respected() -> None:
    assert layer_violations(PACKAGE, ALLOWED) == []


def test_the_layer_table_has_no_cycle() -> None:
    assert cycle_in(ALLOWED) is None


def test_no_two_parts_of_the_package_import_each_other() -> None:
    assert cycle_in(package_graph(PACKAGE)) is None


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("functions").rglob("*.py")), ids=lambda p: p.parent.name)
def test_handlers_reach_the_package_through_its_top_layer(path: Path) -> None:
    parts = {m.split(".")[1] for m in imported_modules(path) if m.startswith("crmsync.")}
    assert parts <= HANDLERS_MAY_IMPORT


def test_only_the_composition_root_names_an_adapter() -> None:
    naming = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if part_of(p, PACKAGE) != "providers"
        and any(m.startswith("crmsync.providers") for m in imported_modules(p, with_annotations=False))
    )
    assert naming == ["app/google_webhook.py", "app/graph_webhook.py", "app/wiring.py"]


# ---------------------------------------------------------------- the checks can fail


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "crmsync"
    for name, source in files.items():
        target = package / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    return package


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("dal/calendars.py", "from crmsync.providers.google.calendar import GoogleCalendar\n"),
        ("dal/contacts.py", "def f():\n    from crmsync.mail.inbound import InboundMail\n"),
        ("logic/appointments.py", "import crmsync.providers.google.api\n"),
        ("sync/calendar_sync.py", "from crmsync.logic.appointments import Appointments\n"),
        ("domain/__init__.py", "import boto3\n"),
        ("domain/__init__.py", "from crmsync.models.keys import check_id\n"),
        ("ports/calendar.py", "from urllib.request import urlopen\n"),
        ("ports/calendar.py", "from crmsync.dal.mirror import MirrorStore\n"),
    ],
)
def test_a_forbidden_import_is_found(tmp_path: Path, name: str, source: str) -> None:
    package = _tree(tmp_path, {name: source, "errors.py": "", "domain/ids.py": "import re\n"})
    assert layer_violations(package, ALLOWED) != []


def test_an_import_for_annotations_only_is_not_a_dependency(tmp_path: Path) -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crmsync.providers.google import api\n"
    assert layer_violations(_tree(tmp_path, {"logic/x.py": source}), ALLOWED) == []


def test_a_cycle_between_two_parts_is_found(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {"logic/a.py": "from crmsync.sync import b\n", "sync/b.py": "def f():\n    from crmsync.logic import a\n"},
    )
    assert cycle_in(package_graph(package)) == ["logic", "sync", "logic"]


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
    if path.name in ("config.py", "webhook_config.py"):  # the two readers of the environment
        return
    if path.name in ("light_logging.py", "metrics.py"):  # powertools' own variables, as powertools reads them
        return
    source = path.read_text()
    assert "os.environ" not in source
    assert "getenv(" not in source


def test_the_domain_package_finds_every_object_it_holds() -> None:
    """``crmsync.domain`` loads its objects lazily from a list of names: a public name added to
    ``crmsync.domain.objects`` and not to the list would not be found as ``crmsync.domain.X``."""
    import crmsync.domain as domain

    tree = ast.parse((PACKAGE / "domain" / "objects.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)} | {
        t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    assert {name for name in defined if not name.startswith("_") and not hasattr(domain, name)} == set()
