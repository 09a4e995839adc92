"""Lint and types: ruff over the code, the tests and the scripts, mypy over
lifelog/, both with the settings in pyproject.toml, both clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lifelog

ROOT = Path(lifelog.__file__).resolve().parent.parent


def run(tool: str, *args: str) -> tuple[int, str]:
    """A tool of the test virtualenv, run in the checkout; (exit code, report)."""
    out = subprocess.run([str(Path(sys.executable).with_name(tool)), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


def test_ruff_finds_nothing():
    # No cache: it would be written into the checkout.
    code, report = run("ruff", "check", "--no-cache", "lifelog", "tests", "scripts")
    assert code == 0, report


def test_mypy_finds_nothing(tmp_path):
    # Its cache in the test's own directory, not the checkout; `files` come from pyproject.
    code, report = run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"))
    assert code == 0, report
    assert "Success: no issues found" in report
