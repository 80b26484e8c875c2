"""The function library: ONE table of the univariate (and a few two-argument) functions.

In: a name (``"sin"``, an alias such as ``"arcsin"``, or a power name such as ``"x^2"``).
Out: a frozen :class:`Function` record with its SymPy constructor, exact and singularity-safe
torch callables, domain, label and complexity. Parser, compiler, runtime, symbolic fitting and
printers all read this table; nothing else in kanpiler spells out what a function is.
Stage: library (above errors only). Modules: ``record`` (the ``Function`` type), ``safe``
(domains, singularity-safe torch variants), ``powers`` (``x**p``), ``table`` (the named
functions, constants and lookups), ``custom`` (:func:`register`: user functions).
"""

from __future__ import annotations

from .custom import register, unregister
from .powers import power, power_name
from .record import Function
from .table import (
    ALIASES,
    CONSTANT_NAMES,
    CONSTANTS,
    FUNCTIONS,
    IDENTITY,
    all_names,
    canonical,
    fit_library,
    get,
    names,
    sympy_inverse,
)

__all__ = [
    "Function",
    "power",
    "power_name",
    "FUNCTIONS",
    "ALIASES",
    "CONSTANTS",
    "CONSTANT_NAMES",
    "IDENTITY",
    "names",
    "all_names",
    "canonical",
    "get",
    "fit_library",
    "sympy_inverse",
    "register",
    "unregister",
]
