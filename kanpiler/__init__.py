"""kanpiler: formulas to Kolmogorov-Arnold Networks and back.

    formula text --parse--> IR --passes--> IR --lower--> MultKAN layout --build--> torch module
         ^                                                                          | train
         +-- print <-- SymPy <-- simplify <-- graph (networkx) <-- extract <--------+

>>> import kanpiler
>>> kanpiler.parse("sin(x)*exp(y)")
Expr('sin(x)*exp(y)')

Heavy dependencies (torch, sympy, graphviz) are imported only when a name that needs them is
first used, so ``import kanpiler`` is cheap.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

from ._version import __version__
from .errors import (
    CheckpointError,
    CompileError,
    FitError,
    FormulaSyntaxError,
    KanpilerError,
    RenderError,
    ShapeError,
    UnknownFunctionError,
    UnsupportedError,
    VerifyError,
)

# public name -> module that defines it (imported on first use)
_LAZY = {
    # parse / IR / printing
    "Expr": "kanpiler.ir",
    "Op": "kanpiler.ir",
    "parse": "kanpiler.parse",
    "to_string": "kanpiler.printing",
    "to_sympy": "kanpiler.printing",
    "from_sympy": "kanpiler.printing",
    "to_latex": "kanpiler.printing",
    "canonicalize": "kanpiler.passes",
    # compile
    "compile": "kanpiler.compiler",
    "lower": "kanpiler.compiler",
    "Layout": "kanpiler.layout",
    "render": "kanpiler.render",
    # runtime
    "KANLayer": "kanpiler.runtime",
    "MultKAN": "kanpiler.runtime",
    "fit": "kanpiler.runtime",
    "load": "kanpiler.runtime",
    # convert
    "to_graph": "kanpiler.convert",
    "auto_symbolic": "kanpiler.convert",
    "symbolic_pipeline": "kanpiler.convert",
    "snap_constants": "kanpiler.convert",
    "tree": "kanpiler.convert",
}

__all__ = [
    "__version__",
    "KanpilerError",
    "FormulaSyntaxError",
    "UnknownFunctionError",
    "UnsupportedError",
    "CompileError",
    "VerifyError",
    "ShapeError",
    "FitError",
    "CheckpointError",
    "RenderError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kanpiler' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(ModuleType):
    """Keeps ``kanpiler.parse``/``lower``/``render`` the functions: importing a submodule of the
    same name (``kanpiler/parse.py``) would otherwise bind the module over the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and name in _LAZY:
            return  # the submodule stays reachable through sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
