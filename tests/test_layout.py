"""The package boundaries, checked from the source: who may import whom.

Every module under ``src/splight_runner`` is parsed with ``ast`` (imports inside
functions included) and its imports are held against the rules of the layout:

* ``bootstrap/`` is what the runner puts on the component's PYTHONPATH: the
  ``sitecustomize`` and its package ``splight_capture``, nothing else. It imports
  only the standard library and itself (OpenTelemetry only inside functions, from
  the component's own environment, in ``otel`` and ``instrumentation``), never
  ``splight_runner``; every other part of the runner may import it (the shared
  definitions live there), never the other way round;
* ``component/`` runs inside the component's process under
  ``opentelemetry-instrument``: it imports only the standard library,
  OpenTelemetry, ``bootstrap``, ``engine``, ``pipeline``, ``settings``,
  ``environment``, ``diagnostics``, the top package (``__version__``) and itself;
* ``engine/`` (the Engine protocol) imports no process side, nor ``pipeline``;
* ``pipeline/`` imports no process side;
* no import cycle between the runner's modules at import time;
* every ``__init__.py`` but the top one is empty (start-up is measured);
* the bootstrap, loaded by a CPython started with no site-packages at all, leaves only
  standard-library modules and its own in ``sys.modules``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "splight_runner"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: What each side may not import (prefixes of module names).
FORBIDDEN = {
    f"{PACKAGE}.engine": (
        f"{PACKAGE}.component",
        f"{PACKAGE}.pipeline",
        f"{PACKAGE}.supervisor",
        f"{PACKAGE}.gateway",
        f"{PACKAGE}.dev_engine",
        f"{PACKAGE}.cli",
    ),
    f"{PACKAGE}.pipeline": (
        f"{PACKAGE}.component",
        f"{PACKAGE}.supervisor",
        f"{PACKAGE}.gateway",
        f"{PACKAGE}.dev_engine",
        f"{PACKAGE}.cli",
    ),
}
#: Everything the component side may import from the runner.
COMPONENT_MAY_IMPORT = (
    f"{PACKAGE}.bootstrap",
    f"{PACKAGE}.component",
    f"{PACKAGE}.engine",
    f"{PACKAGE}.pipeline",
    f"{PACKAGE}.settings",
    f"{PACKAGE}.environment",
    f"{PACKAGE}.diagnostics",
)


def _module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py")) if "__pycache__" not in path.parts}


MODULES = _modules()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, *, module_level_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements; with ``module_level_only``, those that run at import (not in functions, not TYPE_CHECKING)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if module_level_only:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                pending.extend(node.orelse)
                continue
        pending.extend(ast.iter_child_nodes(node))


def _resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The modules an import statement names (``from pkg import mod`` names ``pkg.mod`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    found = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.append(candidate if candidate in MODULES else base)
    return found


def imports_of(name: str, *, module_level_only: bool = False) -> set[str]:
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_nodes(tree, module_level_only=module_level_only):
        found.update(_resolve(node, name, is_package))
    return found


def _top(name: str) -> str:
    return name.partition(".")[0]


def test_the_layout_is_where_the_test_looks() -> None:
    for expected in (
        "cli",
        "engine.client",
        "pipeline.exporter",
        "component.distro",
        "supervisor.launch",
        "bootstrap.splight_capture.wire",
    ):
        assert f"{PACKAGE}.{expected}" in MODULES
    assert len(MODULES) >= 30


@pytest.mark.parametrize("side", sorted(FORBIDDEN))
def test_shared_packages_import_no_process_side(side: str) -> None:
    problems = [
        f"{name} imports {imported}"
        for name in MODULES
        if _within(name, side)
        for imported in sorted(imports_of(name))
        if any(_within(imported, forbidden) for forbidden in FORBIDDEN[side])
    ]
    assert problems == []


def test_component_imports_only_stdlib_opentelemetry_and_the_shared_packages() -> None:
    stdlib = sys.stdlib_module_names
    problems = []
    for name in MODULES:
        if not _within(name, f"{PACKAGE}.component"):
            continue
        for imported in sorted(imports_of(name)):
            if _top(imported) in stdlib or _top(imported) == "opentelemetry" or imported == "__future__":
                continue
            if imported == PACKAGE or any(_within(imported, allowed) for allowed in COMPONENT_MAY_IMPORT):
                continue
            problems.append(f"{name} imports {imported}")
    assert problems == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for neighbour in sorted(graph.get(node, ())):
            if state.get(neighbour) == 1:
                return [*path[path.index(neighbour) :], neighbour]
            if neighbour not in state:
                found = visit(neighbour)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_at_import_time() -> None:
    graph = {
        name: {imported for imported in imports_of(name, module_level_only=True) if imported in MODULES} - {name}
        for name in MODULES
    }
    assert _cycle(graph) is None


def test_no_import_cycle_even_through_deferred_imports() -> None:
    """Deferred imports (inside functions) go one way too."""
    graph = {name: {imported for imported in imports_of(name) if imported in MODULES} - {name} for name in MODULES}
    assert _cycle(graph) is None


def test_package_init_files_are_empty() -> None:
    not_empty = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("__init__.py")
        if path.parent != ROOT and path.read_text(encoding="utf-8").strip()
    ]
    assert not_empty == []


BOOTSTRAP = ROOT / "bootstrap"
CAPTURE = f"{PACKAGE}.bootstrap.splight_capture"
#: Bootstrap modules that may use the component's own OpenTelemetry, inside functions only.
_OTEL_USERS = (f"{CAPTURE}.otel", f"{CAPTURE}.instrumentation")


def test_the_bootstrap_folder_holds_only_sitecustomize_and_the_capture_package() -> None:
    top = sorted(p.name for p in BOOTSTRAP.iterdir() if p.name != "__pycache__")
    assert top == ["sitecustomize.py", "splight_capture"]
    inside = sorted(p.name for p in (BOOTSTRAP / "splight_capture").iterdir() if p.name != "__pycache__")
    assert all(name.endswith(".py") for name in inside), inside


def test_the_bootstrap_imports_only_the_standard_library_and_itself() -> None:
    stdlib = sys.stdlib_module_names
    problems = []
    for name in MODULES:
        if not _within(name, f"{PACKAGE}.bootstrap"):
            continue
        at_import = imports_of(name, module_level_only=True)
        for imported in sorted(imports_of(name)):
            if _top(imported) in stdlib or imported == "__future__" or _within(imported, CAPTURE):
                continue
            if _within(imported, "splight_capture"):  # the sitecustomize loads its package under that name
                continue
            if _top(imported) == "opentelemetry" and name in _OTEL_USERS and imported not in at_import:
                continue
            problems.append(f"{name} imports {imported}")
    assert problems == []


def test_nothing_but_the_bootstrap_is_imported_by_the_bootstrap() -> None:
    """The shared definitions live in the bootstrap: the runner imports them, never the other way round."""
    importers = {
        name
        for name in MODULES
        if not _within(name, f"{PACKAGE}.bootstrap")
        for imported in imports_of(name)
        if _within(imported, f"{PACKAGE}.bootstrap")
    }
    assert {f"{PACKAGE}.pipeline.flat", f"{PACKAGE}.supervisor.host"} <= importers


_STDLIB_ONLY_PROBE = """
import importlib, os, runpy, sys
before = set(sys.modules)
runpy.run_path(os.path.join(sys.argv[1], "sitecustomize.py"))["_load_capture"]()  # the bootstrap's own loader
folder = os.path.join(sys.argv[1], "splight_capture")
for file in sorted(os.listdir(folder)):
    if file.endswith(".py") and file != "__init__.py":
        importlib.import_module("splight_capture." + file[:-3])
stdlib = sys.stdlib_module_names
print(" ".join(sorted(
    name for name in set(sys.modules) - before
    if name.partition(".")[0] not in stdlib and not name.startswith("splight_capture")
)))
"""


def test_the_bootstrap_runs_with_no_site_packages_at_all(tmp_path) -> None:
    """A CPython started with ``-S -I`` (no site-packages, no user site, no PYTHONPATH) loads every module."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", _STDLIB_ONLY_PROBE, str(BOOTSTRAP)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
