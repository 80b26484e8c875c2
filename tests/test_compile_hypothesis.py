"""Random formulas of the language compile exactly or raise a KanpilerError: never a wrong model.

Formulas are generated as IR with the ``kanpiler.ir`` builders. The reference evaluates the
IR node by node in numpy float64 with a function table written here (independent of kanpiler's
library and lowering); points where any intermediate value is not real and finite (``log`` of a
negative number, ``cos(sqrt(x))`` at ``x < 0``, ``u**v`` with a variable exponent at ``u <= 0``)
are outside the real semantics and not compared.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

import kanpiler
from kanpiler import ir
from kanpiler.ir import Op, walk
from kanpiler.layout import verify

VARS = ["x", "y", "z"]
#: more examples for a deeper run: KANPILER_HYPOTHESIS_EXAMPLES=5000 pytest ...
EXAMPLES = int(os.environ.get("KANPILER_HYPOTHESIS_EXAMPLES", "120"))

NUMPY = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "cot": lambda v: 1 / np.tan(v), "sec": lambda v: 1 / np.cos(v),
    "csc": lambda v: 1 / np.sin(v), "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "exp": np.exp,
    "log": np.log, "log10": np.log10, "log2": np.log2, "sqrt": np.sqrt,
    "cbrt": lambda v: np.where(v >= 0, np.cbrt(v), np.nan), "square": np.square,
    "abs": np.abs, "sign": np.sign, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "erf": special.erf, "gaussian": lambda v: np.exp(-v * v),
    "min": np.minimum, "max": np.maximum,
}  # fmt: skip


def reference(expr: ir.Expr, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, largest |intermediate|) per point; NaN where an intermediate is not real/finite."""
    val: dict[ir.Expr, np.ndarray] = {}
    big = np.zeros(len(X))
    with np.errstate(all="ignore"):
        for node in walk(expr):
            a = [val[c] for c in node.args]
            if node.op is Op.VAR:
                v = X[:, VARS.index(node.arg)]
            elif node.op in (Op.CONST, Op.NAMED):
                v = np.full(len(X), node.value)
            elif node.op is Op.ADD:
                v = sum(a[1:], a[0])
            elif node.op is Op.MUL:
                v = np.prod(np.stack(a), 0)
            elif node.op is Op.NEG:
                v = -a[0]
            elif node.op is Op.RECIP:
                v = 1 / a[0]
            elif node.op is Op.POW and node.args[1].op in (Op.CONST, Op.NAMED):
                v = np.power(a[0], a[1])
            elif node.op is Op.POW:  # a variable exponent: defined for a positive base
                v = np.where(a[0] > 0, np.power(a[0], a[1]), np.nan)
            else:
                v = NUMPY[node.arg](*a)
            # the runtime's singularity-safe functions clamp arguments within sqrt(tiny) ~ 1e-154
            # of 0 (log, 1/x, ...): such points are outside what a model promises
            v = np.where(np.isfinite(v) & ~((v != 0) & (np.abs(v) < 1e-150)), v, np.nan)
            val[node] = v
            big = np.maximum(big, np.abs(v))
    return val[expr], big


leaves = st.one_of(
    st.sampled_from([ir.var(v) for v in VARS]),
    st.sampled_from([-3, -2, -1, 1, 2, 3, 0.5, 1.5, -2.5]).map(ir.const),
    st.just(ir.named("pi")),
)
UNARY = [n for n in NUMPY if n not in ("min", "max")]


def extend(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(children, children).map(lambda t: t[0] + t[1]),
        st.tuples(children, children).map(lambda t: t[0] * t[1]),
        st.tuples(children, children).map(lambda t: t[0] - t[1]),
        st.tuples(children, children).map(lambda t: t[0] / t[1]),
        st.tuples(children, st.sampled_from([-3, -2, -1, 2, 3, 5, 0.5, 1.5])).map(
            lambda t: t[0] ** t[1]
        ),
        st.tuples(st.sampled_from(UNARY), children).map(lambda t: ir.call(t[0], t[1])),
        st.tuples(st.sampled_from(["min", "max"]), children, children).map(
            lambda t: ir.call(t[0], t[1], t[2])
        ),
        st.tuples(children, children).map(lambda t: t[0] ** t[1]),
    )


formulas = st.recursive(leaves, extend, max_leaves=10)


def assert_matches(got: np.ndarray, expr: ir.Expr, X: np.ndarray) -> None:
    """``got`` equals the reference wherever every intermediate is real, finite and < 1e8;
    the tolerance covers rounding of large intermediates and ill-conditioning."""
    want, big = reference(expr, X)
    ok = np.isfinite(want) & (big < 1e8)
    bumped, _ = reference(expr, X * (1 + 8 * np.finfo(float).eps))
    sens = np.nan_to_num(np.abs(bumped - want), nan=np.inf)
    tol = 1e-8 * (1 + big) + 16 * sens
    bad = ok & ~(np.abs(got - want) <= tol)
    assert not bad.any(), (str(expr), X[bad][:2], got[bad][:2], want[bad][:2])


def check(expr: ir.Expr, lo: float, hi: float) -> None:
    try:
        model = kanpiler.compile(expr, VARS, dtype=torch.float64)
    except kanpiler.KanpilerError:
        return  # a clear refusal is allowed; a wrong model is not
    verify(model.layout)
    X = np.random.default_rng(0).uniform(lo, hi, (64, 3))
    with torch.no_grad():
        got = model(torch.from_numpy(X)).numpy()[:, 0]
    assert_matches(got, expr, X)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(formulas)
def test_random_formulas_compile_exactly_or_refuse(expr):
    check(expr, -2.0, 2.0)
    check(expr, 0.1, 2.5)


@settings(
    max_examples=max(1, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(formulas, min_size=1, max_size=4))
def test_random_output_lists_keep_their_order(exprs):
    try:
        model = kanpiler.compile(exprs, VARS, dtype=torch.float64)
    except kanpiler.KanpilerError:
        return
    X = np.random.default_rng(1).uniform(0.1, 2.5, (32, 3))
    with torch.no_grad():
        got = model(torch.from_numpy(X)).numpy()
    assert got.shape == (32, len(exprs))
    for k, e in enumerate(exprs):
        assert_matches(got[:, k], e, X)
