"""The arrows between packages run one way: read from the source's imports
(those inside functions too), so a cycle shows before it bites at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_by(package: str) -> set[tuple[str, str]]:
    """(importing module, imported module) for every import in `package`."""
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update((module, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((module, node.module))
                found.update((module, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def reaching(importer: str, target: str) -> list[tuple[str, str]]:
    return sorted(
        (module, name)
        for module, name in imported_by(importer)
        if name == target or name.startswith(f"{target}.")
    )


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        # The request path and the error shape live in orchestrator; the
        # run API builds on them and not the other way round.
        ("orchestrator", "runs.api"),
        # A backend's interface knows no backend; each technology's folder
        # implements it.
        ("runs.backends", "runs.k8s"),
        ("runs.backends", "runs.redis"),
        # Each technology keeps to its folder.
        ("runs.k8s", "runs.redis"),
        ("runs.redis", "runs.k8s"),
    ],
)
def test_a_lower_package_imports_nothing_of_the_one_above(lower: str, upper: str) -> None:
    assert reaching(lower, upper) == []


def test_the_run_api_does_build_on_orchestrator() -> None:
    """The check above reads real imports: this arrow is there to see."""
    assert ("runs.api.append", "orchestrator.errors") in reaching("runs.api", "orchestrator")
