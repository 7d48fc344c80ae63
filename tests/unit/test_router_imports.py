"""Layering: router/ never imports Ray, and imports point one way: serve_apps -> batch -> policies -> router."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# What each layer must never import (top-level package names): Ray stays out of the pure core, and no layer
# reaches up to one above it.
FORBIDDEN: dict[str, frozenset[str]] = {
    "router": frozenset({"ray", "policies", "batch", "serve_apps"}),
    "policies": frozenset({"batch", "serve_apps"}),
    "batch": frozenset({"serve_apps"}),
}

_IMPORT_EVERY_ROUTER_MODULE = """
import importlib, json, pkgutil, sys
import router
names = ["router"] + [info.name for info in pkgutil.walk_packages(router.__path__, "router.")]
for name in names:
    importlib.import_module(name)
ray = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
print(json.dumps({"imported": names, "ray": ray}))
"""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(package: str) -> list[Path]:
    return sorted(path for path in (REPO_ROOT / package).rglob("*.py") if "__pycache__" not in path.parts)


def imported_roots(source: str, module: str, is_package: bool = False) -> set[str]:
    """Top-level package names that `source` (the text of `module`) imports, however it spells it."""
    roots: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                roots.add((node.module or "").split(".")[0])
            else:  # relative: resolve against the importing module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                roots.add(base[0] if base else "<above top level>")
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    roots.discard("")
    return roots


def test_import_scanner_sees_every_spelling() -> None:
    source = (
        "import os, ray.serve as serve\n"
        "from batch.ledger import Ledger\n"
        "from . import sibling\n"
        "import importlib\n"
        "importlib.import_module('serve_apps.gateway')\n"
        "__import__('policies')\n"
        "def late():\n"
        "    import ray\n"
    )
    assert imported_roots(source, "router.some_module") == {
        "os",
        "ray",
        "batch",
        "router",
        "importlib",
        "serve_apps",
        "policies",
    }
    assert imported_roots("from .. import x", "router.sub.mod") == {"router"}
    assert imported_roots("from .. import x", "router.mod") == {"<above top level>"}


def test_importing_every_router_module_does_not_import_ray() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_ROUTER_MODULE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    on_disk = {module_name(path) for path in python_files("router")}
    assert set(report["imported"]) == on_disk, "pkgutil discovery and the files on disk disagree"
    assert "router.routing" in report["imported"]
    ray_modules: list[str] = report["ray"]
    count = len(ray_modules)
    assert count == 0, f"importing router/ pulled in {count} ray module(s), e.g. {ray_modules[:5]}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down_only(layer: str) -> None:
    files = python_files(layer)
    if not files:
        pytest.skip(f"{layer}/ has no modules yet")
    offences = []
    for path in files:
        found = imported_roots(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
        offences += [f"{path.relative_to(REPO_ROOT)} imports {name}" for name in sorted(found & FORBIDDEN[layer])]
    assert not offences, "\n".join(offences)
