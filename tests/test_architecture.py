"""The house rules, checked: one-way layers, bounded modules, a README that maps the code.

Pure: reads the source tree only (import-linter builds its graph without importing).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from core.reasons import Reason

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("core", "topics", "streams", "connectors", "sinks", "api", "tokengine")
BOUNDED = (*PRODUCTION, "standins", "bench")
MAX_MODULE_LINES = 400
README = (ROOT / "README.md").read_text()


def modules(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def code_map() -> str:
    section = README.split("## Map of the code", 1)[1]
    return section.split("```", 2)[1]


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    ran = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert "0 broken" in ran.stdout and "3 kept" in ran.stdout, ran.stdout[-2000:]


def test_no_module_is_longer_than_the_bound() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules(*BOUNDED)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by part: {long}"


def test_production_code_never_asserts() -> None:
    # `python -O` removes asserts: a check of money or state must raise
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in modules(*PRODUCTION, "standins")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert not found, found


def test_the_readme_maps_every_module_and_only_modules_that_exist() -> None:
    mapped = set(re.findall(r"\b(\w+\.py)\b", code_map()))
    files = {
        path.name
        for path in modules(*PRODUCTION, "standins")
        if path.name not in ("__init__.py", "__main__.py")
    }
    missing = sorted(files - mapped)
    assert not missing, f"add to the README's map of the code: {missing}"
    stale = sorted(mapped - files - {"pure_ledger.py"})
    assert not stale, f"the README's map names modules that do not exist: {stale}"


def test_every_module_says_what_it_owns() -> None:
    silent = [
        str(path.relative_to(ROOT))
        for path in modules(*PRODUCTION, "standins", "bench")
        if path.name != "__main__.py" or path.parent.name == "bench"
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not silent, f"a docstring at the top, saying what it owns: {silent}"


def test_the_readme_lists_every_reason_code() -> None:
    section = README.split("### Reason codes", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert listed == {reason.value for reason in Reason}, sorted(
        listed ^ {reason.value for reason in Reason}
    )


def test_the_readme_lists_every_environment_variable() -> None:
    from core.config import ENVIRONMENT_VARIABLES

    section = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(TOKENGINE_[A-Z_]+)` \|", section, re.M))
    assert listed == set(ENVIRONMENT_VARIABLES), sorted(listed ^ set(ENVIRONMENT_VARIABLES))
