"""The import direction of the layout (DESIGN.md): front ends (wizard.cli, wizard.app) ->
wizard.engine -> checks -> wizard.host, no front end importing the other, nothing below the
front ends importing Textual, and no cycles. Read from the source with `ast`, every import
counted: at the top, under TYPE_CHECKING and inside functions (an import moved into a
function hides a cycle from Python, not from this test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wizard", "checks")

# (importer's package, what it may not import). wizard.main, the entry point, starts either
# front end; nothing imports it but `python -m wizard`.
FORBIDDEN = (
    ("wizard.app", ("wizard.cli", "wizard.main")),
    ("wizard.cli", ("wizard.app", "wizard.main")),
    ("wizard.engine", ("wizard.cli", "wizard.app", "wizard.main", "textual")),
    ("checks", ("wizard.engine", "wizard.cli", "wizard.app", "wizard.main", "textual")),
    (
        "wizard.host",
        ("checks", "wizard.engine", "wizard.cli", "wizard.app", "wizard.main", "textual"),
    ),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Every module `name` imports: `import a.b`, `from a import b` (a.b where it is a
    module, else a), relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _edges() -> dict[str, set[str]]:
    """The imports between the project's own modules, less the known ones."""
    return {
        name: {m for m in imported if m in MODULES and m != name}
        for name, imported in GRAPH.items()
    }


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_reader_sees_imports_inside_functions_and_relative_ones() -> None:
    assert "wizard.engine.hosts.across" in GRAPH["wizard.engine.hosts.run_across"]
    assert "wizard.engine.recipes.state" in GRAPH["wizard.engine.recipes.run"]  # from . import
    assert "wizard.engine.recipes.compare" in GRAPH["wizard.cli.run"]  # inside report()
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    cycles = _cycles(_edges())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize(("package", "forbidden"), FORBIDDEN)
def test_imports_follow_the_direction(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{name} imports {imported}"
        for name, modules in GRAPH.items()
        if _within(name, package)
        for imported in modules
        if any(_within(imported, f) for f in forbidden)
    )
    assert wrong == []


def test_the_readme_layout_names_every_module() -> None:
    """README.md's Layout section is how a newcomer finds a module: each module of wizard/
    is named there (the app's screens and widgets by their folders, one a file)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout") : text.index("## Not built yet")]
    unnamed = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "wizard").rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py")
        and path.parent.name not in ("screens", "widgets")
        and path.name not in layout
    ]
    assert unnamed == [], "name them in README.md's Layout section"
