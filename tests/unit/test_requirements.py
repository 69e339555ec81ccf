"""requirements/runtime.txt (what the Bento installs) is the run-time part of
constraints.txt, regenerated whenever the dependency set changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_runtime_requirements_are_current_and_hold_no_dev_tools() -> None:
    checked = subprocess.run([sys.executable, str(REPO / "requirements" / "runtime.py"),
                              "--check"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    pins = [line for line in (REPO / "requirements" / "runtime.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    names = {line.split("==")[0].lower() for line in pins}
    assert {"bentoml", "mlflow", "feast", "implicit", "xgboost", "redis", "numpy"} <= names
    assert not names & {"pytest", "schemathesis", "hypothesis", "selenium"}
    constraints = set((REPO / "requirements" / "constraints.txt").read_text().splitlines())
    assert set(pins) <= constraints


def _imported_top_level_modules(folder: Path) -> set[str]:
    """Top-level names of every absolute import in the .py files under `folder`."""
    import ast

    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_of_the_package_is_a_declared_dependency() -> None:
    """An import that only arrives with another library breaks when that library drops it."""
    import re
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # The run-time dependencies and the optional run-time extra tailor[spark] (its imports
    # are inside the functions that need it), not the dev or bench tools.
    specs = project["dependencies"] + project["optional-dependencies"]["spark"]
    declared = {re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0].lower().replace("_", "-")
                for spec in specs}
    distributions = packages_distributions()
    missing = {}
    for module in _imported_top_level_modules(REPO / "src" / "tailor") - {"tailor"}:
        if module in sys.stdlib_module_names or module not in distributions:
            continue
        owners = {name.lower().replace("_", "-") for name in distributions[module]}
        if not owners & declared:
            missing[module] = sorted(owners)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
