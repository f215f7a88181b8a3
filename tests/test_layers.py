"""The package's shape: each package imports only the packages below it, and no module grows past 300 lines.

The layers, bottom up, are the map a newcomer reads (docs/development.md): a change to a lower layer
never needs a higher one, and a new module goes in the package named for what it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

from degrade.paths import ROOT

LAYERS = [
    {"errors", "paths", "units"},
    {"model", "prompts"},
    {"methods"},
    {"config"},
    {"scoring"},
    {"records"},
    {"generation"},
    {"job"},
    {"judge", "search"},
    {"analysis", "cli"},
    {"benchmark"},
]
FLOOR = {name: i for i, names in enumerate(LAYERS) for name in names}
PACKAGE = ROOT / "degrade"


def package_of(module: str) -> str:
    """``degrade.model.groups`` → ``model``; ``degrade.errors`` → ``errors``."""
    return module.split(".")[1]


def imports() -> list[tuple[Path, str, str]]:
    """(file, its package, imported package) for every import of a degrade module inside degrade/."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        own = (
            package_of(".".join(path.relative_to(ROOT).with_suffix("").parts)) if path.parent != PACKAGE else path.stem
        )
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("degrade."):
                found.append((path, own, package_of(node.module)))
            elif isinstance(node, ast.ImportFrom) and node.module == "degrade":
                found += [(path, own, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(path, own, package_of(a.name)) for a in node.names if a.name.startswith("degrade.")]
    return found


def test_every_module_sits_in_a_named_layer() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    }
    assert top <= set(FLOOR), f"not in a layer: {sorted(top - set(FLOOR))}"


def test_imports_go_down_the_layers_only() -> None:
    upward = [
        f"{path.relative_to(ROOT)} ({own}) imports {other}"
        for path, own, other in imports()
        if own != other and FLOOR[other] >= FLOOR[own]
    ]
    assert not upward, "\n".join(upward)


def test_no_module_over_300_lines() -> None:
    long = [
        f"{p.relative_to(ROOT)}: {n}" for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300
    ]
    assert not long, long
