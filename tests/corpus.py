"""The shared benchmark formulas as test data, with an independent SymPy/numpy reference.

``rows()`` yields every formula of ``tests/data/*.csv``; ``Row.sample`` draws points in the
row's box; ``Row.reference`` evaluates SymPy's own reading of the formula (not kanpiler's) in
complex128 numpy, so rows that are not real-valued on their box can be detected and skipped.
The reference uses ``sympy.sympify`` on the *corpus* text: that is test code reading known data,
never kanpiler reading user input.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import sympy

DATA = Path(__file__).parent / "data"
FILES = ("classic.csv", "feynman_bonus.csv")

# numpy-style names used by the corpus, mapped to SymPy's
_SYMPY_NAMES = {
    "arcsin": sympy.asin,
    "arccos": sympy.acos,
    "arctan": sympy.atan,
    "arcsinh": sympy.asinh,
    "arccosh": sympy.acosh,
    "arctanh": sympy.atanh,
    "ln": sympy.log,
    "pi": sympy.pi,
    "e": sympy.E,
    "E": sympy.E,
}


@dataclass(frozen=True)
class Row:
    file: str
    name: str
    formula: str
    variables: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def id(self) -> str:
        return f"{self.file.split('.')[0]}:{self.name}"

    @cached_property
    def sympy_expr(self) -> sympy.Expr:
        """SymPy's reading of the formula; listed variables always win over constants."""
        local = dict(_SYMPY_NAMES)
        for v in self.variables:
            local[v] = sympy.Symbol(v)
        return sympy.sympify(self.formula, locals=local)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` uniform points in the box, shape (n, n_vars), float64."""
        rng = np.random.default_rng(seed)
        lo, hi = np.array(self.low), np.array(self.high)
        return lo + (hi - lo) * rng.random((n, len(self.variables)))

    def reference(self, X: np.ndarray) -> np.ndarray:
        """SymPy's value at the rows of X, complex128 (check ``is_real`` before using)."""
        syms = [sympy.Symbol(v) for v in self.variables]
        f = sympy.lambdify(syms, self.sympy_expr, modules="numpy")
        Xc = np.asarray(X, dtype=np.complex128)
        try:
            with np.errstate(all="ignore"):
                out = f(*[Xc[:, i] for i in range(Xc.shape[1])])
        except (NameError, TypeError):  # e.g. harmonic(x): no numpy reference
            return np.full(X.shape[0], np.nan, dtype=np.complex128)
        return np.broadcast_to(np.asarray(out, dtype=np.complex128), (X.shape[0],)).copy()

    def real_reference(self, X: np.ndarray) -> np.ndarray | None:
        """Float64 reference, or ``None`` if not finite and real at every point of X."""
        y = self.reference(X)
        finite = np.isfinite(y.real) & np.isfinite(y.imag)
        if not finite.all():
            return None
        if np.any(np.abs(y.imag) > 1e-12 * np.maximum(1.0, np.abs(y.real))):
            return None
        return y.real.astype(np.float64)


@cache
def rows() -> tuple[Row, ...]:
    out = []
    for fname in FILES:
        with open(DATA / fname, newline="") as fh:
            for rec in csv.DictReader(fh):
                vs = json.loads(rec["variables"])
                out.append(
                    Row(
                        file=fname,
                        name=rec["name"],
                        formula=rec["formula"],
                        variables=tuple(v["name"] for v in vs),
                        low=tuple(float(v["low"]) for v in vs),
                        high=tuple(float(v["high"]) for v in vs),
                    )
                )
    return tuple(out)


def real_rows(
    n: int = 64, seed: int = 0
) -> tuple[list[tuple[Row, np.ndarray, np.ndarray]], list[Row]]:
    """(rows with a real reference on n sampled points as (row, X, y), skipped rows)."""
    kept, skipped = [], []
    for row in rows():
        X = row.sample(n, seed)
        y = row.real_reference(X)
        if y is None:
            skipped.append(row)
        else:
            kept.append((row, X, y))
    return kept, skipped
