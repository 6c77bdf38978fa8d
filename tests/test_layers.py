"""evalkit's floors hold: no import loop, and no module imports a floor above its own (tests/import_graph.py
writes the floors down, ``LAYERS``; docs/architecture.md explains them). Imports inside functions count."""

from __future__ import annotations

import textwrap

from tests.import_graph import KNOWN_UP_IMPORTS, import_graph, layer_name, loops, modules, up_layer_imports


def test_no_import_loops():
    found = loops(import_graph())
    assert not found, "import loops (each a set of modules that import each other, directly or through others): " + (
        "; ".join(" <-> ".join(c) for c in found))


def test_no_import_up_a_layer():
    up = [(a, b, line) for a, b, line in up_layer_imports(import_graph()) if (a, b) not in KNOWN_UP_IMPORTS]
    assert not up, "imports up a layer: " + "; ".join(
        f"{a} (line {line}, floor {layer_name(a)}) imports {b} (floor {layer_name(b)})" for a, b, line in up)


def test_known_exceptions_are_still_there():
    """An exception that the code no longer needs is deleted from KNOWN_UP_IMPORTS, so it can't hide a new one."""
    graph = import_graph()
    gone = [(a, b) for a, b in KNOWN_UP_IMPORTS if b not in graph.get(a, {})]
    assert not gone, f"delete from tests/import_graph.py's KNOWN_UP_IMPORTS (no longer imported): {gone}"


def test_every_module_is_on_a_floor():
    for module in modules():
        layer_name(module)  # a KeyError names a module no floor covers


def test_a_loop_and_an_import_up_are_found(tmp_path):
    """The graph sees a loop made by an import inside a function, and an import up a floor (a package built
    here, shaped like evalkit: a module of metrics/ importing one of report/)."""
    package = tmp_path / "evalkit"
    for folder in ("metrics", "report"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "metrics" / "a.py").write_text("from evalkit.report.b import render\n")
    (package / "report" / "b.py").write_text(textwrap.dedent("""\
        def render():
            from evalkit.metrics import a
            return a
        """))
    graph = import_graph(package)
    assert graph["evalkit.metrics.a"] == {"evalkit.report.b": 1}
    assert graph["evalkit.report.b"] == {"evalkit.metrics.a": 2}
    assert loops(graph) == [["evalkit.metrics.a", "evalkit.report.b"]]
    assert up_layer_imports(graph) == [("evalkit.metrics.a", "evalkit.report.b", 1)]
