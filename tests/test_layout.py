"""The core stays free of platform code: ``bot/`` imports no platform library and no adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import bot

FORBIDDEN = ("discord", "slack_bolt", "slack_sdk", "adapters")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_bot_imports_no_platform_library_and_no_adapter() -> None:
    package = Path(bot.__file__).parent
    offenders = {
        f"{path.relative_to(package)}: {name}"
        for path in package.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN
    }
    assert offenders == set()
    assert len(list(package.rglob("*.py"))) >= 10  # the scan really read the package
