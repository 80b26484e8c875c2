"""The printers: IR to text, SymPy and LaTeX, and SymPy back to IR.

In: an ``Expr`` (or text, a SymPy expression, a model). Out: a re-parseable string with minimal
parentheses, a SymPy expression in plain ``Symbol``s, LaTeX; or an ``Expr`` read from SymPy.
Stage: print (both directions of the formula <-> IR bridge).

>>> from kanpiler import parse, to_string, to_sympy, from_sympy
>>> to_string(parse("(a - b) / (c*d)**2"))
'(a - b)/(c*d)**2'
>>> to_sympy("sin(x)*exp(y)")
exp(y)*sin(x)
>>> from_sympy(to_sympy("x/2 + 1"))
Expr('1 + 1/2*x')
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from functools import lru_cache
from typing import Any

from . import library
from .errors import KanpilerError, UnsupportedError
from .ir import Expr, Op, const, named, transform, var, walk

#: printed formulas longer than this are refused (a shared subtree repeated exponentially
#: often would otherwise print forever)
MAX_PRINT_CHARS = 10_000_000
#: trees deeper than this are not handed to SymPy, whose algorithms recurse
MAX_SYMPY_DEPTH = 600
#: exact powers of numbers above this many bits are refused (SymPy would spend minutes and
#: gigabytes on 2**10**10)
MAX_EXACT_BITS = 4096

# binding strength of what a printed piece is, loosest first
ADD, MUL, UNARY, POW, ATOM = range(5)


# ---- IR -> text ---------------------------------------------------------------------------


def to_string(expr: Expr) -> str:
    """Print ``expr`` with minimal parentheses; ``parse(to_string(e)) == e`` for parsed trees.

    >>> from kanpiler import parse
    >>> to_string(parse("-x**2 + 2^3^2 - y/z"))
    '-x**2 + 2**3**2 - y/z'
    """
    done: dict[Expr, tuple[str, int]] = {}
    for node in walk(expr):
        text, level = _print_node(node, done)
        if len(text) > MAX_PRINT_CHARS:
            raise KanpilerError(f"formula too long to print (over {MAX_PRINT_CHARS} characters)")
        done[node] = (text, level)
    return done[expr][0]


def _wrap(piece: tuple[str, int], level: int) -> str:
    text, own = piece
    return text if own >= level else f"({text})"


def _number(value: Any) -> tuple[str, int]:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}", MUL
    text = repr(value)
    return text, (UNARY if value < 0 else ATOM)


def _print_node(node: Expr, done: dict[Expr, tuple[str, int]]) -> tuple[str, int]:
    op = node.op
    if op is Op.CONST:
        return _number(node.arg)
    if op is Op.NAMED or op is Op.VAR:
        return node.arg, ATOM
    if op is Op.CALL:
        return f"{node.arg}({', '.join(done[a][0] for a in node.args)})", ATOM
    if op is Op.POW:
        base, exponent = (done[a] for a in node.args)
        return f"{_wrap(base, ATOM)}**{_wrap(exponent, UNARY)}", POW
    if op is Op.NEG:
        return "-" + _wrap(done[node.args[0]], UNARY), UNARY
    if op is Op.RECIP:
        return "1/" + _wrap(done[node.args[0]], UNARY), MUL
    if op is Op.MUL:
        return _print_product(node, done), MUL
    return _print_sum(node, done), ADD


def _print_product(node: Expr, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = node.args
    if first.op is Op.CONST and first.arg == -1 and rest:
        # a canonical sign: -1*x*y reads as -x*y (same value)
        return "-" + _print_product_from(rest, done)
    return _print_product_from(node.args, done)


def _print_product_from(factors: Any, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = factors
    # a leading fraction needs no parentheses: 1/2*x is (1/2)*x
    parts = [_wrap(done[first], MUL if first.op is Op.CONST else UNARY)]
    for f in rest:
        if f.op is Op.RECIP:
            parts.append("/" + _wrap(done[f.args[0]], UNARY))
        else:
            parts.append("*" + _wrap(done[f], UNARY))
    return "".join(parts)


def _print_sum(node: Expr, done: dict[Expr, tuple[str, int]]) -> str:
    first, *rest = node.args
    parts = [_wrap(done[first], MUL)]
    for t in rest:
        negated = _negated(t, done)
        if negated is not None:
            parts.append(" - " + negated)
        else:
            parts.append(" + " + _wrap(done[t], MUL))
    return "".join(parts)


def _negated(term: Expr, done: dict[Expr, tuple[str, int]]) -> str | None:
    """``t`` printed as what follows ' - ' in a sum, if ``term`` is a negation of some ``t``."""
    if term.op is Op.NEG:
        return _wrap(done[term.args[0]], MUL)
    if term.op is Op.CONST and term.arg < 0:
        return _number(-term.arg)[0]
    if term.op is Op.MUL and term.args[0].op is Op.CONST and term.args[0].arg < 0:
        coef, *rest = term.args
        if coef.arg == -1:
            return _print_product_from(rest, done)
        return _number(-coef.arg)[0] + "*" + _print_product_from(rest, done)
    return None


# ---- IR -> SymPy --------------------------------------------------------------------------


def to_sympy(obj: Any, variables: Any = None) -> Any:
    """A SymPy expression of ``obj`` in plain ``sympy.Symbol``s.

    ``obj`` may be an ``Expr``, formula text (parsed with ``variables``), a SymPy expression
    (returned as is), a number, a list of these, or a model (read back by the converter).

    >>> to_sympy("x**2/2 + pi")
    x**2/2 + pi
    """
    import sympy

    if isinstance(obj, Expr):
        return _expr_to_sympy(obj)
    if isinstance(obj, str):
        from .parse import parse

        return _expr_to_sympy(parse(obj, variables))
    if isinstance(obj, sympy.Basic):
        return obj
    if isinstance(obj, (int, float, Fraction)) and not isinstance(obj, bool):
        return _expr_to_sympy(const(obj))
    if isinstance(obj, (list, tuple)):
        return [to_sympy(o, variables) for o in obj]
    if hasattr(obj, "formula") or _is_torch_module(obj):
        from .convert import model_to_sympy

        return model_to_sympy(obj)
    raise KanpilerError(
        f"cannot convert a {type(obj).__name__} to SymPy; "
        "give an Expr, formula text, a SymPy expression or a model"
    )


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _expr_to_sympy(expr: Expr) -> Any:
    import sympy

    if expr.depth > MAX_SYMPY_DEPTH:
        raise UnsupportedError(
            f"formula too deep for SymPy ({expr.depth} levels, at most {MAX_SYMPY_DEPTH})"
        )
    leaves = {
        Op.CONST: lambda n: _sympy_number(n.arg),
        Op.NAMED: lambda n: sympy.pi if n.arg == "pi" else sympy.E,
        Op.VAR: lambda n: sympy.Symbol(n.arg),
    }
    inner = {
        Op.ADD: lambda n, a: sympy.Add(*a),
        Op.MUL: lambda n, a: sympy.Mul(*a),
        Op.POW: lambda n, a: _sympy_pow(*a),
        Op.NEG: lambda n, a: -a[0],
        Op.RECIP: lambda n, a: sympy.Pow(a[0], -1),
        Op.CALL: lambda n, a: library.get(n.arg).to_sympy(*a),
    }

    def rule(node: Expr, args: tuple[Any, ...]) -> Any:
        if node.op in leaves:
            return leaves[node.op](node)
        try:
            return inner[node.op](node, args)
        except (ValueError, TypeError) as err:  # e.g. Min(0, zoo) is not comparable
            raise UnsupportedError(f"SymPy cannot build {args}: {err}") from None

    return transform(expr, rule)


def _sympy_pow(base: Any, exponent: Any) -> Any:
    """``base**exponent``; refuses exact numbers SymPy would spend minutes and gigabytes on."""
    import sympy

    if base.is_Rational and exponent.is_Integer and base not in (0, 1, -1):
        bits = abs(int(exponent)) * max(int(base.p).bit_length(), int(base.q).bit_length())
        if bits > MAX_EXACT_BITS:
            raise UnsupportedError(
                f"the exact number {base}**{_short(exponent)} is too large for SymPy "
                f"(about {bits} bits, at most {MAX_EXACT_BITS})"
            )
    return sympy.Pow(base, exponent)


def _sympy_number(value: Any) -> Any:
    import sympy

    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, int):
        return sympy.Integer(value)
    return sympy.Float(value)


def to_latex(obj: Any, variables: Any = None) -> Any:
    """LaTeX of anything :func:`to_sympy` accepts (a list of strings for a list).

    >>> to_latex("sqrt(x)/2")
    '\\\\frac{\\\\sqrt{x}}{2}'
    """
    import sympy

    value = to_sympy(obj, variables)
    if isinstance(value, list):
        return [sympy.latex(v) for v in value]
    return sympy.latex(value)


# ---- SymPy -> IR --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _sympy_functions() -> dict[Any, str]:
    return {cls: fn.name for cls, fn in library.sympy_inverse().items()}


def from_sympy(sympy_expr: Any) -> Expr:
    """Read a SymPy expression into IR (iteratively; ``sqrt`` arrives as a power).

    >>> import sympy
    >>> from_sympy(sympy.sqrt(sympy.Symbol("x")) * sympy.pi)
    Expr('pi*x**(1/2)')
    """
    import sympy

    if not isinstance(sympy_expr, sympy.Basic):
        raise KanpilerError(f"from_sympy needs a SymPy expression, got {type(sympy_expr).__name__}")
    # keyed by id(): hashing a deep SymPy tree the first time recurses through all of it
    done: dict[int, Expr] = {}
    stack: list[tuple[Any, bool]] = [(sympy_expr, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded or not node.args or _is_atomic(node):
            args = [done[id(a)] for a in node.args] if expanded else []
            done[id(node)] = _from_sympy_node(node, args)
            continue
        stack.append((node, True))
        stack.extend((a, False) for a in node.args if id(a) not in done)
    return done[id(sympy_expr)]


def _is_atomic(node: Any) -> bool:
    return node.is_Atom or node.is_Number or node.is_NumberSymbol


def _from_sympy_node(node: Any, args: list[Expr]) -> Expr:
    import sympy

    if node.is_Integer:
        return const(int(node))
    if node.is_Rational:
        return const(Fraction(int(node.p), int(node.q)))
    if node.is_Float:
        value = float(node)
        if not math.isfinite(value):
            raise UnsupportedError(f"SymPy number {node} is not finite")
        return const(value)
    if node is sympy.pi or node is sympy.E:
        return named("pi" if node is sympy.pi else "e")
    if node.is_NumberSymbol:  # EulerGamma, GoldenRatio, ...: their float value
        return const(float(node))
    if node.is_Symbol:
        return _symbol(node)
    if node.is_Add:
        return Expr(Op.ADD, tuple(args))
    if node.is_Mul:
        return Expr(Op.MUL, tuple(args))
    if node.is_Pow:
        return Expr(Op.POW, tuple(args))
    if node.func in (sympy.re, sympy.conjugate):  # variables are real: re(x) = x
        return args[0]
    if node.func is sympy.im:  # im(x) = 0 for real x
        return const(0)
    name = _sympy_functions().get(node.func)
    if name is not None:
        return _call(name, args)
    raise UnsupportedError(
        f"SymPy {node.func.__name__} ({_short(node)}) is not supported; kanpiler reads sums, "
        f"products, powers, real numbers, pi, E, symbols and the functions "
        f"{', '.join(library.names())}"
    )


def _call(name: str, args: list[Expr]) -> Expr:
    arity = library.FUNCTIONS[name].arity
    if arity == 1 and len(args) == 1:
        return Expr(Op.CALL, tuple(args), name)
    if arity == 2 and len(args) >= 2:  # SymPy's Min/Max are n-ary: nest them
        out = args[0]
        for a in args[1:]:
            out = Expr(Op.CALL, (out, a), name)
        return out
    raise UnsupportedError(f"SymPy call of {name} with {len(args)} arguments is not supported")


def _symbol(node: Any) -> Expr:
    from .parse import is_name

    if not is_name(node.name):
        raise UnsupportedError(
            f"SymPy symbol name {node.name!r} is not a valid kanpiler variable name "
            "(letters, digits and '_', not starting with a digit)"
        )
    return var(node.name)


def _short(node: Any, limit: int = 60) -> str:
    text = str(node)
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = ["to_string", "to_sympy", "to_latex", "from_sympy", "MAX_PRINT_CHARS"]
