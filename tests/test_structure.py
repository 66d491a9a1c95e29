"""The package's structure: layers, and imports that only go down.

Every module of ``woofhelpers`` sits in one layer of ``LAYERS``, listed bottom first: plain
facts (files, labels, the original runs' logs), then settings, data, recipes, the model, the
parts of the engine, the engine that runs trials, the helpers each chapter calls, publishing,
and at the top the entry points (``__init__``, ``__main__``) that nothing imports. A module
may import modules of its own layer or lower, never higher, and no imports may form a cycle.
A new module must be placed in ``LAYERS`` on purpose. The modules are parsed, never imported.
``python tests/test_structure.py`` prints the layers with each module's imports.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE = Path(__file__).resolve().parent.parent / "woofhelpers"
LAYERS = (  # bottom first
    ("facts", ("io", "labels", "original", "catalog")),
    ("settings", ("profiles", "hardware")),
    ("data", ("synthetic", "data", "splits", "pipeline")),
    ("recipes", ("recipes", "runtime")),
    ("model", ("model", "evaluate", "gradcam")),
    ("engine parts", ("features", "checkpoint", "results")),
    ("engine", ("trials",)),
    ("chapters' helpers", ("plots", "ablations", "baseline", "resnet", "predict", "export", "session")),
    ("publishing", ("published",)),
    ("entry points", ("__init__", "__main__")),
)
ENTRY_POINTS = ("__init__", "__main__")


class Edge(NamedTuple):
    module: str
    line: int
    target: str


def read_sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(PACKAGE.glob("*.py"))}  # module name → source


def edges(sources: dict[str, str]) -> list[Edge]:
    """Every import of one woofhelpers module by another, wherever it stands (module level,
    a function, ``if TYPE_CHECKING:``). A name imported from the package itself that is not
    a module (``from woofhelpers import setup``, ``import woofhelpers``) imports ``__init__``."""
    found = []
    for module, source in sources.items():
        for node in ast.walk(ast.parse(source, f"woofhelpers/{module}.py")):
            targets = []
            if isinstance(node, ast.Import):
                parts = [alias.name.split(".") + ["__init__"] for alias in node.names]
                targets = [p[1] for p in parts if p[0] == "woofhelpers"]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:
                    continue  # beyond the package
                name = ("woofhelpers" + (f".{node.module}" if node.module else "")) if node.level else node.module
                if name == "woofhelpers":
                    targets = [a.name if a.name in sources else "__init__" for a in node.names]
                elif name and name.startswith("woofhelpers."):
                    targets = [name.split(".")[1]]
            found += [Edge(module, node.lineno, t) for t in targets if t != module]
    return sorted(set(found), key=lambda e: (e.module, e.line, e.target))


def cycles(graph: list[Edge]) -> list[list[str]]:
    """The cycles a depth-first search meets (at least one when there is any), each from its smallest module."""
    following: dict[str, set[str]] = {}
    for edge in graph:
        following.setdefault(edge.module, set()).add(edge.target)
    done, path, found = set(), [], []

    def visit(module: str) -> None:
        path.append(module)
        for target in sorted(following.get(module, ())):
            if target in path:
                loop = path[path.index(target) :]
                loop = loop[loop.index(min(loop)) :] + loop[: loop.index(min(loop))]
                if loop + loop[:1] not in found:
                    found.append(loop + loop[:1])
            elif target not in done:
                visit(target)
        path.pop()
        done.add(module)

    for module in sorted(following):
        if module not in done:
            visit(module)
    return found


def problems(sources: dict[str, str], layers=LAYERS) -> list[str]:
    """What is wrong with the structure of ``sources`` (module name → source), as messages."""
    layer_of = {module: (i, name) for i, (name, modules) in enumerate(layers) for module in modules}
    found = [
        f"woofhelpers/{module}.py is in no layer: place it in LAYERS in tests/test_structure.py "
        "(a new module must be placed explicitly, as low as its imports allow)"
        for module in sources
        if module not in layer_of
    ]
    found += [
        f"LAYERS places {module}, but woofhelpers/{module}.py does not exist: remove it from LAYERS"
        for module in layer_of
        if module not in sources
    ]
    placed = [module for _, modules in layers for module in modules]
    found += [f"LAYERS places {m} more than once" for m in sorted({m for m in placed if placed.count(m) > 1})]
    graph = edges(sources)
    for edge in graph:
        if edge.target not in sources:
            found.append(f"woofhelpers/{edge.module}.py line {edge.line} imports {edge.target}, which does not exist")
        elif edge.module in layer_of and edge.target in layer_of and layer_of[edge.target] > layer_of[edge.module]:
            found.append(
                f"woofhelpers/{edge.module}.py line {edge.line} imports {edge.target} (layer "
                f"{layer_of[edge.target][1]!r}) from layer {layer_of[edge.module][1]!r}: imports must go down; "
                "move the code to the lower layer, or let the higher layer pass it in (an argument, a callback)"
            )
    found += ["import cycle: " + " → ".join(loop) for loop in cycles(graph)]
    return found


def test_the_package_keeps_its_layers_without_upward_imports_or_cycles():
    found = problems(read_sources())
    assert not found, "\n".join(found)


def test_the_entry_points_are_only_at_the_top():
    """Alone in the top layer, so that no module may import them."""
    assert set(LAYERS[-1][1]) == set(ENTRY_POINTS)
    assert not [m for _, modules in LAYERS[:-1] for m in modules if m in ENTRY_POINTS]


def test_every_form_of_import_is_seen():
    source = (
        "from woofhelpers import a, b\nfrom woofhelpers.c import X\nimport woofhelpers.d as dd\n"
        "def f():\n    from . import e\n    from .f import Y\n"
        "if TYPE_CHECKING:\n    from woofhelpers import setup\n    import woofhelpers\nfrom .. import outside\n"
    )
    sources = dict.fromkeys(["a", "b", "c", "d", "e", "f", "__init__"], "") | {"x": source}
    assert [(e.line, e.target) for e in edges(sources)] == [
        (1, "a"), (1, "b"), (2, "c"), (3, "d"), (5, "e"), (6, "f"), (8, "__init__"), (9, "__init__"),
    ]  # fmt: skip


def test_the_checker_reports_an_upward_import_a_cycle_and_a_module_in_no_layer():
    layers = (("facts", ("io",)), ("data", ("data", "splits")), ("entry points", ENTRY_POINTS))
    sources = {
        "__init__": "from woofhelpers import data\n",
        "__main__": "",
        "io": "import os\nfrom woofhelpers.data import load\n",
        "data": "def f():\n    from .splits import split\n",
        "splits": "if TYPE_CHECKING:\n    from woofhelpers import data, io\n",
        "stray": "",
    }
    found = problems(sources, layers)
    assert found == [
        "woofhelpers/stray.py is in no layer: place it in LAYERS in tests/test_structure.py "
        "(a new module must be placed explicitly, as low as its imports allow)",
        "woofhelpers/io.py line 2 imports data (layer 'data') from layer 'facts': imports must go down; "
        "move the code to the lower layer, or let the higher layer pass it in (an argument, a callback)",
        "import cycle: data → splits → data",
        "import cycle: data → splits → io → data",
    ]


def show(sources: dict[str, str] | None = None) -> None:
    """Print the layers, top first, each module with the modules it imports."""
    sources = read_sources() if sources is None else sources
    imported: dict[str, set[str]] = {}
    for edge in edges(sources):
        imported.setdefault(edge.module, set()).add(edge.target)
    placed = {module for _, modules in LAYERS for module in modules}
    rows = [*reversed(LAYERS), ("in no layer", tuple(sorted(set(sources) - placed)))]
    for name, modules in rows:
        if modules:
            print(name)
        for module in modules:
            missing = "" if module in sources else "  (no such file yet)"
            print(f"    {module:<12} → {', '.join(sorted(imported.get(module, []))) or '-'}{missing}")


if __name__ == "__main__":
    show()
