"""The parser: formula text to raw IR.

In: formula text (or an ``Expr``, or a SymPy expression). Out: a raw ``Expr`` that keeps the
sugar of the text (``a - b`` is ``ADD(a, NEG(b))``, ``a / b`` is ``MUL(a, RECIP(b))``).
Stage: parser. The syntax lives in ``grammar/formula.lark``; this module only builds nodes.

>>> from kanpiler import parse
>>> parse("2*sin(x) - y/3")
Expr('2*sin(x) - y/3')
>>> parse("e*x", variables=["e", "x"]).args[0]
Expr('e')
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import library
from .errors import (
    ConfigError,
    FormulaSyntaxError,
    KanpilerError,
    UnknownFunctionError,
    UnsupportedError,
)
from .ir import Expr, Op, const, is_name, named
from .reader import from_sympy

#: formulas whose tree is deeper than this are refused (every stage then stays far from
#: Python's recursion limit, SymPy's included)
MAX_DEPTH = 200

_GRAMMAR = "formula.lark"
_OPERANDS = {"NUMBER", "NAME", "LPAR"}
# characters people paste from papers, and what to write instead
_CHARACTER_HINTS = {
    "−": "write '-' (ASCII minus)",
    "×": "write '*' to multiply",
    "·": "write '*' to multiply",
    "÷": "write '/' to divide",
    "²": "write '**2'",
    "³": "write '**3'",
    "=": "write only the expression (the right-hand side), without '='",
    "[": "use round parentheses ( ) for grouping",
    "{": "use round parentheses ( ) for grouping",
    "'": "formulas hold numbers, names, operators and calls; there are no strings",
    '"': "formulas hold numbers, names, operators and calls; there are no strings",
}

# names declared as variables for the parse in progress (read by the transformer)
_DECLARED: ContextVar[frozenset[str]] = ContextVar("kanpiler_declared", default=frozenset())


class _Refused(Exception):
    """Raised inside the transformer; ``parse`` turns it into a located syntax error."""

    def __init__(
        self, reason: str, token: Token, hint: str | None = None, cls: type = FormulaSyntaxError
    ):
        super().__init__(reason)
        self.reason, self.token, self.hint, self.cls = reason, token, hint, cls


def _checked(node: Expr, token: Token) -> Expr:
    if node.depth > MAX_DEPTH:
        raise _Refused(
            f"formula nests too deeply (more than {MAX_DEPTH} levels)",
            token,
            "split the formula into smaller parts",
        )
    return node


@v_args(inline=True)
class _ToIR(Transformer):
    """One method per alias of the grammar; each builds one raw IR node."""

    def number(self, tok: Token) -> Expr:
        is_int = not any(c in tok for c in ".eE")
        try:
            value = int(tok) if is_int else float(tok)
        except ValueError:  # more digits than Python converts
            value = math.inf
        if not math.isfinite(value):
            raise _Refused(
                f"number {_short(tok)} is out of range", tok, "finite float64 values only"
            )
        if value == 0 and any(c in "123456789" for c in tok.lower().split("e")[0]):
            raise _Refused(
                f"number {_short(tok)} is too small: it rounds to 0 in float64",
                tok,
                "nonzero float64 values are at least 5e-324 in size",
            )
        return Expr(Op.CONST, (), value)

    def name(self, tok: Token) -> Expr:
        text = str(tok)
        if text not in _DECLARED.get() and text in library.CONSTANTS:
            return named(text)
        return Expr(Op.VAR, (), text)

    def call(self, tok: Token, *args: Expr) -> Expr:
        return _checked(Expr(Op.CALL, args, _function(tok, len(args))), tok)

    def add(self, first: Expr, *rest: Any) -> Expr:
        terms = [first]
        for op, term in zip(rest[::2], rest[1::2]):
            terms.append(Expr(Op.NEG, (term,)) if op == "-" else term)
        return _checked(Expr(Op.ADD, tuple(terms)), rest[0])

    def mul(self, first: Expr, *rest: Any) -> Expr:
        factors = [first]
        for op, factor in zip(rest[::2], rest[1::2]):
            factors.append(Expr(Op.RECIP, (factor,)) if op == "/" else factor)
        return _checked(Expr(Op.MUL, tuple(factors)), rest[0])

    def neg(self, tok: Token, operand: Expr) -> Expr:
        return _checked(Expr(Op.NEG, (operand,)), tok)

    def pos(self, tok: Token, operand: Expr) -> Expr:
        return operand

    def pow(self, base: Expr, tok: Token, exponent: Expr) -> Expr:
        return _checked(Expr(Op.POW, (base, exponent)), tok)


def _function(tok: Token, n_args: int) -> str:
    """The canonical library name called by ``tok``, after checking it can be called."""
    text = str(tok)
    if text in _DECLARED.get() or text in library.CONSTANTS:
        kind = "a declared variable" if text in _DECLARED.get() else "a constant"
        raise _Refused(
            f"'{text}' is {kind}, not a function", tok, f"write {text}*(...) to multiply"
        )
    canon = library.canonical(text)
    if canon is None:
        close = difflib.get_close_matches(text, library.all_names(), n=1)
        if close:
            reason, hint = f"unknown function '{text}'; did you mean '{close[0]}'?", None
        else:
            reason = f"unknown function '{text}'"
            hint = f"the function library holds: {', '.join(library.names())}"
        raise _Refused(reason, tok, hint, UnknownFunctionError)
    arity = library.FUNCTIONS[canon].arity
    if n_args != arity:
        plural = "argument" if arity == 1 else "arguments"
        raise _Refused(f"'{text}' takes {arity} {plural}, got {n_args}", tok)
    return canon


def _short(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ---- the parser object --------------------------------------------------------------------


def grammar_path() -> str:
    """Where the grammar is read from: inside the installed package, else the source tree."""
    packaged = resources.files("kanpiler").joinpath("grammar").joinpath(_GRAMMAR)  # 3.10-safe
    if packaged.is_file():
        return str(packaged)
    source = Path(__file__).resolve().parent.parent / "grammar" / _GRAMMAR
    if source.is_file():
        return str(source)
    raise KanpilerError(f"the grammar file {_GRAMMAR} is missing; reinstall kanpiler")


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # LALR with the transformer applied while parsing: no parse tree, no recursive walk
    grammar = Path(grammar_path()).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", transformer=_ToIR(), maybe_placeholders=False)


# ---- public entry point -------------------------------------------------------------------


def parse(text: Any, variables: Iterable[str] | str | None = None) -> Expr:
    """Parse a formula into raw IR.

    ``variables`` (names, or one string ``"x, y"``) are always read as variables, even ``e``
    or ``pi``. Other names are the constants ``pi``, ``e``/``E`` or else variables. An ``Expr``
    is returned as is; a SymPy expression goes through :func:`kanpiler.from_sympy`.

    >>> parse("-x**2 + 2^3^2")
    Expr('-x**2 + 2**3**2')
    """
    if isinstance(text, Expr):
        return text
    if not isinstance(text, str):
        return _parse_object(text)
    declared = _declared(variables)
    if not text.strip():
        raise FormulaSyntaxError(
            "empty formula", text, 1, 1, "write an expression such as sin(x)*y"
        )
    token = _DECLARED.set(declared)
    try:
        tree: Any = _parser().parse(text)  # the transformer runs while parsing: an Expr
        return tree
    except _Refused as err:
        raise err.cls(err.reason, text, err.token.line, err.token.column, err.hint) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, text) from None
    finally:
        _DECLARED.reset(token)


def _parse_object(obj: Any) -> Expr:
    sympy = sys.modules.get("sympy")
    if sympy is not None and isinstance(obj, sympy.Basic):  # f(x) of an undefined f too
        return _depth_checked(from_sympy(obj))
    if isinstance(obj, bool) or not isinstance(obj, numbers.Real):
        raise ConfigError(
            f"cannot parse a {type(obj).__name__}; give formula text, an Expr or a SymPy expression"
        )
    if isinstance(obj, (Fraction, int)):
        return const(obj)
    # numpy scalars: np.int64 is Integral, np.float64 a float subclass; store plain numbers
    return const(int(obj) if isinstance(obj, numbers.Integral) else float(obj))


def _depth_checked(expr: Expr) -> Expr:
    """SymPy input nests no deeper than text input may (:data:`MAX_DEPTH`)."""
    if expr.depth > MAX_DEPTH:
        raise UnsupportedError(
            f"SymPy expression nests too deeply ({expr.depth} levels, at most {MAX_DEPTH}, "
            "as for formula text)"
        )
    return expr


def _declared(variables: Iterable[str] | str | None) -> frozenset[str]:
    if variables is None:
        return frozenset()
    names = variables.replace(",", " ").split() if isinstance(variables, str) else list(variables)
    for name in names:
        if not is_name(name):
            raise FormulaSyntaxError(
                f"invalid variable name {name!r}",
                str(name),
                hint="a name is a letter or '_' followed by letters, digits or '_'",
            )
    return frozenset(names)


# ---- turning Lark's errors into kanpiler's ------------------------------------------------


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _unclosed_paren(text: str, upto: int) -> int | None:
    """Offset of the first '(' before ``upto`` that is not closed before it."""
    opened: list[int] = []
    for i, ch in enumerate(text[:upto]):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            opened.pop()
    return opened[0] if opened else None


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _syntax_error(err: UnexpectedInput, text: str) -> FormulaSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream or 0]
        return FormulaSyntaxError(
            f"unexpected character {char!r}", text, err.line, err.column, _CHARACTER_HINTS.get(char)
        )
    if not isinstance(err, UnexpectedToken):  # pragma: no cover - LALR raises only these two
        return FormulaSyntaxError(str(err).splitlines()[0], text)
    tok, expected = err.token, set(err.expected)
    wants_operand = "NUMBER" in expected
    if tok.type == "$END":
        line, column = _end_position(text.rstrip())
        if wants_operand:
            return FormulaSyntaxError(
                "missing operand at the end of the formula", text, line, column
            )
        start = _unclosed_paren(text, len(text))
        if start is not None:
            line, column = _position(text, start)
            return FormulaSyntaxError(
                "unbalanced parenthesis: '(' is never closed", text, line, column, "add ')'"
            )
        return FormulaSyntaxError("unexpected end of the formula", text, line, column)
    where = (text, tok.line, tok.column)
    if tok.type == "RPAR" and "RPAR" not in expected and not wants_operand:
        return FormulaSyntaxError("unbalanced parenthesis: ')' has no matching '('", *where)
    if wants_operand:
        return FormulaSyntaxError(f"missing operand before '{tok}'", *where)
    if tok.type in _OPERANDS:
        prev = err.token_history[-1] if err.token_history else None
        hint = f"write '{prev}*{_short(str(tok))}'" if prev is not None else "write '*' to multiply"
        if prev is not None and prev.type == "NAME" and library.canonical(str(prev)):
            hint = f"call a function with parentheses: {prev}(...)"
        return FormulaSyntaxError("implicit multiplication is not supported", *where, hint)
    if tok.type == "COMMA":
        return FormulaSyntaxError(
            "unexpected ','", *where, "commas separate the arguments of a call"
        )
    return FormulaSyntaxError(f"unexpected '{_short(str(tok))}'", *where)


__all__ = ["MAX_DEPTH", "parse", "is_name", "grammar_path"]
