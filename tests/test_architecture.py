"""The import graph follows the layers of docs/ARCHITECTURE.md ("Layers"), read from that file's
table, the only place they are written: a module imports only from its own layer or lower ones,
and no two packages import each other. Every import counts, function-level ones too (only
``if TYPE_CHECKING:`` blocks are skipped)."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

PACKAGE = REPO / "dudes_ros"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
TABLE_START = "<!-- layers: read by tests/test_architecture.py -->"
TABLE_END = "<!-- end of layers -->"


def read_layers() -> list[tuple[str, set[str]]]:
    """``[(layer, {package})]``, highest first, from the table between the markers in
    docs/ARCHITECTURE.md: one row per layer, the packages as code spans (``demo/`` is the
    subfolder demo, ``cli`` the module cli.py)."""
    text = ARCHITECTURE.read_text()
    assert TABLE_START in text and TABLE_END in text, (
        f"{ARCHITECTURE}: expected the layer table between {TABLE_START!r} and {TABLE_END!r}")
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = [line.strip().strip("|").split("|") for line in table.splitlines()
            if line.startswith("|")][2:]  # after the header and its rule
    layers = [(name.strip(), {p.rstrip("/") for p in re.findall(r"`([^`]+)`", packages)})
              for name, packages, *_ in rows]
    assert layers and all(packages for _, packages in layers), (
        f"{ARCHITECTURE}: every layer row needs its packages as code spans, got {layers}")
    return layers


# Highest first. A package is a subfolder or a top-level module of dudes_ros.
LAYERS: list[tuple[str, set[str]]] = read_layers()
RANK = {package: i for i, (_, packages) in enumerate(LAYERS) for package in packages}
LAYER = {package: name for name, packages in LAYERS for package in packages}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "dudes_ros" and len(parts) > 1 else None


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    """``{source package: {imported packages}}`` over every module of dudes_ros."""
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        source = package_of(module)
        if source is None:
            continue
        targets = {package_of(m) for m in imports(ast.parse(path.read_text()))}
        edges.setdefault(source, set()).update(t for t in targets if t and t != source)
    return edges


def test_every_package_has_a_layer():
    assert set(graph()) <= set(RANK), sorted(set(graph()) - set(RANK))


def test_every_layer_package_exists():
    """The table names only real packages: a subfolder or a top-level module of dudes_ros."""
    missing = sorted(p for p in RANK if not (PACKAGE / p).is_dir()
                     and not (PACKAGE / f"{p}.py").is_file())
    assert not missing, f"docs/ARCHITECTURE.md names packages dudes_ros lacks: {missing}"


def test_no_import_goes_up_a_layer():
    upward = sorted(f"{s} ({LAYER[s]}) imports {t} ({LAYER[t]})"
                    for s, targets in graph().items() for t in targets
                    if t in RANK and RANK[t] < RANK[s])
    assert not upward, "\n".join(upward)


def test_no_two_packages_import_each_other():
    edges = graph()
    mutual = sorted({tuple(sorted((s, t))) for s, targets in edges.items() for t in targets
                     if s in edges.get(t, set())})
    assert not mutual, mutual
