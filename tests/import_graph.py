"""evalkit's import graph, read from the source with ``ast`` (nothing is imported): its loops, the imports that
point up a layer, and the largest modules.

Every ``import evalkit...`` and ``from evalkit... import ...`` counts, at the top of a module or inside a
function (an import inside a function still ties the two modules: it only moves the moment it runs), and so do
those under ``if TYPE_CHECKING:``. ``from evalkit.pkg import name`` is an edge to the module ``evalkit.pkg.name``
when there is one, else to ``evalkit.pkg``. Relative imports are resolved against the importing module.

The layers are written down once, here (``LAYERS``, bottom floor first; docs/architecture.md explains them);
``tests/test_layers.py`` asserts that there is no loop and no import up a layer. Print today's figures with

    .venv/bin/python -m tests.import_graph
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "evalkit"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # (floor, the modules on it: a name covers the modules under it; the longest name that matches decides)
    ("ground", ("evalkit", "evalkit.errors", "evalkit.faults", "evalkit.progress", "evalkit.files",
                "evalkit.locations", "evalkit.record.vocabulary")),  # words and utilities everyone may use
    ("metrics", ("evalkit.metrics",)),  # pure functions over arrays
    ("media", ("evalkit.media",)),  # ffmpeg, decoding, encoding, frame sources and frame lists
    ("config", ("evalkit.config",)),  # the YAML edge: contract, suite, dataset folders, suite flags
    ("record", ("evalkit.record",)),  # the run record: schema, summary, layout, environment, io
    ("fixtures", ("evalkit.fixtures",)),  # synthetic faces, speech and models, made from the contract
    ("pipeline", ("evalkit.pipeline",)),  # the generation stages and the streamed pass
    ("measure", ("evalkit.measure",)),  # run files in, record parts out
    ("matrix", ("evalkit.matrix",)),  # model x backend x input x protocol jobs and their executors
    ("report", ("evalkit.report",)),  # views of one run folder
    ("ci", ("evalkit.ci",)),  # gates, baseline, history, sign-off (sign-off and history render reports)
    ("runs", ("evalkit.run", "evalkit.compare", "evalkit.fixtures.build")),  # one suite run, two-run comparison,
    # building the fixtures (it runs the pipeline's audio features)
    ("doors", ("evalkit.cli", "evalkit.commands", "evalkit.__main__", "evalkit.examples")),  # the CLI and examples
]
"""evalkit's floors, bottom first: a module may import its own floor and the floors below, never one above."""

KNOWN_UP_IMPORTS: set[tuple[str, str]] = set()  # generate -> measure.outputs went: its measuring is handed in
"""Imports up a layer that are known and on their way out; the layer test lets only these pass."""


def layer_of(module: str) -> int:
    """The floor of ``module`` (an index into LAYERS), by the longest name of LAYERS that covers it."""
    best, floor = -1, None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, floor = len(name), i
    if floor is None:
        raise KeyError(f"{module} is on no floor of tests/import_graph.py's LAYERS: add it there")
    return floor


def layer_name(module: str) -> str:
    return LAYERS[layer_of(module)][0]


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file, for every .py file of the package (``evalkit.report`` for report/__init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    """The evalkit modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [n for n in names if n == "evalkit" or n.startswith("evalkit.")]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    if not (base == "evalkit" or base.startswith("evalkit.")):
        return []
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def import_graph(package: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported evalkit module: line of the first such import}, imports inside functions included."""
    known = modules(package)
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, module, path.name == "__init__.py", known):
                if target != module and target in known:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def loops(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan's algorithm), each
    sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # iterative, so a deep graph can't hit the recursion limit
        work = [(v, iter(graph.get(v, ())))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found, key=lambda c: (-len(c), c))


def up_layer_imports(graph: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a module on a higher floor than the importer's."""
    return sorted((a, b, line) for a, targets in graph.items() for b, line in targets.items()
                  if layer_of(b) > layer_of(a))


def largest_modules(package: Path = PACKAGE, n: int = 10) -> list[tuple[str, int]]:
    """The ``n`` longest modules, (name, lines), longest first."""
    sizes = [(m, len(p.read_text(encoding="utf-8").splitlines())) for m, p in modules(package).items()]
    return sorted(sizes, key=lambda s: (-s[1], s[0]))[:n]


def folder_edges(graph: dict[str, dict[str, int]]) -> dict[tuple[str, str], int]:
    """How many module imports go from one folder (or top-level module) to another."""
    def folder(m: str) -> str:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else m
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for a, targets in graph.items():
        for b in targets:
            if folder(a) != folder(b):
                counts[folder(a), folder(b)] += 1
    return dict(counts)


def main() -> None:
    graph = import_graph()
    found = loops(graph)
    up = up_layer_imports(graph)
    print(f"modules: {len(graph)}, imports between them: {sum(map(len, graph.values()))}")
    print(f"import loops (strongly connected components): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    print(f"imports up a layer: {len(up)}")
    for a, b, line in up:
        known = "  (known exception)" if (a, b) in KNOWN_UP_IMPORTS else ""
        print(f"  {a} (line {line}) -> {b}  [{layer_name(a)} -> {layer_name(b)}]{known}")
    print("largest modules (lines):")
    for name, lines in largest_modules():
        print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
