"""Printers: text round trips, SymPy both ways, LaTeX; checked against SymPy and numpy."""

import math
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kanpiler import (
    KanpilerError,
    UnsupportedError,
    from_sympy,
    library,
    parse,
    to_latex,
    to_string,
    to_sympy,
)
from kanpiler.ir import Expr, Op, add, call, const, mul, named, neg, pow_, recip, var, walk
from kanpiler.printing import MAX_SYMPY_DEPTH

x, y = var("x"), var("y")
X, Y = sympy.Symbol("x"), sympy.Symbol("y")

# ---- strategies: raw IR trees of the shapes the parser builds -------------------------------

NAMES = ["x", "y", "z", "theta_1", "θ", "E_n", "I", "gamma"]
UNARY = [n for n in library.names(1)]
BINARY = library.names(2)


def leaves(small=False):
    numbers = (
        st.one_of(st.integers(1, 4), st.sampled_from([0.5, 1.5, 2.25]))
        if small
        else st.one_of(
            st.integers(0, 10**30),
            st.floats(0, 1e300, allow_nan=False, allow_infinity=False),
        )
    )
    names = st.sampled_from(NAMES[:3] if small else NAMES)
    return st.one_of(numbers.map(const), names.map(var), st.sampled_from(["pi", "e"]).map(named))


def _not_recip(children):
    return children.filter(lambda e: e.op is not Op.RECIP)


def _product(first, rest):
    return Expr(Op.MUL, (first, *rest))


def raw_trees(small=False, functions=None):
    """Trees the parser can produce: no negative constants; RECIP only after a product's first."""
    unary = functions or UNARY
    # small trees keep exponents simple, so that SymPy never meets a tower like 4**4**4
    exponents = st.one_of(leaves(True), leaves(True).map(neg))

    def extend(children):
        plain = _not_recip(children)
        divisor = plain.map(recip)
        return st.one_of(
            st.lists(plain, min_size=2, max_size=4).map(lambda a: Expr(Op.ADD, tuple(a))),
            st.builds(_product, plain, st.lists(st.one_of(plain, divisor), min_size=1, max_size=3)),
            st.builds(pow_, plain, exponents if small else plain),
            plain.map(neg),
            st.builds(lambda f, a: call(f, a), st.sampled_from(unary), plain),
            st.builds(lambda f, a, b: call(f, a, b), st.sampled_from(BINARY), plain, plain),
        )

    return st.recursive(leaves(small), extend, max_leaves=12 if small else 20)


# ---- to_string ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a - b + c",
        "a/b*c",
        "-x**2",
        "(-x)**2",
        "-(x*y)",
        "a*-b",
        "a - -b",
        "a - (b - c)",
        "a - b*c",
        "(a + b)*c",
        "a/(b*c)",
        "a/-b",
        "x**y**z",
        "(x**y)**z",
        "x**-2",
        "x**(y*z)",
        "2**3**2",
        "-(a + b) + c",
        "(a + b) + c",
        "max(x, y + 1)",
        "sin(cos(x)**2)",
        "1e+16*x + 5e-324",
        "0.1 + 123456789012345678901234567890",
    ],
)
def test_to_string_is_minimal_and_stable(text):
    expr = parse(text)
    assert to_string(expr) == text
    assert str(expr) == text and repr(expr) == f"Expr({text!r})"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_trees())
def test_parse_print_round_trip(expr):
    assert parse(to_string(expr)) is expr


def test_canonical_forms_print_readably():
    assert to_string(add(x, const(-2))) == "x - 2"
    assert to_string(add(x, mul(const(-1), y))) == "x - y"
    assert to_string(add(x, mul(const(-3), y))) == "x - 3*y"
    assert to_string(mul(const(-1), x, y)) == "-x*y"
    assert to_string(mul(const(Fraction(1, 2)), x)) == "1/2*x"
    assert to_string(pow_(x, Fraction(1, 3))) == "x**(1/3)"
    assert to_string(pow_(const(-2), x)) == "(-2)**x"
    assert to_string(recip(x)) == "1/x"


@pytest.mark.parametrize(
    "expr",
    [
        add(x, const(-2)),
        add(mul(const(-1), x), mul(const(Fraction(-3, 4)), y), const(Fraction(5, 7))),
        mul(const(-2.5), pow_(x, const(-1)), pow_(y, const(Fraction(-1, 2)))),
        pow_(const(-2), pow_(x, const(-3))),
        neg(const(-2)),
        mul(recip(x), y),
        pow_(const(Fraction(2, 3)), x),
    ],
)
def test_canonical_trees_reparse_to_the_same_value(expr):
    again = parse(to_string(expr))
    assert sympy.simplify(to_sympy(again) - to_sympy(expr)) == 0


def test_huge_shared_trees_are_refused_not_hung():
    e = x
    for _ in range(40):  # a DAG whose printed form has ~2**40 characters
        e = add(e, e)
    with pytest.raises(KanpilerError, match="too long to print"):
        to_string(e)
    assert repr(e).startswith("Expr(ADD")  # repr never raises


# ---- to_sympy -----------------------------------------------------------------------------


def test_to_sympy_basics():
    assert to_sympy(parse("sin(x)*exp(y)")) == sympy.sin(X) * sympy.exp(Y)
    assert to_sympy("x/3 - y") == X / 3 - Y
    assert to_sympy("pi + e + E") == sympy.pi + 2 * sympy.E
    assert to_sympy("e*x", variables=["e", "x"]) == sympy.Symbol("e") * X
    assert to_sympy("I*gamma") == sympy.Symbol("I") * sympy.Symbol("gamma")
    assert to_sympy("0.5*x").args[0] == sympy.Float(0.5)
    assert to_sympy(const(Fraction(2, 3))) == sympy.Rational(2, 3)
    assert to_sympy("x**(1/2)") == sympy.sqrt(X)
    assert to_sympy("arcsin(x) + ln(y)") == sympy.asin(X) + sympy.log(Y)
    assert to_sympy(X + 1) == X + 1  # SymPy passes through
    assert [to_sympy(f) for f in ("x", 2)] == [X, 2]
    sym = to_sympy("theta_1")
    assert type(sym) is sympy.Symbol and sym.assumptions0 == sympy.Symbol("q").assumptions0


def test_to_sympy_refuses_unknown_objects_and_deep_trees():
    with pytest.raises(KanpilerError, match="cannot convert a dict"):
        to_sympy({})
    deep = x
    for _ in range(MAX_SYMPY_DEPTH + 1):
        deep = neg(deep)
    with pytest.raises(UnsupportedError, match="too deep"):
        to_sympy(deep)


def test_huge_exact_powers_are_refused_not_hung():
    start = time.perf_counter()
    with pytest.raises(UnsupportedError, match="too large for SymPy"):
        to_sympy("2**10**10 + x")
    with pytest.raises(UnsupportedError, match="too large for SymPy"):
        to_sympy("(1/3)**-10**6")
    assert time.perf_counter() - start < 5
    assert to_sympy("2**10 + (2/3)**-2") == sympy.Integer(1024) + sympy.Rational(9, 4)


def test_deepest_parsed_formula_goes_through_sympy():
    text = "sin(" * 199 + "x" + ")" * 199
    value = to_sympy(text)
    expected = 0.5
    for _ in range(199):
        expected = math.sin(expected)
    assert float(value.subs(X, 0.5)) == pytest.approx(expected, rel=1e-12)


# a small numpy evaluator of the IR: the independent reference for to_sympy
_NUMPY = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
    "abs": np.abs, "sign": np.sign, "log10": np.log10, "log2": np.log2, "cbrt": lambda v: np.power(v, 1 / 3),
    "square": np.square, "cot": lambda v: 1 / np.tan(v), "sec": lambda v: 1 / np.cos(v),
    "csc": lambda v: 1 / np.sin(v), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "gaussian": lambda v: np.exp(-v * v), "min": np.minimum, "max": np.maximum,
    "erf": np.vectorize(math.erf, otypes=[float]),
}  # fmt: skip


def evaluate(expr, env, every_node=False):
    """The value of ``expr`` at the points ``env`` (name -> array), float64 numpy.

    With ``every_node``, the values of all its subexpressions (a dict node -> array).
    """
    done = {}
    with np.errstate(all="ignore"):
        for n in walk(expr):
            a = [done[c] for c in n.args]
            if n.op is Op.CONST:
                v = np.full_like(next(iter(env.values())), float(n.arg))
            elif n.op is Op.NAMED:
                v = np.full_like(next(iter(env.values())), math.pi if n.arg == "pi" else math.e)
            elif n.op is Op.VAR:
                v = env[n.arg]
            elif n.op is Op.ADD:
                v = sum(a[1:], a[0])
            elif n.op is Op.MUL:
                v = np.prod(a, axis=0)
            elif n.op is Op.POW:
                v = np.power(a[0], a[1])
            elif n.op is Op.NEG:
                v = -a[0]
            elif n.op is Op.RECIP:
                v = 1 / a[0]
            else:
                v = _NUMPY[n.arg](*a)
            done[n] = v
    return done if every_node else done[expr]


POINTS = np.random.default_rng(0).uniform(0.2, 1.8, size=(3, 16))
ENV = dict(zip(["x", "y", "z"], POINTS))
SYMS = sympy.symbols("x y z")


def sympy_values(sym_expr):
    f = sympy.lambdify(SYMS, sym_expr, modules=["scipy", "numpy"])
    with np.errstate(all="ignore"):
        out = np.asarray(f(*POINTS), dtype=np.complex128)
    return np.broadcast_to(out, POINTS.shape[1:])


def _infinite(sym):
    """Whether SymPy met an infinity (numpy and SymPy disagree on what follows from one)."""
    bad = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
    return sym.has(*bad) or bool(sym.atoms(sympy.AccumBounds))


def assert_same_values(got, want):
    """``got`` equals ``want`` wherever ``want`` is finite and real."""
    want = np.asarray(want, dtype=np.complex128)
    ok = np.isfinite(want) & (np.abs(want.imag) <= 1e-12 * (1 + np.abs(want.real)))
    got = np.broadcast_to(np.asarray(got, dtype=np.complex128), want.shape)
    assert np.allclose(got[ok], want.real[ok], rtol=1e-7, atol=1e-9), (got[ok], want[ok])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_trees(small=True))
def test_to_sympy_matches_numpy_evaluation(expr):
    try:
        sym = to_sympy(expr)
    except UnsupportedError:  # SymPy refuses e.g. min(0, cot(0)) = min(0, zoo)
        sym = sympy.zoo
    assume(not _infinite(sym))
    assert_same_values(sympy_values(sym), evaluate(expr, ENV))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_trees(small=True))
def test_from_sympy_preserves_value(expr):
    try:
        sym = to_sympy(expr)
        back = from_sympy(sym)
    except UnsupportedError:  # only what is not a real number: cot(0) = zoo, (-1)**(1/2)
        sym = sympy.zoo if "sym" not in locals() else sym
        assert _infinite(sym) or sym.has(sympy.I)
        return
    assert_same_values(evaluate(back, ENV), sympy_values(sym))


# ---- from_sympy ---------------------------------------------------------------------------


def test_from_sympy_shapes():
    assert from_sympy(sympy.sqrt(X)) is pow_(x, const(Fraction(1, 2)))
    assert from_sympy(sympy.Rational(-3, 4)) is const(Fraction(-3, 4))
    assert from_sympy(sympy.Float(0.25)) is const(0.25)
    assert from_sympy(sympy.pi * sympy.E) is mul(named("e"), named("pi")) or from_sympy(
        sympy.pi * sympy.E
    ) is mul(named("pi"), named("e"))
    assert from_sympy(sympy.exp(X)) is call("exp", x)
    assert from_sympy(sympy.Max(X, Y, 1)).op is Op.CALL
    assert to_string(from_sympy(X - Y)) == "x - y"
    assert to_string(from_sympy(X / Y)) == "x*y**-1"
    assert from_sympy(sympy.Abs(2**X)) is pow_(2, x)  # SymPy's 2**re(x): variables are real
    assert from_sympy(sympy.im(X)) is const(0)
    assert from_sympy(sympy.GoldenRatio).arg == pytest.approx((1 + 5**0.5) / 2)


@pytest.mark.parametrize(
    "bad, name",
    [
        (sympy.gamma(X), "gamma"),
        (sympy.I * X, "ImaginaryUnit"),
        (sympy.oo + X, "Infinity"),
        (sympy.besselj(1, X), "besselj"),
        (sympy.Symbol("x y"), "'x y'"),
    ],
)
def test_from_sympy_refuses_clearly(bad, name):
    with pytest.raises(UnsupportedError, match=name):
        from_sympy(bad)


def test_from_sympy_is_iterative():
    deep = X
    for _ in range(3000):
        deep = sympy.sin(deep, evaluate=False)
    node = from_sympy(deep)
    assert node.depth == 3001 and node.args[0].args[0].arg == "sin"


# ---- LaTeX --------------------------------------------------------------------------------


def test_latex():
    assert to_latex("sqrt(x)/2") == r"\frac{\sqrt{x}}{2}"
    assert to_latex("sin(x)*exp(y)") == sympy.latex(sympy.sin(X) * sympy.exp(Y))
    assert [to_latex(f) for f in ("x", "y**2")] == ["x", "y^{2}"]
