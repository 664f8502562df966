"""The layers of pyproject.toml's import-linter contracts hold, and a violation breaks them.

`make test` runs `lint-imports` before pytest; this test runs it too, so a layering violation
fails whichever way the suite is started."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_RUN_LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports_command; "
                     "sys.argv[0] = 'lint-imports'; sys.exit(lint_imports_command())")


def _lint_imports(project: Path) -> subprocess.CompletedProcess:
    # import-linter is a test requirement (pyproject `test` extra): missing, the test fails.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(project / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", _RUN_LINT_IMPORTS, "--no-cache", "--no-logo",
         str(project / "pyproject.toml")],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_lint_imports_keeps_every_contract():
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("path, code, expected", [
    # A lazy import inside a function counts.
    ("eval/_probe.py", "def f():\n    from ..train import trainer\n",
     "mumur.eval._probe -> mumur.train.trainer"),
    ("serve/_probe.py", "from ..recipes import presets\n",
     "mumur.serve._probe -> mumur.recipes.presets"),
    ("heads/_probe.py", "from ..index import store\n", "mumur.heads._probe -> mumur.index.store"),
    # A new subpackage must be placed in a layer.
    ("unplaced/__init__.py", "", "mumur.unplaced"),
])
def test_lint_imports_breaks_on_a_violation(tmp_path, path, code, expected):
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "src" / "mumur", tmp_path / "src" / "mumur",
                    ignore=shutil.ignore_patterns("__pycache__", "configs", "static",
                                                  "paper_results"))
    probe = tmp_path / "src" / "mumur" / path
    probe.parent.mkdir(exist_ok=True)
    probe.write_text(code)
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and expected in result.stdout, result.stdout


def test_the_architecture_diagram_matches_the_contracts():
    import re

    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]
    app, core = contracts[0]["layers"], contracts[1]["layers"]
    assert app[-1].replace(" ", "").split(":") == [
        m for layer in core for m in re.split(r"[|:]", layer.replace(" ", ""))]
    wanted = [layer.replace(" ", "") for layer in app[:-1] + core]
    modules = {m for layer in wanted for m in re.split(r"[|:]", layer)}
    doc = (REPO / "docs" / "architecture.md").read_text()
    diagram = doc.split("## Layers", 1)[1].split("```")[1]
    rows = []
    for line in diagram.splitlines():
        names = [w for w in re.findall(r"[a-z]+", line) if w in modules]
        if names:
            rows.append(("|" if "|" in line else ":").join(dict.fromkeys(names)))
    assert rows == wanted
