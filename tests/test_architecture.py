"""The house's plan, checked from the source: imports run one way down the layers the
README's Architecture section names, with no cycle, and no module grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "weightlapse"

# The layers, lowest first; a module may import its own part or a lower layer, never a
# higher one nor a sibling of its own layer. (The README's Architecture section.)
LAYERS: list[set[str]] = [
    {"errors", "notebook"},
    {"store"},
    {"frames", "history"},  # a Run as tables; one tensor's records, read through a Run
    {"record", "run", "frameworks"},
    {"run_writer", "names"},
    {"views", "health", "catalog"},
    {"io"},
    {"interpret"},
    {"integrations"},
    {"demos", "dashboard", "nbwidget"},
    {"cli"},
    {"__init__", "torch", "keras", "jax", "lightning", "huggingface"},  # the public faces
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
FRAMEWORK_MODULES = ("torch", "keras", "tensorflow", "jax")
# Where a framework may be imported: the modules that adapt to it.
FRAMEWORK_HOMES = (
    "frameworks/",
    "record/torch_ops",
    "record/keras_ops",
    "record/jax_ops",
    "record/torch_shards",
    "integrations/",
    "interpret/torch_backend",
    "interpret/keras_backend",
    "interpret/loading",
    "io/formats/",
    "demos/",
)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("weightlapse", *parts)).removesuffix(".__init__")
        out[name] = path
    return out


def imports_of(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, node.lineno, id(node) in top))
    return found


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(m) for m in modules()}
    assert parts <= set(RANK), f"parts with no layer: {sorted(parts - set(RANK))}"


def test_imports_go_down_the_layers_only():
    wrong = []
    for name, path in modules().items():
        own = part_of(name)
        for target, line, _ in imports_of(name, path):
            if not target.startswith("weightlapse.") and target != "weightlapse":
                continue
            other = part_of(target)
            if other == own or other == "__init__" and own == "__init__":
                continue
            if RANK[other] >= RANK[own]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({own}) imports {target}")
    assert not wrong, "imports up or across the layers:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    names = modules()
    for name, path in names.items():
        graph[name] = {t for t, _, _ in imports_of(name, path) if t in names and t != name}
    # Tarjan's strongly connected components: any component of 2+ modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_frameworks_are_imported_only_where_they_are_adapted():
    wrong = []
    for name, path in modules().items():
        where = str(path.relative_to(PACKAGE).with_suffix(""))
        if where.startswith(FRAMEWORK_HOMES):
            continue
        for target, line, top_level in imports_of(name, path):
            if target.split(".")[0] in FRAMEWORK_MODULES and top_level:
                wrong.append(f"{where}.py:{line} imports {target}")
    assert not wrong, "framework imports outside their adapters:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 400, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_the_checker_sees_a_wrong_import(tmp_path):
    """The layering test can fail: a store module importing views is caught."""
    bad = tmp_path / "weightlapse" / "store" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from weightlapse.views.heatmap import heatmap\n")
    ((target, _, _),) = imports_of("weightlapse.store.bad", bad)
    assert RANK[part_of(target)] >= RANK[part_of("weightlapse.store.bad")]
