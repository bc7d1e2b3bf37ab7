"""The package's layering (docs/architecture.md), checked on the source: every ``import`` of
every module under ``plip/`` (module level and function level; ``if TYPE_CHECKING:`` blocks
excluded, they never run) is read with :mod:`ast`.

- a layer imports only its own layer and the layers below it;
- the module graph has no import circle;
- nothing outside ``plip.app`` imports ``plip.app`` (the CLI, the demo);
- ``import plip`` loads no timm, numba, scipy, ``plip.training`` or ``plip.downstream``
  (checked in a fresh interpreter: ``sys.modules`` after the import).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "plip"

#: bottom up; a module may import modules of its own layer or of a lower one
LAYERS: list[tuple[str, ...]] = [
    ("plip.errors", "plip.version", "plip.utils"),
    ("plip.tokenizer", "plip.models"),
    ("plip.data",),
    ("plip.hub",),
    ("plip.inference",),
    ("plip.evaluation",),
    ("plip.downstream", "plip.timm"),
    ("plip.training",),
    ("plip.export", "plip.index", "plip.integrations"),
    ("plip.app",),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """plip modules imported by ``name`` at run time (packages resolved to their modules)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "plip" or target.startswith("plip."):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "plip" or a.name.startswith("plip."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int | None:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def test_every_module_belongs_to_a_layer(graph):
    unplaced = sorted(m for m in graph if m != "plip" and _layer(m) is None)
    assert unplaced == [], f"add these to LAYERS and docs/architecture.md: {unplaced}"


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = sorted(
        f"{src} -> {dst}"
        for src, targets in graph.items() if src != "plip"
        for dst in targets if dst != "plip" and _layer(dst) > _layer(src)
    )
    assert upward == []
    assert all(_layer(d) is not None for d in graph["plip"]), "the root package imports only layered modules"


def test_models_import_only_the_foundation(graph):
    """The pure model core: tensors in, tensors out; it knows nothing of data, hub or inference."""
    outside = sorted(
        f"{src} -> {dst}" for src, targets in graph.items() if src.startswith("plip.models")
        for dst in targets if not dst.startswith("plip.models") and _layer(dst) != 0
    )
    assert outside == []


def test_nothing_outside_the_app_imports_the_app(graph):
    offenders = sorted(
        f"{src} -> {dst}" for src, targets in graph.items() if not src.startswith("plip.app")
        for dst in targets if dst.startswith("plip.app")
    )
    assert offenders == []


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan) with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return circles


def test_the_import_graph_has_no_circle(graph):
    assert _circles(graph) == []


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path):
    """The walker itself: a planted upward import and a planted circle are found."""
    pkg = tmp_path / "plip"
    (pkg / "models").mkdir(parents=True)
    (pkg / "app").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "app" / "__init__.py").write_text("")
    (pkg / "models" / "a.py").write_text("def f():\n    from ..app import b\n")
    (pkg / "app" / "b.py").write_text("from ..models import a\n")
    modules = {"plip.models.a": pkg / "models" / "a.py", "plip.app.b": pkg / "app" / "b.py",
               "plip.models": pkg / "models" / "__init__.py", "plip.app": pkg / "app" / "__init__.py"}
    assert _imports("plip.models.a", modules["plip.models.a"], modules) == {"plip.app.b"}
    assert _imports("plip.app.b", modules["plip.app.b"], modules) == {"plip.models.a"}
    assert _layer("plip.app.b") > _layer("plip.models.a")
    planted = {m: _imports(m, p, modules) for m, p in modules.items()}
    assert _circles(planted) == [["plip.app.b", "plip.models.a"]]


def test_import_plip_stays_light():
    code = (
        "import json, sys, plip\n"
        "heavy = ('timm', 'numba', 'scipy', 'plip.training', 'plip.downstream', 'plip.app')\n"
        "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('plip') else '.'.join(m.split('.')[:2])"
        " for m in sys.modules if m.startswith(heavy)})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_help_of_the_training_command_needs_no_torch():
    """`plip train --help` (task names, recipes, options) is read without importing torch, and so
    is `import plip.training` (its names load on first use)."""
    code = (
        "import contextlib, io, sys, plip.training\n"
        "from plip.app.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        "    main(['train', '--help'])\n"
        "assert 'pretrain_swin_b' in out.getvalue(), out.getvalue()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_a_layer_table_entry_exists_for_every_top_level_package():
    names = {f"plip.{p.name}" for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names |= {f"plip.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    listed = {name for layer in LAYERS for name in layer}
    assert sorted(names - listed) == []
