"""The shape of the package: no import cycle, and the light commands stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lifelog

PACKAGE = Path(lifelog.__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """The lifelog modules a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lifelog.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lifelog":
                found |= {f"lifelog.{a.name}" for a in node.names}
            elif node.module.startswith("lifelog."):
                found.add(node.module)
    return found


def graph() -> dict[str, set[str]]:
    modules = {".".join(("lifelog",) + p.relative_to(PACKAGE).with_suffix("").parts): p
               for p in PACKAGE.rglob("*.py") if p.stem != "__init__"}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_lifelog():
    edges = graph()
    assert len(edges) > 30 and "lifelog.monitor" in edges
    assert cycles(edges) == []


def test_the_cron_pass_and_status_never_load_the_heavy_modules():
    heavy = ["rich", "dataclasses", "requests", "sqlite_utils", "typer", "platformdirs", "http.client",
             "lifelog.backups.backup", "lifelog.coverage", "lifelog.ingest.livepoll", "lifelog.ingest.history",
             "lifelog.ingest.reconcile"]
    code = ("import sys\nimport lifelog.cli, lifelog.monitor\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def lifelog_names_used(path: Path) -> set[tuple[str, str | None]]:
    """(module, name) for every `from lifelog… import name` and `import lifelog.x` in a file."""
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            used |= {(a.name, None) for a in node.names if a.name.startswith("lifelog")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("lifelog"):
            used |= {(node.module, a.name) for a in node.names}
    return used


def test_the_scripts_import_only_what_lifelog_has():
    # The benchmarks run by hand, not in the suite: a module they import that
    # was renamed or removed would otherwise go unnoticed until someone measures.
    import importlib

    scripts = sorted((PACKAGE.parent / "scripts").glob("*.py"))
    assert len(scripts) >= 5
    missing = []
    for script in scripts:
        for module, name in sorted(lifelog_names_used(script), key=str):
            try:
                found = importlib.import_module(module)
            except ImportError:
                missing.append(f"{script.name}: {module}")
                continue
            if name is not None and not hasattr(found, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    missing.append(f"{script.name}: {module}.{name}")
    assert missing == []
