"""IR to LaTeX, through SymPy's printer.

In: anything ``to_sympy`` accepts. Out: a LaTeX string. Stage: printing.
"""

from __future__ import annotations

from typing import Any

from .symbolic import _sympy, to_sympy


def to_latex(obj: Any, variables: Any = None) -> str:
    """LaTeX of anything :func:`to_sympy` accepts.

    >>> to_latex("sqrt(x)/2")
    '\\\\frac{\\\\sqrt{x}}{2}'
    """
    return _sympy().latex(to_sympy(obj, variables))


__all__ = ["to_latex"]
