"""The function record: everything kanpiler knows about one function, in one frozen object.

In: nothing. Out: :class:`Function` (constructors, exact and safe torch callables, domain,
label, complexity and the facts the stages read: parity, power form, exactness, SymPy class,
affine-canonical rule, inverse). Stage: library.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Function:
    """One library function ``f``.

    ``sympy_fn(*args)`` builds the SymPy expression; ``torch_fn(*tensors)`` computes the exact
    value; ``safe_fn`` agrees with ``torch_fn`` wherever the function is real and finite (up to
    thresholds far below float precision) and never returns NaN/inf, so training stays finite.
    ``in_domain(x)`` is a boolean mask of where ``f`` is real-valued and finite.
    """

    name: str
    sympy_fn: Callable[..., Any] = field(repr=False, compare=False)
    torch_fn: Callable[..., Any] = field(repr=False, compare=False)
    safe_fn: Callable[..., Any] = field(repr=False, compare=False)
    in_domain: Callable[[Any], Any] = field(repr=False, compare=False)
    domain_text: str = "all reals"
    arity: int = 1
    aliases: tuple[str, ...] = ()
    label: str = ""
    latex: str = ""
    complexity: int = 2
    #: exponent when this is the power function x**p (``None`` otherwise)
    power: float | None = None
    #: whether it may appear in the default symbolic-fitting library
    fit: bool = True
    #: ``"odd"`` (f(-x) = -f(x)), ``"even"`` (f(-x) = f(x)) or ``"none"``
    parity: str = "none"
    #: p with f(u) = u**p wherever f is real (``sqrt`` 0.5, ``square`` 2, x**p itself p)
    power_form: float | None = None
    #: f(u)**p = f(p*u) for every real p (``exp``): a power of f is one edge
    power_scales_argument: bool = False
    #: exact value at an int/Fraction constant (``abs``, ``sign``, ``square``), else ``None``
    exact_value: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)
    #: name of the SymPy class that builds ``f`` (``"Abs"``), for reading SymPy back
    sympy_class: str = ""
    #: period in the argument (``2*pi`` for sin and cos), else ``None``
    period: float | None = None
    #: rule giving the canonical ``(a, b, c, d)`` of ``c*f(a*x+b)+d`` before the parity rule
    #: (e.g. ``exp``: the shift becomes a scale); ``None``: parity and period alone
    affine: Callable[..., tuple[float, float, float, float]] | None = field(
        default=None, repr=False, compare=False
    )
    #: canonical name of the inverse function on the principal branch, else ``None``
    inverse: str | None = None

    def __call__(self, *xs: Any) -> Any:
        return self.torch_fn(*xs)

    def to_sympy(self, *args: Any) -> Any:
        return self.sympy_fn(*args)

    @property
    def display(self) -> str:
        return self.label or self.name

    def canonical_affine(
        self, a: float, b: float, c: float, d: float
    ) -> tuple[float, float, float, float]:
        """Equivalent ``(a, b, c, d)`` of ``c*f(a*x+b)+d`` in canonical form, from this record's
        facts alone: its ``affine`` rule, else its ``parity`` (``a > 0``) and ``period``.

        >>> from kanpiler import library
        >>> library.get("sin").canonical_affine(-2.0, 1.0, 3.0, 0.0)
        (2.0, -1.0, -3.0, 0.0)
        """
        if self.affine is not None:  # the function's own rule (it covers its parity)
            return self.affine(a, b, c, d)
        if a < 0 and self.parity == "odd":  # f(-u) = -f(u)
            a, b, c = -a, -b, -c
        elif a < 0 and self.parity == "even":  # f(-u) = f(u)
            a, b = -a, -b
        if self.period is not None:
            b = math.remainder(b, self.period)
        return (a, b, c, d)


__all__ = ["Function"]
