"""The layout is a picture of the data flow: no import cycle between packages, scoring free of storage."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import gapeval

SRC = Path(gapeval.__file__).resolve().parent


def _node(module: str) -> str:
    """gapeval.scoring.joint -> scoring; gapeval.store -> store; gapeval -> gapeval."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def import_graph() -> dict[str, set[str]]:
    """Package -> the gapeval packages its modules import (lazy imports inside functions included)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        here = _node(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                targets = [f"{base}.{a.name}" for a in node.names] if base == "gapeval" else [base]
            for t in targets:
                if t == "gapeval" or t.startswith("gapeval."):
                    there = _node(t)
                    if there != here:
                        graph[here].add(there)
                elif t.split(".")[0] == "sqlite3":
                    graph[here].add("sqlite3")
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle_between_packages() -> None:
    graph = import_graph()
    assert "scoring" in graph and "judges" in graph  # the walk saw the code
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_scoring_imports_neither_the_store_nor_sqlite() -> None:
    deps = import_graph()["scoring"]
    assert "store" not in deps and "sqlite3" not in deps, deps


def test_dependencies_point_down_the_flow() -> None:
    graph = import_graph()
    # suites know nothing of judges, models, stores or scores; records know only items
    assert not graph["suites"] & {"judges", "models", "store", "scoring", "executors", "api", "pipeline"}
    assert graph["records"] <= {"items"}
    assert not graph["scoring"] & {"judges", "models", "executors", "api", "pipeline", "cli"}
    assert not graph["store"] & {"judges", "models", "scoring", "executors", "api", "pipeline"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out[".".join(p for p in rel.parts if p != "__init__")] = path
    return out


def module_graph() -> dict[str, set[str]]:
    """Module -> the gapeval modules it imports: at the top, inside functions and under TYPE_CHECKING alike.

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``.
    """
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]  # fmt: skip
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t.startswith("gapeval") and t != module:
                    graph[module].add(t)
    return graph


#: Module-level circles allowed on purpose (each must say why); none today.
ALLOWED_MODULE_CYCLES: list[set[str]] = []


def test_no_import_cycle_between_modules() -> None:
    graph = module_graph()
    assert "gapeval.experiments.runners" in graph and len(graph) > 60  # the walk saw the code
    cycle = _cycle(graph)
    assert cycle is None or set(cycle) in ALLOWED_MODULE_CYCLES, " -> ".join(cycle or [])


def test_knowledge_is_in_pieces_and_the_runners_know_only_spec_data_and_strategies() -> None:
    graph = module_graph()
    runners = {m for m in graph["gapeval.experiments.runners"] if m.startswith("gapeval.experiments")}
    assert runners == {"gapeval.experiments.knowledge_data", "gapeval.experiments.knowledge_spec",
                       "gapeval.experiments.strategies"}  # fmt: skip
    strategies = {m for m in graph["gapeval.experiments.strategies"] if m.startswith("gapeval.experiments")}
    assert strategies == {"gapeval.experiments.knowledge_spec"}
    driver = graph["gapeval.experiments.knowledge"]
    assert {"gapeval.experiments.knowledge_spec", "gapeval.experiments.knowledge_data",
            "gapeval.experiments.knowledge_suite", "gapeval.experiments.knowledge_analysis",
            "gapeval.experiments.runners"} <= driver  # fmt: skip


#: What a CLI module may import from gapeval besides its own package: the facade, errors, renderers.
CLI_MAY_IMPORT = {"gapeval.api", "gapeval.errors", "gapeval.report.tables", "gapeval.report.render"}


def test_the_cli_imports_only_the_facade_the_errors_and_the_renderers() -> None:
    graph = module_graph()
    cli = sorted(m for m in _modules() if m == "gapeval.cli" or m.startswith("gapeval.cli."))
    assert {"gapeval.cli.run", "gapeval.cli.scoring", "gapeval.cli.shell"} <= set(cli)
    for module in cli:
        outside = {t for t in graph[module] if t != "gapeval.cli" and not t.startswith("gapeval.cli.")}
        assert outside <= CLI_MAY_IMPORT, f"{module} imports {sorted(outside - CLI_MAY_IMPORT)}"
    assert "gapeval.api" in graph["gapeval.cli.run"]  # the walk saw the lazy imports


def _api_calls(fn: ast.AST) -> list[str]:
    return [
        n.func.attr
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "api"
    ]


def test_every_command_makes_one_library_call() -> None:
    seen = {}
    for path in sorted((SRC / "cli").glob("*.py")):
        for fn in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(fn, ast.FunctionDef):
                calls = _api_calls(fn)
                assert len(calls) <= 1, f"{path.name}:{fn.name} calls {calls}"
                if calls:
                    seen[fn.name] = calls
    assert seen["run_cmd"] == ["evaluate"] and seen["score_cmd"] == ["score"]
    assert seen["report_cmd"] == ["report_site"] and seen["agreement_cmd"] == ["agreement"]
