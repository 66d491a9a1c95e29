"""Every woofhelpers module says where it is taught, and every public function is documented
and fully annotated. Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "woofhelpers"
MODULES = sorted(PACKAGE.glob("*.py"))
# A module docstring names the chapter or page that teaches the module, or says what uses it.
WHERE_WORDS = ("chapter", "taught", "intro", "used by")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _public_functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    ]


def _unannotated(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """What of ``function``'s signature lacks an annotation: parameter names, ``*args``,
    ``**kwargs``, and ``return``."""
    arguments = function.args
    missing = [
        a.arg
        for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
        if a.annotation is None and a.arg not in ("self", "cls")
    ]
    if arguments.vararg is not None and arguments.vararg.annotation is None:
        missing.append(f"*{arguments.vararg.arg}")
    if arguments.kwarg is not None and arguments.kwarg.annotation is None:
        missing.append(f"**{arguments.kwarg.arg}")
    if function.returns is None:
        missing.append("return")
    return missing


def test_modules_found():
    assert len(MODULES) > 10, f"expected the woofhelpers modules under {PACKAGE}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_docstring_says_where_it_is_taught(path: Path):
    docstring = ast.get_docstring(_tree(path))
    assert docstring, f"{path.name} has no module docstring"
    assert any(word in docstring.lower() for word in WHERE_WORDS), (
        f"{path.name}'s docstring names no chapter or page that teaches it (none of {WHERE_WORDS})"
    )


def test_public_functions_have_docstrings():
    offenders = [
        f"{path.name}:{function.name}"
        for path in MODULES
        for function in _public_functions(_tree(path))
        if not ast.get_docstring(function)
    ]
    assert not offenders, "public functions without a docstring: " + ", ".join(offenders)


def test_public_functions_are_fully_annotated():
    offenders = [
        f"{path.name}:{function.name} ({', '.join(missing)})"
        for path in MODULES
        for function in _public_functions(_tree(path))
        if (missing := _unannotated(function))
    ]
    assert not offenders, "public functions missing type hints: " + ", ".join(offenders)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_annotations_are_never_evaluated(path: Path):
    tree = _tree(path)
    future = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(a.name == "annotations" for a in node.names)
        for node in tree.body
    )
    assert future, f"{path.name} lacks `from __future__ import annotations`"
