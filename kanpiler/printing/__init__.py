"""The printers: IR to text, SymPy and LaTeX (SymPy back to IR is ``kanpiler.reader``).

In: an ``Expr`` (or text, a SymPy expression). Out: a re-parseable string with minimal
parentheses (``to_string``, the IR's own text form), a SymPy expression in plain ``Symbol``s
(``to_sympy``), LaTeX (``to_latex``). Stage: printing (above ir and the parser).

>>> from kanpiler import parse, to_string, to_sympy, from_sympy
>>> to_string(parse("(a - b) / (c*d)**2"))
'(a - b)/(c*d)**2'
>>> to_sympy("sin(x)*exp(y)")
exp(y)*sin(x)
>>> from_sympy(to_sympy("x/2 + 1"))
Expr('1 + 1/2*x')
"""

from __future__ import annotations

from ..ir.text import MAX_PRINT_CHARS, to_string
from ..reader import from_sympy
from .latex import to_latex
from .symbolic import MAX_SYMPY_DEPTH, expr_to_sympy, to_sympy

__all__ = [
    "to_string",
    "to_sympy",
    "expr_to_sympy",
    "to_latex",
    "from_sympy",
    "MAX_PRINT_CHARS",
    "MAX_SYMPY_DEPTH",
]
