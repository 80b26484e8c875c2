"""The passes: pure, value-preserving rewrites of the IR.

In: an ``Expr`` (raw from the parser, or already rewritten). Out: an equivalent ``Expr``.
Stage: passes, between parse and lower. ``canonicalize`` is the standard pipeline; ``verify``
checks the invariants a stage promises and names the rule that broke.

>>> from kanpiler import parse
>>> canonicalize(parse("x - x/2 + 3*sin(y) - sin(y)*1"))
Expr('1/2*x + 2*sin(y)')

Every pass is ``Expr -> Expr``, written with ``ir.transform`` (iterative, so any depth works).
"Value-preserving" means equal wherever the input is real and finite; a few laws (``x**0 -> 1``,
``0*x -> 0``, ``x*x**-1 -> 1``) also give a value where the input had none, as SymPy does.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import Any

from . import library
from .errors import UnsupportedError, VerifyError
from .ir import Expr, Number, Op, const, rebuild, to_string, transform, walk

HALF = Fraction(1, 2)
#: bound on the fixed-point iterations of ``canonicalize``
MAX_ROUNDS = 8
#: exact integer powers are folded only below this many bits (2**4096 is ~1e1233)
MAX_EXACT_BITS = 4096


def _node(op: Op, *args: Expr, arg: Any = None) -> Expr:
    return Expr(op, args, arg)


def _mul(*factors: Expr) -> Expr:
    return factors[0] if len(factors) == 1 else Expr(Op.MUL, factors)


def _add(*terms: Expr) -> Expr:
    return terms[0] if len(terms) == 1 else Expr(Op.ADD, terms)


# ---- desugar --------------------------------------------------------------------------------


def _min_max(sign: int) -> Any:
    # min(a, b) = (a + b)/2 - |a - b|/2 ;  max(a, b) = (a + b)/2 + |a - b|/2
    def rule(a: Expr, b: Expr) -> Expr:
        gap = _node(Op.CALL, _add(a, _mul(const(-1), b)), arg="abs")
        return _add(_mul(const(HALF), a), _mul(const(HALF), b), _mul(const(sign * HALF), gap))

    return rule


_DESUGAR_CALLS = {"min": _min_max(-1), "max": _min_max(+1)}


def _desugar_rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
    if node.op is Op.NEG:  # -x -> (-1)*x
        return _mul(const(-1), args[0])
    if node.op is Op.RECIP:  # 1/x -> x**-1
        return _node(Op.POW, args[0], const(-1))
    if node.op is Op.CALL and node.arg in _DESUGAR_CALLS:
        return _DESUGAR_CALLS[node.arg](*args)
    return rebuild(node, args)


def desugar(expr: Expr) -> Expr:
    """Remove NEG, RECIP, ``min`` and ``max`` (exact rewrites into ADD, MUL, POW, abs)."""
    return transform(expr, _desugar_rule)


# ---- flatten --------------------------------------------------------------------------------


def _flatten_rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
    if node.op in (Op.ADD, Op.MUL):  # (a + b) + c -> a + b + c ; (a*b)*c -> a*b*c
        flat = [g for a in args for g in (a.args if a.op is node.op else (a,))]
        return flat[0] if len(flat) == 1 else Expr(node.op, tuple(flat))
    return rebuild(node, args)


def flatten(expr: Expr) -> Expr:
    """Splice nested sums into sums and nested products into products."""
    return transform(expr, _flatten_rule)


# ---- fold_constants -------------------------------------------------------------------------


def _finite(value: Number) -> Number | None:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _exact_pow(base: Number, exponent: Number) -> Number | None:
    """base**exponent as an exact or float number, or None when it is not a real number."""
    try:
        if isinstance(exponent, int) and not isinstance(base, float):
            if base == 0 and exponent < 0:
                return None
            base = Fraction(base)
            bits = max(abs(base.numerator).bit_length(), base.denominator.bit_length(), 1)
            if abs(exponent) * bits > MAX_EXACT_BITS:
                return None
            return base**exponent
        if isinstance(base, float) or isinstance(exponent, float):
            if base < 0 and not float(exponent).is_integer():
                return None
            return _finite(float(base) ** float(exponent))
    except (OverflowError, ZeroDivisionError):
        return None
    return None  # rational base, non-integer rational exponent: kept exact as a power


def _fold_sum(args: tuple[Expr, ...]) -> Expr:
    rest = [a for a in args if a.op is not Op.CONST]
    total = _finite(sum((a.arg for a in args if a.op is Op.CONST), 0))
    if total is None:
        return Expr(Op.ADD, args)
    if total != 0 or not rest:  # x + 0 -> x ; the constant goes last
        rest.append(const(total))
    return _add(*rest)


def _fold_product(args: tuple[Expr, ...]) -> Expr:
    rest = [a for a in args if a.op is not Op.CONST]
    product = _finite(math.prod(a.arg for a in args if a.op is Op.CONST))
    if product is None:
        return Expr(Op.MUL, args)
    if product == 0:  # 0*x -> 0
        return const(product)
    if product != 1 or not rest:  # x*1 -> x ; the constant goes first
        rest.insert(0, const(product))
    return _mul(*rest)


def _fold_power(node: Expr, base: Expr, exponent: Expr) -> Expr:
    if exponent.op is Op.CONST and exponent.arg == 1:  # x**1 -> x
        return base
    if exponent.op is Op.CONST and exponent.arg == 0:  # x**0 -> 1
        return const(1)
    if base.op is Op.CONST and base.arg == 1:  # 1**x -> 1
        return const(1)
    if base.op is Op.CONST and exponent.op is Op.CONST:  # c1**c2 -> c3 when real
        value = _exact_pow(base.arg, exponent.arg)
        if value is not None:
            return const(value)
    return rebuild(node, (base, exponent))


def _exact_call(node: Expr, args: tuple[Expr, ...]) -> Expr | None:
    """A call whose library record gives an exact value at a constant (abs(-2) -> 2)."""
    if node.op is not Op.CALL or len(args) != 1 or args[0].op is not Op.CONST:
        return None
    exact = library.FUNCTIONS[node.arg].exact_value
    return None if exact is None else const(exact(args[0].arg))


def _fold_rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
    exact = _exact_call(node, args)
    if exact is not None:
        return exact
    if node.op is Op.ADD:
        return _fold_sum(args)
    if node.op is Op.MUL:
        return _fold_product(args)
    if node.op is Op.POW:
        return _fold_power(node, *args)
    if node.op is Op.NEG and args[0].op is Op.CONST:  # -(c) -> (-c)
        return const(-args[0].arg)
    if node.op is Op.RECIP and args[0].op is Op.CONST and args[0].arg != 0:  # 1/(c) -> (1/c)
        a = args[0].arg
        return const(1 / a if isinstance(a, float) else Fraction(1) / a)
    return rebuild(node, args)


def fold_constants(expr: Expr) -> Expr:
    """Exact arithmetic on constants: one CONST per sum (last) and product (first).

    Drops ``+0`` and ``*1``, folds ``x**1``, ``x**0``, ``1**x`` and powers of constants that
    stay real. Ints and Fractions stay exact; a float anywhere makes the result a float.
    Named constants and calls are kept symbolic (see :func:`fold_numeric`).
    """
    return transform(expr, _fold_rule)


# ---- combine_like_terms ---------------------------------------------------------------------


def _split_coefficient(term: Expr) -> tuple[Number, tuple[Expr, ...]]:
    if term.op is Op.CONST:
        return term.arg, ()
    if term.op is Op.MUL:
        first = term.args[0]
        return (first.arg, term.args[1:]) if first.op is Op.CONST else (1, term.args)
    return 1, (term,)


def _combine_sum(args: tuple[Expr, ...]) -> Expr:
    # 2*t + 3*t -> 5*t (t a product of factors, in any order)
    groups: dict[frozenset, list[Any]] = {}
    for term in args:
        coef, factors = _split_coefficient(term)
        key = frozenset(Counter(factors).items())
        if key in groups:
            groups[key][0] += coef
        else:
            groups[key] = [coef, factors]
    terms = []
    for coef, factors in groups.values():
        if coef == 0 and factors:
            continue
        if not factors:
            terms.append(const(coef))
        else:
            terms.append(_mul(*factors) if coef == 1 else _mul(const(coef), *factors))
    return _add(*terms) if terms else const(0)


def _combine_product(args: tuple[Expr, ...]) -> Expr:
    # x**a * x**b -> x**(a + b) for constant a, b  (x*x -> x**2)
    bases: dict[Expr, list[Any]] = {}
    others: list[Expr] = []
    for factor in args:
        if factor.op is Op.CONST:
            others.append(factor)
            continue
        base, exponent = factor, 1
        if factor.op is Op.POW and factor.args[1].op is Op.CONST:
            base, exponent = factor.args[0], factor.args[1].arg
        if base in bases:
            bases[base][0] += exponent
        else:
            bases[base] = [exponent]
    factors = others + [b if e == 1 else _node(Op.POW, b, const(e)) for b, (e,) in bases.items()]
    return _mul(*factors)


def _combine_rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
    if node.op is Op.ADD:
        return _combine_sum(args)
    if node.op is Op.MUL:
        return _combine_product(args)
    if node.op is Op.POW:
        base, exponent = args
        inner = base.args[1] if base.op is Op.POW else None
        n = exponent.arg if exponent.op is Op.CONST else None
        if inner is not None and inner.op is Op.CONST and isinstance(n, int):
            return _node(Op.POW, base.args[0], const(inner.arg * n))  # (x**a)**n -> x**(a*n)
    return rebuild(node, args)


def combine_like_terms(expr: Expr) -> Expr:
    """Collect equal terms of sums and equal bases of products (constant exponents)."""
    return transform(expr, _combine_rule)


# ---- the standard pipeline --------------------------------------------------------------


def canonicalize(expr: Expr) -> Expr:
    """desugar, then flatten / fold / combine to a fixed point (at most ``MAX_ROUNDS``).

    The result holds only CONST, NAMED, VAR, ADD, MUL, POW and one-argument CALLs; sums and
    products are flat with two or more arguments and at most one constant each.

    >>> from kanpiler import parse
    >>> canonicalize(parse("x*x*y/x + max(0, 2)"))
    Expr('x*y + 2')
    """
    expr = flatten(desugar(expr))
    for _ in range(MAX_ROUNDS):
        new = fold_constants(flatten(combine_like_terms(fold_constants(expr))))
        if new is expr:
            break
        expr = new
    return expr


# ---- numeric folding (for the compiler) -----------------------------------------------------


def _call_value(name: str, values: list[Number]) -> float:
    import torch  # heavy: only a constant call (sin(1)) needs it, and only at compile time

    xs = [torch.tensor(float(v), dtype=torch.float64) for v in values]
    return float(library.get(name).torch_fn(*xs))


def _constant_value(node: Expr, values: list[Number]) -> Number | None:
    """The value of ``node`` applied to constant arguments (exact when it can be)."""
    op = node.op
    try:
        if op is Op.ADD:
            return _finite(sum(values, 0))
        if op is Op.MUL:
            return _finite(math.prod(values))
        if op is Op.NEG:
            return -values[0]
        if op is Op.RECIP:
            return 1 / values[0] if isinstance(values[0], float) else Fraction(1) / values[0]
        if op is Op.POW:
            exact = _exact_pow(*values)
            return exact if exact is not None else _exact_pow(float(values[0]), values[1])
        value = _call_value(node.arg, values)
        return value if math.isfinite(value) else None
    except (ZeroDivisionError, OverflowError):
        return None


def _numeric_rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
    if node.op is Op.NAMED:  # pi -> 3.141592653589793
        return const(node.value)
    if not args:
        return node
    if all(a.op is Op.CONST for a in args):  # f(c1, c2) -> its value
        value = _constant_value(node, [a.arg for a in args])
        if value is None:
            raise UnsupportedError(
                f"the constant subexpression {to_string(node)!r} is not a finite real number"
            )
        return const(value)
    if node.op in (Op.ADD, Op.MUL):  # folding may leave a sum in a sum: splice it
        flat = tuple(g for a in args for g in (a.args if a.op is node.op else (a,)))
        return _fold_sum(flat) if node.op is Op.ADD else _fold_product(flat)
    return rebuild(node, args)


def fold_numeric(expr: Expr) -> Expr:
    """Replace every variable-free subtree (calls and ``pi``/``e`` included) by one CONST.

    Ints and Fractions stay exact where the arithmetic is exact; anything else becomes a float.
    A constant that is not a finite real number (``log(-1)``, ``1/0``) is an ``UnsupportedError``.

    >>> from kanpiler import parse
    >>> fold_numeric(parse("2*pi*x + sin(0)"))
    Expr('6.283185307179586*x')
    """
    return transform(expr, _numeric_rule)


# ---- variable exponents ---------------------------------------------------------------------


def expand_variable_powers(expr: Expr) -> Expr:
    """Rewrite powers with a variable exponent through ``exp`` and ``log``.

    ``x**y -> exp(y*log(x))`` (equal where x > 0, the documented domain), ``c**y ->
    exp(log(c)*y)`` for a constant ``c > 0``, ``e**y -> exp(y)``. Constant exponents stay.

    >>> from kanpiler import parse
    >>> expand_variable_powers(parse("x**y + 2**y"))
    Expr('exp(y*log(x)) + exp(log(2)*y)')
    """
    has_var = set()
    for node in walk(expr):
        if node.op is Op.VAR or any(a in has_var for a in node.args):
            has_var.add(node)

    def rule(node: Expr, args: tuple[Expr, ...]) -> Expr:
        if node.op is not Op.POW or node.args[1] not in has_var:
            return rebuild(node, args)
        base, exponent = args
        factors = exponent.args if exponent.op is Op.MUL else (exponent,)
        if base.op is Op.NAMED and base.arg == "e":  # e**y -> exp(y)
            return _node(Op.CALL, exponent, arg="exp")
        log_base = _node(Op.CALL, base, arg="log")
        if node.args[0] in has_var:  # x**y -> exp(y*log(x)), x > 0
            return _node(Op.CALL, Expr(Op.MUL, (*factors, log_base)), arg="exp")
        if fold_numeric(base).value <= 0:
            raise UnsupportedError(
                f"{base} ** (a variable) is not real: the base must be > 0 (a positive base: "
                "c**v is compiled as exp(v*log(c)))"
            )
        return _node(Op.CALL, Expr(Op.MUL, (log_base, *factors)), arg="exp")  # c**y

    return transform(expr, rule)


# ---- the verifier ---------------------------------------------------------------------------

_ALL_OPS = frozenset(Op)
_STAGE_OPS = {
    "parse": _ALL_OPS,
    "desugar": _ALL_OPS - {Op.NEG, Op.RECIP},
    "canonical": _ALL_OPS - {Op.NEG, Op.RECIP},
    "numeric": _ALL_OPS - {Op.NEG, Op.RECIP, Op.NAMED},
}
_ARITY = {Op.POW: (2, 2), Op.NEG: (1, 1), Op.RECIP: (1, 1), Op.ADD: (2, None), Op.MUL: (2, None)}


def _broken(node: Expr) -> str | None:
    """The rule any IR node must keep that ``node`` breaks, if any."""
    if node.op is Op.CONST:
        value = node.arg
        ok = isinstance(value, (int, Fraction)) or (
            isinstance(value, float) and math.isfinite(value)
        )
        return None if ok and not isinstance(value, bool) else "constants are finite numbers"
    if node.op is Op.CALL:
        if library.canonical(node.arg) != node.arg:
            return "calls name a canonical library function"
        return None if len(node.args) == library.FUNCTIONS[node.arg].arity else "call arity"
    lo, hi = _ARITY.get(node.op, (0, 0))
    n = len(node.args)
    return None if lo <= n and (hi is None or n <= hi) else f"{node.op.name} arity"


def _broken_canonical(node: Expr) -> str | None:
    """The rule of canonical form that ``node`` breaks, if any."""
    if node.op is Op.CALL and len(node.args) != 1:
        return "calls take one argument (min/max desugared)"
    if node.op not in (Op.ADD, Op.MUL):
        if node.op is Op.POW and node.args[1].op is Op.CONST and node.args[1].arg in (0, 1):
            return "x**0 and x**1 folded"
        return None
    if any(a.op is node.op for a in node.args):
        return "sums and products are flat"
    consts = [i for i, a in enumerate(node.args) if a.op is Op.CONST]
    where = len(node.args) - 1 if node.op is Op.ADD else 0
    if len(consts) > 1 or (consts and consts[0] != where):
        return "one constant per sum (last) or product (first)"
    if consts and node.args[where].arg == (0 if node.op is Op.ADD else 1):
        return "no +0 or *1"
    return None


def verify(expr: Expr, stage: str = "canonical") -> Expr:
    """Check the invariants of ``stage`` ("parse", "desugar", "canonical", "numeric").

    Returns ``expr``; raises ``VerifyError`` naming the stage, the rule and the node.

    >>> from kanpiler import parse
    >>> verify(canonicalize(parse("x - y"))) is not None
    True
    """
    if stage not in _STAGE_OPS:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(_STAGE_OPS)}")
    for node in walk(expr):
        rule = None if node.op in _STAGE_OPS[stage] else f"no {node.op.name} at this stage"
        rule = rule or _broken(node)
        if stage == "desugar" and node.op is Op.CALL and len(node.args) != 1:
            rule = rule or "calls take one argument (min/max desugared)"
        if stage in ("canonical", "numeric"):
            rule = rule or _broken_canonical(node)
        if stage == "numeric" and node.args and all(a.op is Op.CONST for a in node.args):
            rule = rule or "constant subtrees folded"
        if rule:
            raise VerifyError(stage, rule, _where(node))
    return expr


def _where(node: Expr) -> str:
    try:
        text = to_string(node)
    except Exception:  # the node may be too malformed to print
        return f"{node.op.name} node"
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = [
    "desugar",
    "flatten",
    "fold_constants",
    "combine_like_terms",
    "canonicalize",
    "fold_numeric",
    "expand_variable_powers",
    "verify",
]
