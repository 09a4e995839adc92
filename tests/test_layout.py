"""The shape of the package: folders by layer, each importing only from the
layers below it (the import-linter contract in pyproject.toml), and the light
commands stay light."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import lifelog

PACKAGE = Path(lifelog.__file__).resolve().parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
# The entry points and the wiring; every other module lives in a folder.
TOP = {"__init__", "__main__", "cli", "daemon", "status_screen", "monitor", "wiring"}


def lint(config: Path, path: Path | None = None) -> tuple[int, str]:
    """Run the contract with `lint-imports`; (exit code, report). In a process
    of its own: importlinter.cli.lint_imports() reconfigures logging and so
    disables every logger that exists in the calling process. No cache: it
    would be written into the checkout."""
    env = dict(os.environ, PYTHONPATH=str(path)) if path is not None else None
    out = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo", str(config)],
                         capture_output=True, text=True, timeout=120, env=env)
    return out.returncode, out.stdout + out.stderr


def test_the_layers_hold():
    code, report = lint(PYPROJECT)
    assert code == 0, report
    assert "1 kept, 0 broken" in report


def contract_for(package: str) -> str:
    """pyproject's contract, for a copy of lifelog named `package`."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = config["contracts"]
    lines = ["[tool.importlinter]", f"root_package = {json.dumps(package)}", "", "[[tool.importlinter.contracts]]"]
    for key, value in contract.items():
        lines.append(f"{key} = {json.dumps([package] if key == 'containers' else value)}")
    return "\n".join(lines) + "\n"


def copy_of_lifelog(tmp_path: Path, package: str) -> Path:
    """lifelog's modules under another name (`lifelog` itself is imported
    here already), with their imports renamed to match."""
    root = tmp_path / package
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    for path in root.rglob("*.py"):
        path.write_text(re.sub(r"\blifelog(?=[. ])", package, path.read_text()))
    return root


UPWARD = {
    # a leaf that reaches up to a check, at the top of the module
    "at the top": ("core/keys.py", "from {p}.checks import status\n", "{p}.core.keys -> {p}.checks.status"),
    # the same, hidden in a function (the cron pass would load it lazily, but the layer is still crossed)
    "inside a function": ("aw/buckets.py", "def _late():\n    from {p}.ingest import store\n",
                          "{p}.aw.buckets -> {p}.ingest.store"),
    # capabilities side by side must not lean on each other
    "across siblings": ("coverage/query.py", "from {p}.sources import judge\n",
                        "{p}.coverage.query -> {p}.sources.judge"),
}


@pytest.mark.parametrize("where", sorted(UPWARD))
def test_the_contract_fails_on_an_import_that_runs_back_up(tmp_path, where):
    package = "lifelog_copy"
    root = copy_of_lifelog(tmp_path, package)
    config = tmp_path / "pyproject.toml"
    config.write_text(contract_for(package))
    code, report = lint(config, tmp_path)
    assert code == 0, report  # the copy keeps the layers, as lifelog does

    module, line, edge = UPWARD[where]
    with (root / module).open("a") as f:
        f.write("\n\n" + line.format(p=package))
    code, report = lint(config, tmp_path)
    assert code == 1
    assert "0 kept, 1 broken" in report and edge.format(p=package) in report


def test_a_module_outside_the_layers_fails_the_contract(tmp_path):
    # exhaustive: a new module at the top must be given its place in the layers
    package = "lifelog_copy"
    root = copy_of_lifelog(tmp_path, package)
    (root / "newthing.py").write_text("")
    config = tmp_path / "pyproject.toml"
    config.write_text(contract_for(package))
    code, report = lint(config, tmp_path)
    assert code == 1 and f"{package}.newthing" in report


def test_only_the_entry_points_and_the_wiring_sit_at_the_top():
    assert {p.stem for p in PACKAGE.glob("*.py")} == TOP


def test_every_folder_init_is_empty():
    # Importing one module of a folder must load no other: the cron pass
    # imports only what it needs.
    inits = sorted(PACKAGE.glob("*/__init__.py"))
    assert len(inits) >= 9
    assert {p.parent.name: p.read_text() for p in inits} == {p.parent.name: "" for p in inits}


def test_the_wheel_puts_the_schema_where_the_database_module_looks():
    # schema.sql stays at the repository root, the one source of the schema;
    # the wheel copies it beside lifelog/db/database.py, where schema_sql()
    # looks first (in a checkout it finds the root's, two folders up).
    from lifelog.db import database

    wheel = tomllib.loads(PYPROJECT.read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    beside = Path(database.__file__).resolve().parent / "schema.sql"
    assert wheel["force-include"] == {"schema.sql": beside.relative_to(PACKAGE.parent).as_posix()}
    assert database.schema_sql() == (PACKAGE.parent / "schema.sql").read_text(encoding="utf-8")


def test_the_cron_pass_and_status_never_load_the_heavy_modules():
    # sqlite_utils (the database layer) is loaded when a database is opened
    # (below), not by importing the commands. typer is the command line
    # itself, so it loads; rich (typer's optional help boxes) must not.
    heavy = ["rich", "dataclasses", "requests", "sqlite_utils", "platformdirs", "http.client",
             "lifelog.backups.backup", "lifelog.coverage", "lifelog.ingest.livepoll", "lifelog.ingest.history",
             "lifelog.ingest.reconcile"]
    code = ("import sys\nimport lifelog.cli, lifelog.monitor\n"
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_command_that_opens_the_database_reads_it_through_sqlite_utils(tmp_path):
    db = tmp_path / "lifelog.db"
    subprocess.run([sys.executable, "-m", "lifelog", "init", "--db", str(db)], capture_output=True, timeout=60,
                   check=True)
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "lifelog", "meta", "get", "db.created_at",
                          "--db", str(db)], capture_output=True, text=True, timeout=60, check=True)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert {"sqlite_utils", "sqlite_utils.db"} <= imported
    assert out.stdout.strip().endswith("+00:00")


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


def test_lifelog_never_imports_aw_client():
    # aw-client writes INTO ActivityWatch (the demo, the tests' feeders); it
    # sets no timeouts and calls sys.exit on its lock file, so LifeLog reads
    # AW through lifelog.aw alone, and a user's install does not carry it.
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in ("aw_client", "aw_core")]
    assert found == []
    assert not re.search(r"\baw_client\b", "".join(p.read_text() for p in PACKAGE.rglob("*.py")))


def test_aw_client_is_only_in_the_demo_extra():
    # The installed metadata, not just pyproject: what `pip install lifelog`
    # would bring. Hatchling writes `test`'s "lifelog[demo]" out as demo's own
    # requirements under `test`, so aw-client appears there too, by way of demo.
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in requires("lifelog") or []]

    def extras_of(name: str) -> set[str | None]:
        found = set()
        for r in reqs:
            if r.name == name:
                m = re.search(r"""extra\s*==\s*["']([^"']+)["']""", str(r.marker or ""))
                found.add(m.group(1) if m else None)
        return found

    def under(extra: str) -> set[str]:
        return {r.name for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})}

    assert extras_of("aw-client") == {"demo", "test"}
    assert under("demo") == {"aw-client"}
    assert under("demo") <= under("test")
    assert not [r for r in reqs if r.marker is None and r.name in ("aw-client", "aw-core", "aw-server")]
    declared = tomllib.loads(PYPROJECT.read_text())["project"]
    assert not [d for d in declared["dependencies"] if Requirement(d).name == "aw-client"]
    assert "lifelog[demo]" in declared["optional-dependencies"]["test"]
