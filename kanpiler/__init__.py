"""kanpiler: formulas to Kolmogorov-Arnold Networks and back.

    formula text --parse--> IR --passes--> IR --lower--> Layout --build--> MultKAN (torch)
         ^                                                                  | train
         +-- print <-- SymPy <-- simplify <-- graph (networkx) <-- extract <+

In: nothing (this is the facade). Out: the public names, each imported from its stage on first
use. Stage: package facade, above every stage.

>>> import kanpiler
>>> kanpiler.parse("sin(x)*exp(y)")
Expr('sin(x)*exp(y)')

Heavy dependencies (torch, sympy, graphviz) are imported only when a name that needs them is
first used, so ``import kanpiler`` is cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._version import __version__
from .errors import (
    CheckpointError,
    CompileError,
    ConfigError,
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
    "parse": "kanpiler.parser",
    "to_string": "kanpiler.ir",
    "to_sympy": "kanpiler.printing",
    "from_sympy": "kanpiler.reader",
    "to_latex": "kanpiler.printing",
    "canonicalize": "kanpiler.passes",
    # compile
    "compile": "kanpiler.compiler",
    "lower": "kanpiler.lowering",
    "Layout": "kanpiler.layout",
    # views
    "render": "kanpiler.views",
    "to_dot": "kanpiler.views",
    # runtime
    "KANLayer": "kanpiler.runtime",
    "MultKAN": "kanpiler.runtime",
    "fit": "kanpiler.runtime",
    "load": "kanpiler.runtime",
    # edge bases (kanpiler.runtime.bases)
    "Chebyshev": "kanpiler.runtime.bases",
    "Fourier": "kanpiler.runtime.bases",
    "RBF": "kanpiler.runtime.bases",
    "Wavelet": "kanpiler.runtime.bases",
    "ReLUKAN": "kanpiler.runtime.bases",
    "BSRBF": "kanpiler.runtime.bases",
    "Rational": "kanpiler.runtime.bases",
    "GroupRational": "kanpiler.runtime.bases",
    "GRKAN": "kanpiler.runtime.bases",
    # convert
    "to_graph": "kanpiler.convert",
    "auto_symbolic": "kanpiler.convert",
    "symbolic_pipeline": "kanpiler.convert",
    "snap_constants": "kanpiler.convert",
    "round_constants": "kanpiler.convert",
    "tree": "kanpiler.convert",
    "formula": "kanpiler.convert",
    # discovery (KANRegressor needs scikit-learn)
    "discover": "kanpiler.discovery",
    "Discovery": "kanpiler.discovery",
    "KANRegressor": "kanpiler.discovery.estimator",
}

#: public submodules reached as attributes (``kanpiler.datasets.make``), imported on first use
_SUBMODULES = ("datasets",)


__all__ = [
    "__version__",
    "KanpilerError",
    "FormulaSyntaxError",
    "UnknownFunctionError",
    "UnsupportedError",
    "CompileError",
    "ConfigError",
    "VerifyError",
    "ShapeError",
    "FitError",
    "CheckpointError",
    "RenderError",
    *_LAZY,
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = import_module(f"kanpiler.{name}")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kanpiler' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
