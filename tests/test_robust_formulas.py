"""Formulas come back clean: noise dropped, constants merged and named, text independent of load."""

from __future__ import annotations

import math
import signal
import threading

import pytest
import sympy
import torch

import kanpiler
from kanpiler.convert import snap_constants
from kanpiler.convert.cleanup import drop_noise, merge_constants, round_constants, simplify_bounded
from kanpiler.convert.constants import decimal_cost, snap_number
from kanpiler.errors import KanpilerError

x, x1, x2 = sympy.symbols("x x1 x2")
F = sympy.Float


def formula_of(model) -> sympy.Expr:
    """The one output's formula (``kanpiler.formula`` returns one per output)."""
    read = getattr(kanpiler, "formula", None) or kanpiler.to_sympy
    (expr,) = read(model)
    return expr


def test_snapping_works_on_the_whole_expression() -> None:
    raw = F(1.34017750238208) * x1 * (F(0.746169815731548) * x2 + F(1.3e-17)) - F(1.0e-17)
    assert snap_constants(raw, rtol=1e-3) == x1 * x2
    assert snap_constants(raw) == x1 * x2


@pytest.mark.parametrize(
    ("value", "rtol"), [(59 / 7 / math.e, 1e-3), (-23 * math.pi**2 / 9, 1e-3), (6.88844, 1e-3)]
)
def test_loose_tolerance_never_gives_a_form_more_complex_than_the_decimal(value, rtol) -> None:
    got = snap_constants(F(value) * x, rtol=rtol)
    # the decimal (or the short decimal 31/10 it rounds to), not 59*x*exp(-1)/7
    assert not got.has(sympy.E, sympy.pi, sympy.exp), got


def test_rationals_come_before_named_constants() -> None:
    assert snap_number(1.5000004, rtol=1e-6) == sympy.Rational(3, 2)
    assert snap_number(0.3333333, rtol=1e-6) == sympy.Rational(1, 3)
    assert decimal_cost(3.14159, 1e-3) == 3


NATURAL = [
    ("x/(2*pi**3)", 1 / (2 * sympy.pi**3)),
    ("3*x/(20*pi)", sympy.Rational(3, 20) / sympy.pi),
    ("(10 + pi)*x", 10 + sympy.pi),
    ("sqrt(10)*x", sympy.sqrt(10)),
    ("2*sqrt(10)*x", 2 * sympy.sqrt(10)),
    ("(4 - pi)*x", 4 - sympy.pi),
    ("(e - pi)*x", sympy.E - sympy.pi),
    ("e**4*x", sympy.E**4),
    ("pi/e*x", sympy.pi / sympy.E),
]


@pytest.mark.parametrize(("text", "constant"), NATURAL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_names_natural_constants(text, constant, dtype) -> None:
    got = formula_of(kanpiler.compile(text, dtype=dtype))
    assert not got.atoms(sympy.Float), got
    assert sympy.simplify(got - constant * x) == 0


def test_sin_pi_leaves_no_float_noise() -> None:
    for dtype in (torch.float32, torch.float64):
        assert formula_of(kanpiler.compile("sin(pi) + x", dtype=dtype)) == x


def test_drop_noise_keeps_small_coefficients_of_variables() -> None:
    assert drop_noise(F(1e-50) * x + 1) == F(1e-50) * x + 1
    assert drop_noise(x + F(1.2246e-16)) == x
    assert drop_noise(sympy.sin(x + F(1e-17)) + F(2.0)) == sympy.sin(x) + F(2.0)


def test_merge_constants_multiplies_out_factors() -> None:
    got = merge_constants(F(2.0) * x1 * (F(0.5) * x2 + F(0.25)))
    assert sympy.expand(got - (x1 * x2 + x1 / 2)) == 0


def test_round_constants() -> None:
    e = F(1.99999) * sympy.sin(F(0.333333) * x) + F(0.5000001) + sympy.pi
    assert round_constants(e, 3) == 2 * sympy.sin(F(0.333) * x) + F(0.5) + sympy.pi
    assert round_constants(F(2.71828) * x, 0) == 3 * x
    with pytest.raises(KanpilerError, match="digits"):
        round_constants(x, -1)
    with pytest.raises(KanpilerError, match="SymPy"):
        round_constants("x", 2)  # type: ignore[arg-type]


def test_simplification_uses_no_signal_and_no_thread() -> None:
    before_threads = threading.active_count()
    previous = signal.getsignal(signal.SIGALRM)
    hard = sum(sympy.sin(x + k) ** k * sympy.cos(x - k) ** (k + 1) for k in range(1, 25))
    for _ in range(2):
        assert simplify_bounded(hard) == hard  # beyond the size bound: returned as is
    assert simplify_bounded(sympy.sin(x) ** 2 + sympy.cos(x) ** 2 + x * (x + 1) - x**2) == x + 1
    assert threading.active_count() == before_threads
    assert signal.getsignal(signal.SIGALRM) is previous


def test_to_sympy_in_worker_threads_leaves_nothing_running() -> None:
    model = kanpiler.compile("exp(-x**2/2)/sqrt(2*pi) + sin(x)**2", dtype=torch.float64)
    results: list = []
    workers = [threading.Thread(target=lambda: results.append(formula_of(model)))
               for _ in range(3)]  # fmt: skip
    before = threading.active_count()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert threading.active_count() == before
    assert len({str(r) for r in results}) == 1


def test_formula_text_is_the_same_when_the_machine_is_loaded() -> None:
    """Load is simulated by a busy thread; the result depends on work, not on time."""
    model = kanpiler.compile("x*y + sin(x)*cos(y) + exp(-x)/3", dtype=torch.float64)
    idle = str(formula_of(model))
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(i * i for i in range(10_000))

    busy = [threading.Thread(target=burn) for _ in range(3)]
    for t in busy:
        t.start()
    try:
        loaded = str(formula_of(model))
    finally:
        stop.set()
        for t in busy:
            t.join()
    assert loaded == idle
