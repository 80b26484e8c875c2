"""snap_constants: each closed form snaps, non-snappable floats stay floats, exact numbers stay."""

from __future__ import annotations

import math

import pytest
import sympy

from kanpiler.convert import snap_constants
from kanpiler.convert.constants import snap_number
from kanpiler.errors import KanpilerError

x, y = sympy.symbols("x y")

FORMS = [
    (3.0, sympy.Integer(3)),
    (-7.0000000001, sympy.Integer(-7)),
    (0.5, sympy.Rational(1, 2)),
    (-2 / 3, sympy.Rational(-2, 3)),
    (5 / 12, sympy.Rational(5, 12)),
    (math.pi, sympy.pi),
    (2 * math.pi, 2 * sympy.pi),
    (math.pi / 4, sympy.pi / 4),
    (-3 * math.pi / 2, -3 * sympy.pi / 2),
    (1 / math.pi, 1 / sympy.pi),
    (math.e, sympy.E),
    (0.5 * math.e, sympy.E / 2),
    (math.sqrt(2), sympy.sqrt(2)),
    (1 / math.sqrt(2), sympy.sqrt(2) / 2),
    (3 * math.sqrt(3), 3 * sympy.sqrt(3)),
    (math.sqrt(math.pi), sympy.sqrt(sympy.pi)),
    (2 / math.sqrt(math.pi), 2 / sympy.sqrt(sympy.pi)),
    (1 / math.sqrt(2 * math.pi), 1 / sympy.sqrt(2 * sympy.pi)),
    (math.pi**2 / 6, sympy.pi**2 / 6),
    (math.log(2), sympy.log(2)),
]


@pytest.mark.parametrize(("value", "exact"), FORMS)
def test_each_closed_form_snaps(value: float, exact: sympy.Expr) -> None:
    got = snap_constants(sympy.Float(value) * x)
    assert sympy.simplify(got - exact * x) == 0
    assert not got.atoms(sympy.Float)


@pytest.mark.parametrize("value", [0.123456789, 1.2345e-3, 98765.4321, -0.7071, 2.7181])
def test_non_snappable_values_stay_floats(value: float) -> None:
    got = snap_constants(sympy.Float(value) * x)
    (f,) = got.atoms(sympy.Float)
    assert float(f) == pytest.approx(value, rel=1e-15)


def test_tolerance_is_relative() -> None:
    assert snap_number(math.pi * (1 + 1e-7)) == sympy.pi
    assert snap_number(math.pi * (1 + 1e-4)) is None
    assert snap_number(math.pi * (1 + 1e-4), rtol=2e-4) == sympy.pi


def test_noise_factors_and_float_exponents_vanish() -> None:
    noisy = 1.0 * sympy.exp(1.0 * y) * sympy.sin(1.0 * x) + x**1.0 + y**2.0 + x**0.5
    assert snap_constants(noisy) == sympy.exp(y) * sympy.sin(x) + x + y**2 + sympy.sqrt(x)


def test_exponents_snap_to_rationals_only() -> None:
    got = snap_constants(x ** sympy.Float(math.pi))
    assert got.atoms(sympy.Float)  # pi is not a sensible exponent: kept as a float
    assert snap_constants(x ** sympy.Float(1 / 3)) == x ** sympy.Rational(1, 3)


def test_exact_numbers_untouched() -> None:
    e = sympy.Rational(355, 113) * x + sympy.Integer(10**9) + sympy.pi
    assert snap_constants(e) == e


def test_normal_density_constant() -> None:
    got = snap_constants(0.398942280401433 * sympy.exp(-0.5 * x**2))
    truth = sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)
    assert sympy.simplify(got - truth) == 0 and not got.atoms(sympy.Float)


def test_atol_zeroes_tiny_coefficients_only_when_asked() -> None:
    e = sympy.Float(1e-14) * x + y
    assert snap_constants(e).atoms(sympy.Float)
    assert snap_constants(e, atol=1e-12) == y


def test_bad_input() -> None:
    with pytest.raises(KanpilerError, match="SymPy expression"):
        snap_constants("x + 1.0")  # type: ignore[arg-type]
