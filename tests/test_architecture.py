"""Imports flow one way through kanpiler's stages, and none hides inside a function.

An AST walk over ``kanpiler/`` (nothing is imported): every module belongs to a stage, and a
module may import only from its own stage or an earlier one. Imports inside functions are
refused except the documented lazy imports of optional heavy dependencies (``LAZY_OK``) and the
command line's per-subcommand stages (``LAZY_INTERNAL``). ``import kanpiler`` stays cheap.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kanpiler

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kanpiler"

#: the stages, earliest first; a module may import from its own stage or an earlier one.
#: Stages on one line are siblings: neither may import the other.
STAGES: list[tuple[str, ...]] = [
    ("errors",),
    ("library",),
    ("ir",),
    ("parser",),
    ("printing",),
    ("passes",),
    ("layout",),
    ("lowering",),
    ("numerics",),
    ("runtime",),
    ("compiler", "convert", "physics"),
    ("views", "discovery"),
    ("facade",),
    ("cli",),
]

#: module (dotted, or a package prefix ending in ".") -> stage
MODULE_STAGE = {
    "kanpiler": "facade",
    "kanpiler.__main__": "cli",
    "kanpiler._version": "errors",
    "kanpiler.errors": "errors",
    "kanpiler.library.": "library",
    "kanpiler.ir.": "ir",
    "kanpiler.reader": "parser",
    "kanpiler.parser": "parser",
    "kanpiler.printing.": "printing",
    "kanpiler.passes": "passes",
    "kanpiler.layout": "layout",
    "kanpiler.lowering.": "lowering",
    "kanpiler.numerics": "numerics",
    "kanpiler.datasets": "numerics",
    "kanpiler.runtime.": "runtime",
    "kanpiler.compiler": "compiler",
    "kanpiler.convert.": "convert",
    "kanpiler.physics.": "physics",
    "kanpiler.views.": "views",
    "kanpiler.discovery.": "discovery",
    "kanpiler.cli": "cli",
}

#: optional heavy dependencies that may be imported inside a function, so that importing the
#: module that needs them (and ``import kanpiler``) stays cheap until they are used
LAZY_OK = frozenset(
    {"torch", "sympy", "numpy", "scipy", "matplotlib", "graphviz", "networkx", "tqdm", "triton"}
)

#: kanpiler's own stages imported inside functions, with the reason
LAZY_INTERNAL = {
    # each subcommand imports the stages it runs: `kanpiler --help` and `kanpiler parse` never
    # load torch
    "kanpiler.cli": frozenset(
        {
            "kanpiler.parser",
            "kanpiler.passes",
            "kanpiler.printing",
            "kanpiler.views",
            "kanpiler._version",
            "kanpiler.runtime.domain",
        }
    ),  # fmt: skip
}


def _rank(stage: str) -> int:
    return next(i for i, group in enumerate(STAGES) if stage in group)


def stage_of(module: str) -> str | None:
    for key, stage in MODULE_STAGE.items():
        if module == key or (key.endswith(".") and (module + ".").startswith(key)):
            return stage
    return None


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The kanpiler modules an import statement reaches (third-party ones as their top name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        keep = len(base) - node.level + (1 if _is_package(module) else 0)
        prefix = ".".join(base[:keep])
        base_name = f"{prefix}.{node.module}" if node.module else prefix
    else:
        base_name = node.module or ""
    subs = [f"{base_name}.{a.name}" for a in node.names if f"{base_name}.{a.name}" in MODULES]
    return subs or [base_name]


def _imports(module: str, tree: ast.Module) -> list[tuple[ast.AST, str, bool]]:
    """(node, target, inside_a_function) for every import in the module."""
    found: list[tuple[ast.AST, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend((child, t, in_function) for t in _targets(module, child))
            visit(child, inner)

    visit(tree, False)
    return found


def _all_imports() -> list[tuple[str, int, str, bool]]:
    rows = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, target, lazy in _imports(module, tree):
            rows.append((module, getattr(node, "lineno", 0), target, lazy))
    return rows


IMPORTS = _all_imports()


def test_every_module_has_a_stage():
    missing = [m for m in MODULES if stage_of(m) is None]
    assert not missing, f"place these modules in a stage (MODULE_STAGE): {missing}"


def test_imports_flow_from_earlier_stages_only():
    bad = []
    for module, line, target, _ in IMPORTS:
        if not target.startswith("kanpiler"):
            continue
        src, dst = stage_of(module), stage_of(target)
        if src is None or dst is None or src == dst:
            continue
        if _rank(dst) >= _rank(src):
            bad.append(f"{module}:{line} ({src}) imports {target} ({dst})")
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_no_imports_inside_functions_but_documented_lazy_ones():
    bad = []
    for module, line, target, lazy in IMPORTS:
        if not lazy or target.split(".")[0] in LAZY_OK:
            continue
        if target in LAZY_INTERNAL.get(module, ()):
            continue
        bad.append(f"{module}:{line} imports {target} inside a function")
    assert not bad, "move these imports to the top of the module:\n" + "\n".join(bad)


def test_ir_never_imports_printers_and_runtime_never_imports_convert_or_compiler():
    for module, line, target, _ in IMPORTS:
        if stage_of(module) == "ir":
            assert stage_of(target) not in ("printing", "parser"), f"{module}:{line} {target}"
        if stage_of(module) == "runtime":
            assert stage_of(target) not in ("convert", "compiler"), f"{module}:{line} {target}"


def test_the_checker_sees_a_violation():
    # the walk itself: a later-stage import is found and mapped (so the tests above can fail)
    tree = ast.parse("from ..convert import graph\n\ndef f():\n    from ..compiler import lower\n")
    found = _imports("kanpiler.runtime.multkan", tree)
    targets = [(t, lazy) for _, t, lazy in found]
    assert targets == [("kanpiler.convert.graph", False), ("kanpiler.compiler", True)]
    assert _rank(stage_of("kanpiler.convert.graph")) > _rank(stage_of("kanpiler.runtime.x"))


@pytest.mark.parametrize("name", ["kanpiler", "kanpiler.parser", "kanpiler.lowering"])
def test_importing_the_front_is_cheap(name):
    code = f"import sys, {name}; print('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_no_module_shares_a_name_with_a_public_function():
    code = (
        "import importlib, kanpiler\n"
        "names = [n for n in kanpiler.__all__ if n[0].islower() and not n.startswith('_')\n"
        "         and n not in kanpiler._SUBMODULES]\n"
        "import kanpiler.parser, kanpiler.lowering, kanpiler.views, kanpiler.compiler\n"
        "import kanpiler.printing, kanpiler.convert, kanpiler.runtime\n"
        "bad = [n for n in names if not callable(getattr(kanpiler, n))]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    public = set(kanpiler.__all__) - set(kanpiler._SUBMODULES)  # those ARE the modules
    shadowing = [m for m in MODULES if m.count(".") == 1 and m.split(".")[1] in public]
    assert not shadowing, shadowing
