"""Layering, computed from the code: what each package may import, purity of the pure rooms, no cycles, no big modules.

The rooms and their order are those of docs/architecture (../shared/docs/ARCHITECTURE.md): a package imports only
packages below it; the pure rooms import no I/O, threads, Ray or environment; and no two modules import each other
in a loop, however indirectly and wherever the import statement sits (a function-local import hides a cycle from
Python, not from this test).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

RANKS: Mapping[str, int] = {
    "fleet": 0,
    "grid": 1,
    "openadr": 1,
    "router": 2,
    "policies": 3,
    "rayjobs": 3,
    "batch": 4,
    "training": 4,
    "simulate": 4,
    "tenants": 4,
    "serve_apps": 5,
    "loadtests": 6,
    "benchmarks": 7,
    "example_pipelines": 7,
    "scripts": 7,
}
"""Each package's floor: it may import packages on lower floors only (same floor: siblings, independent)."""

PURE = ("fleet", "router", "grid", "policies", "simulate")
IMPURE_PARTS = ("grid.sources", "policies.actors")
"""Pure rooms, and the parts of them that are not (live signal I/O; the Ray actors)."""

FORBIDDEN_IN_PURE = frozenset(
    {
        "ray",
        "aiohttp",
        "httpx",
        "requests",
        "urllib.request",
        "threading",
        "socket",
        "subprocess",
        "multiprocessing",
        "os.environ",
        "os.getenv",
        "grid.sources",
        "policies.actors",
        "openadr",
    }
)
"""What pure code never imports or reads: I/O, threads, Ray, the environment, or the impure rooms."""

MAX_MODULE_LINES = 500


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module or name, dotted
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    files: list[Path] = []
    for package in RANKS:
        files += [p for p in (REPO_ROOT / package).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files)


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[Import]:
    """Every import in `source` (the text of `module`), however spelled, with `os.environ` / `os.getenv` reads."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)]) if len(parts) >= node.level - 1 else ""
                stem = ".".join(p for p in (base, node.module or "") if p) or "<above top level>"
            else:
                stem = node.module or ""
            for alias in node.names:
                yield Import(module, f"{stem}.{alias.name}", node.lineno)
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
            yield Import(module, node.args[0].value, node.lineno)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "getenv")
        ):
            yield Import(module, f"os.{node.attr}", node.lineno)


def is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def all_imports() -> list[Import]:
    found: list[Import] = []
    for path in project_files():
        found += imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    return found


def offences(imports: list[Import]) -> list[str]:
    """Every import that breaks the floors or the purity rule, as `module:line imports target (why)`."""
    problems: list[str] = []
    for item in imports:
        own, other = item.module.split(".")[0], item.target.split(".")[0]
        where = f"{item.module}:{item.line} imports {item.target}"
        if other in RANKS and other != own and RANKS[other] >= RANKS[own]:
            problems.append(f"{where} (a package on floor {RANKS[other]} from floor {RANKS[own]})")
        pure = any(is_under(item.module, room) for room in PURE)
        if pure and not any(is_under(item.module, part) for part in IMPURE_PARTS):
            for banned in FORBIDDEN_IN_PURE:
                if is_under(item.target, banned) and not is_under(item.module, banned):
                    problems.append(f"{where} (pure code: no {banned})")
    return problems


def module_graph(imports: list[Import], modules: set[str]) -> dict[str, set[str]]:
    """module -> the project modules it imports (a `from package import name` counts `package.name` if that is a
    module, else `package`)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for item in imports:
        target = item.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != item.module:
            graph[item.module].add(target)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


# The checker itself ------------------------------------------------------------------------------------------------


def test_import_scanner_sees_every_spelling() -> None:
    source = (
        "import os, ray.serve as serve\n"
        "from batch.ledger import Ledger\n"
        "from . import sibling\n"
        "import importlib\n"
        "importlib.import_module('serve_apps.gateway')\n"
        "__import__('policies')\n"
        "token = os.environ.get('X')\n"
        "def late():\n"
        "    import aiohttp\n"
    )
    targets = {item.target for item in imports_of(source, "router.some_module")}
    assert targets == {
        "os",
        "ray.serve",
        "batch.ledger.Ledger",
        "router.sibling",
        "importlib",
        "serve_apps.gateway",
        "policies",
        "os.environ",
        "aiohttp",
    }
    assert {i.target for i in imports_of("from .. import x", "router.sub.mod")} == {"router.x"}


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("router.routing", "import aiohttp\n", "pure code: no aiohttp"),
        ("router.state", "def f():\n    import ray\n", "pure code: no ray"),
        ("grid.headroom", "import threading\n", "pure code: no threading"),
        ("policies.ladder", "import os\nx = os.environ['A']\n", "pure code: no os.environ"),
        ("fleet.config", "from grid.trace import Trace\n", "a package on floor 1 from floor 0"),
        ("grid.trace", "from router.routing import choose_region\n", "a package on floor 2 from floor 1"),
        ("grid.trace", "from openadr.fleet import PowerReading\n", "a package on floor 1 from floor 1"),
        ("policies.control", "from policies.actors.client import LocalClient\n", "pure code: no policies.actors"),
        ("router.state", "from grid.sources.store import SignalStore\n", "pure code: no grid.sources"),
    ],
)
def test_the_rules_catch_an_offending_import(module: str, source: str, why: str) -> None:
    found = offences(list(imports_of(source, module)))
    assert any(why in problem for problem in found), found


def test_the_rules_allow_the_impure_parts_and_downward_imports() -> None:
    allowed = (
        ("grid.sources.poller", "import threading\nimport aiohttp\n"),
        ("policies.actors.control", "import ray\nfrom policies.control import ControlPlane\n"),
        ("serve_apps.app", "from policies.actors.control import control_client\nimport ray\n"),
        ("router.state", "from grid.headroom import assess\nfrom fleet.config import FleetConfig\n"),
    )
    for module, source in allowed:
        assert offences(list(imports_of(source, module))) == [], module


def test_cycle_finder_finds_a_loop_and_only_loops() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# The house -------------------------------------------------------------------------------------------------------


def test_every_import_respects_the_floors_and_purity() -> None:
    problems = offences(all_imports())
    assert not problems, "\n".join(problems)


def test_no_import_cycles_anywhere() -> None:
    modules = {module_name(path) for path in project_files()}
    found = cycles(module_graph(all_imports(), modules))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_module_over_the_size_limit() -> None:
    sizes = {module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in project_files()}
    big = sorted(f"{name}: {lines} lines" for name, lines in sizes.items() if lines > MAX_MODULE_LINES)
    assert not big, f"split these by role (limit {MAX_MODULE_LINES}):\n" + "\n".join(big)


_IMPORT_EVERY_PURE_MODULE = """
import importlib, json, pkgutil, sys
names = []
for room in ROOMS:
    try:
        package = importlib.import_module(room)
    except ModuleNotFoundError:
        continue
    names.append(room)
    names += [info.name for info in pkgutil.walk_packages(package.__path__, room + ".")]
pure = [n for n in names if not any(n == p or n.startswith(p + ".") for p in IMPURE)]
for name in pure:
    importlib.import_module(name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("ray", "aiohttp"))
print(json.dumps({"imported": pure, "loaded": loaded}))
"""


def test_importing_every_pure_module_loads_no_ray_or_aiohttp() -> None:
    script = f"ROOMS = {list(PURE)!r}\nIMPURE = {list(IMPURE_PARTS)!r}\n" + _IMPORT_EVERY_PURE_MODULE
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "router.routing" in report["imported"]
    assert "grid.headroom" in report["imported"]
    loaded: list[str] = report["loaded"]
    assert loaded == [], f"importing the pure rooms loaded {len(loaded)} ray/aiohttp module(s), e.g. {loaded[:5]}"
