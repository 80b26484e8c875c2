"""Passes: each rewrite rule, the canonical invariants, and value preservation vs SymPy."""

from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from test_printing import ENV, _infinite, evaluate, raw_trees, sympy_values

from kanpiler import UnsupportedError, VerifyError, canonicalize, parse, to_sympy
from kanpiler.ir import Expr, Op, add, call, const, mul, named, pow_, var, walk
from kanpiler.passes import (
    combine_like_terms,
    desugar,
    expand_variable_powers,
    flatten,
    fold_constants,
    fold_numeric,
    verify,
)

x, y, z = var("x"), var("y"), var("z")


def c(text):
    return canonicalize(parse(text))


# ---- one test per rule --------------------------------------------------------------------


def test_desugar_rules():
    assert desugar(parse("-x")) is mul(-1, x)
    assert desugar(parse("x/y")) is mul(x, pow_(y, -1))
    half = const(Fraction(1, 2))
    gap = call("abs", add(x, mul(-1, y)))
    assert desugar(parse("max(x, y)")) is add(mul(half, x), mul(half, y), mul(half, gap))
    minus_half = const(Fraction(-1, 2))
    assert desugar(parse("min(x, y)")) is add(mul(half, x), mul(half, y), mul(minus_half, gap))
    verify(desugar(parse("min(-x, 1/y)")), "desugar")


def test_min_max_are_exact():
    points = np.linspace(-3, 3, 13)
    for text, ref in (("min(x, y)", np.minimum), ("max(x, y)", np.maximum)):
        expr = c(text)
        got = evaluate(expr, {"x": points, "y": points[::-1]})
        assert np.array_equal(got, ref(points, points[::-1]))


def test_flatten():
    assert flatten(parse("(x + y) + (z + 1)")) is add(x, y, z, 1)
    assert flatten(parse("(x*y)*(z*2)")) is mul(x, y, z, 2)
    assert flatten(parse("(x + y)*z")) is parse("(x + y)*z")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x + 0", "x"),  # x + 0 -> x
        ("x*1", "x"),  # x*1 -> x
        ("0*x", "0"),  # 0*x -> 0
        ("2*x*3", "6*x"),  # one constant, first in a product
        ("1 + x + 2", "x + 3"),  # one constant, last in a sum
        ("x**1", "x"),
        ("x**0", "1"),
        ("1**x", "1"),
        ("2**10", "1024"),
        ("2**-2", "1/4"),
        ("(2/3)**2", "4/9"),
        ("2.0**3", "8.0"),
        ("1/2 + 1/3", "5/6"),  # exact rationals
        ("0.5 + 1/2", "1.0"),  # a float makes it float
        ("4**(1/2)", "4**(1/2)"),  # stays exact and symbolic
        ("(-8)**(1/3)", "(-8)**(1/3)"),  # not real: left alone
        ("0**-1", "0**-1"),  # division by zero: left alone
        ("2**100000", "2**100000"),  # too large to fold exactly
    ],
)
def test_fold_constants(text, expected):
    assert str(fold_constants(flatten(desugar(parse(text))))) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x + x", "2*x"),
        ("2*sin(x) + sin(x)", "3*sin(x)"),
        ("x*y + 2*y*x", "3*x*y"),
        ("x - x", "0"),
        ("x*x", "x**2"),
        ("x**2*x**3", "x**5"),
        ("x**(1/2)*x**(1/2)", "x"),
        ("x*y/x", "y"),
        ("(x**2)**3", "x**6"),
        ("2**x*2**y", "2**x*2**y"),  # non-constant exponents are not combined
        ("sin(x)*sin(x) + cos(x)**2", "sin(x)**2 + cos(x)**2"),
    ],
)
def test_combine_like_terms(text, expected):
    assert str(c(text)) == expected


def test_combine_alone_is_a_single_rewrite():
    assert combine_like_terms(parse("x + x")) is mul(2, x)
    assert combine_like_terms(parse("x*x")) is pow_(x, 2)


def test_canonical_form_of_a_mixed_formula():
    expr = c("-(x - 1)/2 + 3*e**x/(2*y) - sqrt(x)**2")
    assert verify(expr) is expr
    ops = {n.op for n in walk(expr)}
    assert ops <= {Op.CONST, Op.NAMED, Op.VAR, Op.ADD, Op.MUL, Op.POW, Op.CALL}


def test_fold_numeric():
    assert fold_numeric(c("2*pi*x")) is mul(2 * np.pi, x)
    assert fold_numeric(c("x + sin(1)")) is add(x, float(np.sin(1.0)))
    assert fold_numeric(c("x**(1/2) + 2**(1/2)")) is add(pow_(x, Fraction(1, 2)), 2**0.5)
    assert fold_numeric(c("exp(1)*x + e")) is add(mul(np.e, x), np.e)
    assert fold_numeric(c("x**2")) is pow_(x, 2)  # constant leaves keep their type
    verify(fold_numeric(c("log(3)*x + max(pi, 2)")), "numeric")
    for bad in ("x + log(-1)", "x + sqrt(-2)", "x*0**-1", "x + (-8)**(1/3)"):
        with pytest.raises(UnsupportedError, match="not a finite real number"):
            fold_numeric(c(bad))


def test_expand_variable_powers():
    assert str(expand_variable_powers(c("x**y"))) == "exp(y*log(x))"
    assert str(expand_variable_powers(c("x**(2*y)"))) == "exp(2*y*log(x))"
    assert str(expand_variable_powers(c("2**x"))) == "exp(log(2)*x)"
    assert expand_variable_powers(c("e**(x*y)")) is call("exp", mul(x, y))
    assert str(expand_variable_powers(c("pi**x"))) == "exp(log(pi)*x)"
    assert expand_variable_powers(c("x**2.5")) is c("x**2.5")  # constant exponents stay
    with pytest.raises(UnsupportedError, match="base must be > 0"):
        expand_variable_powers(c("(-2)**x"))
    pts = {"x": np.array([0.3, 1.7, 2.5]), "y": np.array([-1.2, 0.4, 3.0])}
    for text in ("x**y", "(x + 1)**(y**2)", "3**(x*y)", "e**y", "x**y**2"):
        got = evaluate(expand_variable_powers(c(text)), pts)
        assert np.allclose(got, evaluate(parse(text), pts), rtol=1e-12)


@pytest.mark.parametrize(
    "expr, stage, rule",
    [
        (parse("-x"), "canonical", "no NEG at this stage"),
        (add(add(x, y), z), "canonical", "sums and products are flat"),
        (add(x, 1, 2), "canonical", "one constant per sum (last) or product (first)"),
        (mul(x, 2), "canonical", "one constant per sum (last) or product (first)"),
        (add(x, 0), "canonical", "no +0 or *1"),
        (pow_(x, 1), "canonical", "x**0 and x**1 folded"),
        (Expr(Op.ADD, (x,)), "parse", "ADD arity"),
        (Expr(Op.CALL, (x,), "arcsin"), "parse", "calls name a canonical library function"),
        (Expr(Op.CALL, (x,), "max"), "parse", "call arity"),
        (call("max", x, y), "desugar", "calls take one argument (min/max desugared)"),
        (named("pi"), "numeric", "no NAMED at this stage"),
        (call("sin", const(1)), "numeric", "constant subtrees folded"),
    ],
)
def test_verify_names_the_broken_rule(expr, stage, rule):
    with pytest.raises(VerifyError) as info:
        verify(expr, stage)
    assert info.value.stage == stage and info.value.rule == rule
    assert str(info.value).startswith(f"[{stage}] rule '{rule}' broken at ")


def test_passes_work_at_any_depth():
    deep = x
    for i in range(3000):
        deep = Expr(Op.NEG, (add(deep, i),))
    out = canonicalize(deep)
    assert verify(out) is out and out.depth > 3000
    want = 0.5
    for i in range(3000):
        want = -(want + i)
    assert evaluate(out, {"x": np.array([0.5])})[0] == want


# ---- properties against SymPy -------------------------------------------------------------

PASSES = {
    "desugar": desugar,
    "flatten": flatten,
    "fold_constants": fold_constants,
    "combine_like_terms": lambda e: combine_like_terms(desugar(e)),
    "canonicalize": canonicalize,
    "fold_numeric": lambda e: fold_numeric(canonicalize(e)),
    "expand_variable_powers": lambda e: expand_variable_powers(canonicalize(e)),
}


def _domain_and_scale(expr):
    """Where every subexpression is finite, and the largest magnitude one reaches there."""
    values = evaluate(expr, ENV, every_node=True).values()
    defined = np.logical_and.reduce([np.isfinite(v) for v in values])
    scale = max([1.0] + [float(np.abs(v[defined]).max()) for v in values if defined.any()])
    return defined, scale


@pytest.mark.parametrize("name", list(PASSES))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=raw_trees(small=True))
def test_pass_preserves_value(name, expr):
    reference = to_reference(expr)
    try:
        out = PASSES[name](expr)
    except UnsupportedError:  # a constant that is not a finite real number; (-2)**x
        assert name in ("fold_numeric", "expand_variable_powers")
        return
    got = evaluate(out, ENV)
    # where every step of the input is real and finite: SymPy alone would say
    # sin(asin(2)) = 2, numpy alone max(1, -atanh(1)) = 1
    defined, scale = _domain_and_scale(expr)
    ok = np.isfinite(reference) & defined
    tol = 1e-9 * scale
    assert np.allclose(got[ok], reference[ok], rtol=1e-7, atol=tol), (str(out), got, reference)
    if name in ("canonicalize", "fold_numeric"):
        verify(out, "numeric" if name == "fold_numeric" else "canonical")


def to_reference(expr):
    try:
        sym = to_sympy(expr)
    except UnsupportedError:  # SymPy refuses e.g. min(1, asin(pi)): no real reference
        assume(False)
    assume(not _infinite(sym))
    values = sympy_values(sym)
    real = np.abs(values.imag) <= 1e-12 * (1 + np.abs(values.real))
    return np.where(real, values.real, np.nan)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_trees(small=True))
def test_canonicalize_is_idempotent(expr):
    once = canonicalize(expr)
    assert canonicalize(once) is once


def test_sympy_agrees_on_simple_canonical_forms():
    for text in ("x - x/2 + 3*sin(y) - sin(y)", "x*x*y/x", "(x + 1)**2*(x + 1)"):
        assert sympy.simplify(to_sympy(c(text)) - to_sympy(text)) == 0
