"""The Python version is set once, in template.yaml's Globals Function Runtime.

The Makefiles derive it (the root one from the template, the layer's from the interpreter the
root one hands it); the copies that cannot be derived must equal it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from devstack.template import load_template

ROOT = Path(__file__).resolve().parents[2]

#: "python3.11", "py311", "cp311", or a bare "3.11" (not part of a longer dotted version).
VERSION_LITERAL = re.compile(r"(?<![\w.])(?:python|py|cp)?3\.?1\d(?![\w.])|(?<![\w.])3\.\d{1,2}(?![\w.])")

#: Files that must not carry a Python version of their own.
DERIVED = ("Makefile", "layers/Makefile", "pyproject.toml", "devstack/template.py")


def template_version() -> str:
    runtime = load_template(ROOT / "template.yaml").data["Globals"]["Function"]["Runtime"]
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    assert match, f"Globals Function Runtime {runtime!r} is not pythonX.Y"
    return match.group(1)


def as_version(literal: str) -> str:
    digits = re.sub(r"^(?:python|py|cp)", "", literal).replace(".", "")
    return f"{digits[0]}.{digits[1:]}"


def test_the_version_literal_pattern_finds_every_spelling() -> None:
    text = 'PYTHON ?= python3.11 --python-version 3.12 target-version = "py313" cp310 requires ">=3.9"'
    found = [as_version(m) for m in VERSION_LITERAL.findall(text)]
    assert found == ["3.11", "3.12", "3.13", "3.10", "3.9"]
    assert VERSION_LITERAL.findall("aws-sam-cli==1.3.11 boto3==1.44.5 version 0.3.8") == []


@pytest.mark.parametrize("path", DERIVED)
def test_no_other_python_version_is_written_down(path: str) -> None:
    version = template_version()
    for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        for literal in VERSION_LITERAL.findall(line):
            assert as_version(literal) == version, (
                f"{path}:{number} names Python {as_version(literal)}, the template's Runtime is {version}: "
                "derive it (see docs/DEPENDENCIES.md) instead of writing it"
            )


def test_requires_python_is_the_runtime_version_with_no_cap() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == f">={template_version()}"
    assert "target-version" not in project["tool"]["ruff"], "ruff infers it from requires-python"
    assert "python_version" not in project["tool"]["mypy"], "mypy checks for the venv's interpreter"


def test_every_function_and_layer_uses_the_globals_runtime() -> None:
    template = load_template(ROOT / "template.yaml").data
    runtime = f"python{template_version()}"
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function":
            assert properties.get("Runtime", runtime) == runtime, f"{logical_id} overrides the Globals Runtime"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            # SAM's Globals do not reach layers: this copy is held equal here.
            assert properties["CompatibleRuntimes"] == [runtime], f"{logical_id}.CompatibleRuntimes"
