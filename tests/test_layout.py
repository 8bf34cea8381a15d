"""The import rules of docs/ARCHITECTURE.md, checked on the source: every ``import`` statement,
including the deferred ones inside functions, of every module in core/, pages/ and app.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Which parts of core/ each part may import (besides itself). A part is a package of core/
# or one of its top-level modules; the order is the order of the pipeline, lower first.
FOUNDATION = {"core.errors", "core.paths", "core.disk", "core.names", "core.network", "core.access"}
MAY_IMPORT = {
    "core.errors": set(),
    "core.paths": set(),
    "core.disk": {"core.errors"},
    "core.names": set(),
    "core.network": set(),
    "core.access": {"core.errors", "core.names", "core.paths"},
    "core.inputs": FOUNDATION,
    "core.embedding": FOUNDATION,
    "core.storage": FOUNDATION | {"core.embedding"},
    "core.learning": FOUNDATION | {"core.storage"},
    "core.ingestion": FOUNDATION | {"core.inputs", "core.embedding", "core.storage"},
    "core.prediction": FOUNDATION | {"core.inputs", "core.embedding", "core.storage", "core.learning", "core.ingestion"},
    "core.evaluate": FOUNDATION | {"core.inputs", "core.embedding", "core.storage", "core.learning", "core.ingestion"},
    "core.exchange": FOUNDATION | {"core.inputs", "core.embedding", "core.storage", "core.learning"},
    "core.views": FOUNDATION
    | {"core.inputs", "core.embedding", "core.storage", "core.learning", "core.ingestion", "core.prediction", "core.evaluate"},
    "core.serving": FOUNDATION
    | {"core.inputs", "core.embedding", "core.storage", "core.learning", "core.ingestion", "core.prediction", "core.evaluate"},
    "core.cli": {"core"},  # the command line may use everything
    "core.__main__": {"core.cli"},
    "core": {"core"},  # core/__init__.py: the public API re-exports from every part
}
# Third-party packages a part must not import.
FORBIDDEN_LIBRARIES = {
    "core": {"streamlit"},
    "pages": {"torch", "torchvision", "faiss", "open_clip", "sentence_transformers", "efficientnet_lite_pytorch", "dlib"},
}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """``core.storage.store`` -> ``core.storage``; ``core.ingestion`` -> ``core.ingestion``; ``core`` -> ``core``."""
    return ".".join(module.split(".")[:2])


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every absolute module name ``path`` imports, with its line; relative imports resolved."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # ``from core import storage`` imports the module core.storage, not only the package.
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names if name == "core"]
    return found


def _core_modules() -> list[Path]:
    return sorted((ROOT / "core").rglob("*.py"))


def find_layer_violations(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One line per import in core/ that its part may not make."""
    problems = []
    for path in paths:
        source = _part(_module_name(path, root))
        allowed = MAY_IMPORT.get(source)
        if allowed is None:
            problems.append(f"{path.relative_to(root)}: part {source} has no import rule in tests/test_layout.py")
            continue
        for line, name in _imports(path, root):
            if name != "core" and not name.startswith("core."):
                continue
            target = _part(name)
            if target == source or target in allowed or "core" in allowed:
                continue
            problems.append(f"{path.relative_to(root)}:{line}: {source} must not import {name}")
    return problems


def find_library_violations(paths: list[Path], forbidden: set[str], root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line}: must not import {name}"
        for path in paths
        for line, name in _imports(path, root)
        if name.split(".")[0] in forbidden
    ]


def test_every_part_of_core_has_a_rule():
    parts = {_part(_module_name(path)) for path in _core_modules()}
    assert parts <= set(MAY_IMPORT), sorted(parts - set(MAY_IMPORT))


def test_core_parts_import_only_what_the_layers_allow():
    assert find_layer_violations(_core_modules()) == []


def test_core_never_imports_streamlit():
    assert find_library_violations(_core_modules(), FORBIDDEN_LIBRARIES["core"]) == []


def test_pages_never_import_torch_or_faiss():
    pages = sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    assert find_library_violations(pages, FORBIDDEN_LIBRARIES["pages"]) == []


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("core/storage/bad.py", "from core.learning.heads import HeadConfig\n", True),  # storage below learning
        ("core/storage/bad.py", "def f():\n    from core.ingestion import ingest\n", True),  # deferred imports count too
        ("core/embedding/bad.py", "from core import storage\n", True),  # `from core import X` is core.X
        ("core/inputs/bad.py", "from ..storage import store\n", True),  # relative imports are resolved
        ("core/learning/bad.py", "import streamlit as st\n", True),
        ("core/learning/bad.py", "from core.storage.projects import Project\n", False),
        ("core/views/bad.py", "from core.prediction import predict\n", False),
        ("core/newpart/bad.py", "import numpy\n", True),  # a new package needs its rule first
    ],
)
def test_the_checker_catches_a_forbidden_import(tmp_path, module, source, broken):
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    problems = find_layer_violations([path], tmp_path) + find_library_violations([path], FORBIDDEN_LIBRARIES["core"], tmp_path)
    assert bool(problems) is broken, problems


def test_pages_checker_catches_torch(tmp_path):
    page = tmp_path / "pages" / "bad.py"
    page.parent.mkdir()
    page.write_text("import faiss\nfrom torch import nn\nimport numpy\n")
    assert [p.split(": ")[-1] for p in find_library_violations([page], FORBIDDEN_LIBRARIES["pages"], tmp_path)] == [
        "must not import faiss",
        "must not import torch",
    ]


def _defined_names(path: Path) -> set[str]:
    """The names a module defines itself at top level (functions, classes, assignments), not those it imports."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                targets = target.elts if isinstance(target, ast.Tuple) else [target]
                names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def find_passed_on_names(paths: list[Path], root: Path = ROOT) -> list[str]:
    """One line per ``from core.x.y import name`` where module ``core.x.y`` only imported ``name`` itself.

    A package's ``__init__`` may re-export; a module may not pass on another module's name, so each
    name has one home and one import path besides its package.
    """
    defined: dict[str, set[str]] = {}
    for path in sorted((root / "core").rglob("*.py")):
        if path.name != "__init__.py":
            defined[_module_name(path, root)] = _defined_names(path) | {"logger", "log"}
    problems = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module in defined:
                for alias in node.names:
                    if alias.name not in defined[node.module] and f"{node.module}.{alias.name}" not in defined:
                        problems.append(f"{path.relative_to(root)}:{node.lineno}: {alias.name} is not defined in {node.module}")
    return problems


def test_names_are_imported_from_the_module_that_defines_them():
    paths = _core_modules() + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    paths += sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))
    assert find_passed_on_names(paths) == []


@pytest.mark.parametrize(
    ("importer", "broken"),
    [
        ("from core.good.defines import Thing\n", False),
        ("from core.good.passes import Thing\n", True),  # passes.py only imported it
        ("from core.good import Thing\n", False),  # a package's __init__ may re-export
    ],
)
def test_the_checker_catches_a_passed_on_name(tmp_path, importer, broken):
    package = tmp_path / "core" / "good"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from core.good.defines import Thing\n")
    (package / "defines.py").write_text("class Thing:\n    pass\n")
    (package / "passes.py").write_text("from core.good.defines import Thing\n")
    (tmp_path / "user.py").write_text(importer)
    assert bool(find_passed_on_names([tmp_path / "user.py"], tmp_path)) is broken
