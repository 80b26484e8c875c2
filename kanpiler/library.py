"""The function library: ONE table of the univariate (and a few two-argument) functions.

In: a name (``"sin"``, an alias such as ``"arcsin"``, or a power name such as ``"x^2"``).
Out: a frozen :class:`Function` record with its SymPy constructor, exact and singularity-safe
torch callables, domain, label and complexity. Parser, compiler, runtime, symbolic fitting and
printers all read this table; nothing else in kanpiler spells out what a function is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

from .errors import KanpilerError


def _torch() -> Any:
    import torch

    return torch


def _sympy() -> Any:
    import sympy

    return sympy


def _tiny(x: Any) -> float:
    """A threshold far below any value a user meets, yet keeping 1/x and log(x) finite."""
    return math.sqrt(_torch().finfo(x.dtype).tiny) if x.is_floating_point() else 1e-150


def _big(x: Any) -> float:
    """Largest argument of exp that stays finite in x's dtype."""
    return math.log(_torch().finfo(x.dtype).max) if x.is_floating_point() else 700.0


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

    def __call__(self, *xs: Any) -> Any:
        return self.torch_fn(*xs)

    def to_sympy(self, *args: Any) -> Any:
        return self.sympy_fn(*args)

    @property
    def display(self) -> str:
        return self.label or self.name


def _all_real(x: Any) -> Any:
    return _torch().isfinite(x)


def _between(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Callable:
    def mask(x: Any) -> Any:
        left = x > lo if lo_open else x >= lo
        right = x < hi if hi_open else x <= hi
        return left & right & _torch().isfinite(x)

    return mask


def _nonzero(x: Any) -> Any:
    return (x != 0) & _torch().isfinite(x)


# ---- singularity-safe torch variants -------------------------------------------------------


def _safe_recip_arg(x: Any) -> Any:
    """x moved away from 0 by a tiny threshold (keeps its sign; 0 goes to +tiny)."""
    t = _torch()
    tiny = _tiny(x)
    sign = t.where(x < 0, -t.ones_like(x), t.ones_like(x))
    return t.where(x.abs() < tiny, sign * tiny, x)


def _safe_log(x: Any) -> Any:
    t = _torch()
    return t.log(t.clamp(x, min=_tiny(x)))


def _safe_sqrt(x: Any) -> Any:
    t = _torch()
    return t.sqrt(t.clamp(x, min=_tiny(x)))


def _safe_exp(x: Any) -> Any:
    t = _torch()
    return t.exp(t.clamp(x, max=_big(x)))


def _safe_tan(x: Any) -> Any:
    t = _torch()
    return t.sin(x) / _safe_recip_arg(t.cos(x))


def _unit_clamp(x: Any, open_: bool = False) -> Any:
    t = _torch()
    eps = t.finfo(x.dtype).eps if (open_ and x.is_floating_point()) else 0.0
    return t.clamp(x, -1 + eps, 1 - eps)


def _safe_cosh(x: Any) -> Any:
    t = _torch()
    b = _big(x)
    return t.cosh(t.clamp(x, -b, b))


def _safe_sinh(x: Any) -> Any:
    t = _torch()
    b = _big(x)
    return t.sinh(t.clamp(x, -b, b))


# ---- power functions x**p -------------------------------------------------------------------


def _is_int(p: float) -> bool:
    return float(p).is_integer()


def power_name(p: float) -> str:
    """Canonical name of x**p: ``x^2``, ``x^-1``, ``x^1.5``."""
    p = float(p)
    if p == 1.0:
        return "x"
    if _is_int(p):
        return f"x^{int(p)}"
    return f"x^{p!r}"


def _sympy_exponent(p: float) -> Any:
    """Exact SymPy exponent: Integer, a small-denominator Rational that equals p, else Float."""
    s = _sympy()
    if _is_int(p):
        return s.Integer(int(p))
    fr = Fraction(p).limit_denominator(1000)
    if abs(float(fr) - p) <= 4 * math.ulp(p):
        return s.Rational(fr.numerator, fr.denominator)
    return s.Float(p)


def _int_power(x: Any, n: int) -> Any:
    # pow with an integer exponent is exact for negative bases too
    return x**n if n >= 0 else 1.0 / (x ** (-n))


def _make_power(p: float) -> Function:
    p = float(p)
    if not math.isfinite(p):
        raise KanpilerError(f"power exponent must be finite, got {p}")
    if _is_int(p):
        n = int(p)

        def exact(x: Any) -> Any:
            return _int_power(x, n)

        def safe(x: Any) -> Any:
            return _int_power(x if n >= 0 else _safe_recip_arg(x), n)

        in_domain = _all_real if n >= 0 else _nonzero
        domain_text = "all reals" if n >= 0 else "x != 0"
    else:

        def exact(x: Any) -> Any:
            return _torch().pow(x, p)

        def safe(x: Any) -> Any:
            t = _torch()
            lo = _tiny(x) if p < 1 else 0.0
            return t.pow(t.clamp(x, min=lo), p)

        in_domain = _between(0.0, math.inf, lo_open=p < 0)
        domain_text = "x > 0" if p < 0 else "x >= 0"
    name = power_name(p)
    label = "x" if p == 1 else name
    complexity = 1 if p == 1 else (2 if _is_int(p) and abs(p) <= 3 else 3)
    exp_s = str(int(p)) if _is_int(p) else repr(p)
    return Function(
        name=name,
        sympy_fn=lambda x: _sympy().Pow(x, _sympy_exponent(p)),
        torch_fn=exact,
        safe_fn=safe,
        in_domain=in_domain,
        domain_text=domain_text,
        label=label,
        latex=("{x}" if p == 1 else "{x}^{" + exp_s + "}"),
        complexity=complexity,
        power=p,
        fit=p in (1.0, 2.0, 3.0, 4.0, -1.0, -2.0, 0.5, -0.5, 1.5),
    )


@lru_cache(maxsize=4096)
def power(p: float) -> Function:
    """The library record of x**p for any finite real p (cached)."""
    return _make_power(float(p))


# ---- the table ------------------------------------------------------------------------------


def _entry(
    name: str,
    sym: Callable[[Any], Any],
    exact: Callable[[Any], Any],
    safe: Callable[[Any], Any] | None = None,
    in_domain: Callable[[Any], Any] = _all_real,
    domain_text: str = "all reals",
    aliases: tuple[str, ...] = (),
    complexity: int = 2,
    latex: str = "",
    fit: bool = True,
    arity: int = 1,
) -> Function:
    return Function(
        name=name,
        sympy_fn=sym,
        torch_fn=exact,
        safe_fn=safe or exact,
        in_domain=in_domain,
        domain_text=domain_text,
        arity=arity,
        aliases=aliases,
        label=name,
        latex=latex or ("\\" + name + "\\left({x}\\right)"),
        complexity=complexity,
        fit=fit,
    )


def _s(attr: str) -> Callable[..., Any]:
    return lambda *a: getattr(_sympy(), attr)(*a)


def _t(attr: str) -> Callable[..., Any]:
    return lambda *a: getattr(_torch(), attr)(*a)


def _sigmoid_sym(x: Any) -> Any:
    s = _sympy()
    return 1 / (1 + s.exp(-x))


_ENTRIES: tuple[Function, ...] = (
    _entry("sin", _s("sin"), _t("sin")),
    _entry("cos", _s("cos"), _t("cos")),
    _entry(
        "tan",
        _s("tan"),
        _t("tan"),
        _safe_tan,
        in_domain=lambda x: _torch().isfinite(x) & (_torch().cos(x) != 0),
        domain_text="cos(x) != 0",
        complexity=3,
    ),
    _entry(
        "asin",
        _s("asin"),
        _t("asin"),
        lambda x: _torch().asin(_unit_clamp(x)),
        in_domain=_between(-1, 1),
        domain_text="-1 <= x <= 1",
        aliases=("arcsin",),
        complexity=3,
        latex="\\operatorname{asin}\\left({x}\\right)",
    ),
    _entry(
        "acos",
        _s("acos"),
        _t("acos"),
        lambda x: _torch().acos(_unit_clamp(x)),
        in_domain=_between(-1, 1),
        domain_text="-1 <= x <= 1",
        aliases=("arccos",),
        complexity=3,
        latex="\\operatorname{acos}\\left({x}\\right)",
    ),
    _entry(
        "atan",
        _s("atan"),
        _t("atan"),
        aliases=("arctan",),
        complexity=3,
        latex="\\operatorname{atan}\\left({x}\\right)",
    ),
    _entry(
        "cot",
        _s("cot"),
        lambda x: 1.0 / _torch().tan(x),
        lambda x: _torch().cos(x) / _safe_recip_arg(_torch().sin(x)),
        in_domain=lambda x: _torch().isfinite(x) & (_torch().sin(x) != 0),
        domain_text="sin(x) != 0",
        complexity=3,
        fit=False,
    ),
    _entry(
        "sec",
        _s("sec"),
        lambda x: 1.0 / _torch().cos(x),
        lambda x: 1.0 / _safe_recip_arg(_torch().cos(x)),
        in_domain=lambda x: _torch().isfinite(x) & (_torch().cos(x) != 0),
        domain_text="cos(x) != 0",
        complexity=3,
        fit=False,
    ),
    _entry(
        "csc",
        _s("csc"),
        lambda x: 1.0 / _torch().sin(x),
        lambda x: 1.0 / _safe_recip_arg(_torch().sin(x)),
        in_domain=lambda x: _torch().isfinite(x) & (_torch().sin(x) != 0),
        domain_text="sin(x) != 0",
        complexity=3,
        fit=False,
    ),
    _entry("sinh", _s("sinh"), _t("sinh"), _safe_sinh, complexity=3),
    _entry("cosh", _s("cosh"), _t("cosh"), _safe_cosh, complexity=3),
    _entry("tanh", _s("tanh"), _t("tanh"), complexity=3),
    _entry(
        "asinh",
        _s("asinh"),
        _t("asinh"),
        aliases=("arcsinh",),
        complexity=3,
        latex="\\operatorname{asinh}\\left({x}\\right)",
    ),
    _entry(
        "acosh",
        _s("acosh"),
        _t("acosh"),
        lambda x: _torch().acosh(_torch().clamp(x, min=1.0)),
        in_domain=_between(1, math.inf),
        domain_text="x >= 1",
        aliases=("arccosh",),
        complexity=3,
        latex="\\operatorname{acosh}\\left({x}\\right)",
    ),
    _entry(
        "atanh",
        _s("atanh"),
        _t("atanh"),
        lambda x: _torch().atanh(_unit_clamp(x, open_=True)),
        in_domain=_between(-1, 1, True, True),
        domain_text="-1 < x < 1",
        aliases=("arctanh",),
        complexity=3,
        latex="\\operatorname{atanh}\\left({x}\\right)",
    ),
    _entry("exp", _s("exp"), _t("exp"), _safe_exp, latex="e^{{x}}"),
    _entry(
        "log",
        _s("log"),
        _t("log"),
        _safe_log,
        in_domain=_between(0, math.inf, lo_open=True),
        domain_text="x > 0",
        aliases=("ln",),
    ),
    _entry(
        "log10",
        lambda x: _sympy().log(x, 10),
        _t("log10"),
        lambda x: _safe_log(x) / math.log(10.0),
        in_domain=_between(0, math.inf, lo_open=True),
        domain_text="x > 0",
        complexity=3,
        latex="\\log_{10}\\left({x}\\right)",
    ),
    _entry(
        "log2",
        lambda x: _sympy().log(x, 2),
        _t("log2"),
        lambda x: _safe_log(x) / math.log(2.0),
        in_domain=_between(0, math.inf, lo_open=True),
        domain_text="x > 0",
        complexity=3,
        fit=False,
        latex="\\log_{2}\\left({x}\\right)",
    ),
    _entry(
        "sqrt",
        _s("sqrt"),
        _t("sqrt"),
        _safe_sqrt,
        in_domain=_between(0, math.inf),
        domain_text="x >= 0",
        latex="\\sqrt{{x}}",
    ),
    _entry(
        "cbrt",
        _s("cbrt"),
        lambda x: _torch().pow(x, 1.0 / 3.0),
        lambda x: _torch().pow(_torch().clamp(x, min=_tiny(x)), 1.0 / 3.0),
        in_domain=_between(0, math.inf),
        domain_text="x >= 0 (principal root, as SymPy)",
        complexity=3,
        fit=False,
        latex="\\sqrt[3]{{x}}",
    ),
    _entry(
        "square",
        lambda x: x**2,
        lambda x: x * x,
        fit=False,
        latex="{x}^{2}",
    ),
    _entry("abs", _s("Abs"), _t("abs"), latex="\\left|{x}\\right|"),
    _entry(
        "sign",
        _s("sign"),
        _t("sign"),
        aliases=("sgn",),
        complexity=3,
        latex="\\operatorname{sign}\\left({x}\\right)",
    ),
    _entry(
        "sigmoid",
        _sigmoid_sym,
        _t("sigmoid"),
        complexity=3,
        fit=False,
        latex="\\sigma\\left({x}\\right)",
    ),
    _entry(
        "erf",
        _s("erf"),
        lambda x: _torch().special.erf(x),
        complexity=3,
        latex="\\operatorname{erf}\\left({x}\\right)",
    ),
    _entry(
        "gaussian",
        lambda x: _sympy().exp(-(x**2)),
        lambda x: _torch().exp(-(x * x)),
        complexity=3,
        latex="e^{-{x}^{2}}",
    ),
    _entry(
        "min",
        _s("Min"),
        _t("minimum"),
        arity=2,
        fit=False,
        latex="\\min\\left({x}\\right)",
    ),
    _entry(
        "max",
        _s("Max"),
        _t("maximum"),
        arity=2,
        fit=False,
        latex="\\max\\left({x}\\right)",
    ),
)

#: canonical name -> record (powers are not listed; see :func:`power`)
FUNCTIONS: dict[str, Function] = {f.name: f for f in _ENTRIES}
#: alias -> canonical name
ALIASES: dict[str, str] = {a: f.name for f in _ENTRIES for a in f.aliases}
#: named constants of the language (a declared variable of the same name always wins)
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "E": math.e}

IDENTITY = power(1.0)

_POWER_RE = re.compile(r"^x\^\(?(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\)?$")
_SPECIAL = {"x": 1.0, "1/x": -1.0, "1/x^2": -2.0, "1/sqrt(x)": -0.5, "id": 1.0}


def names(arity: int | None = None) -> list[str]:
    """Canonical names of the table's functions (optionally of one arity)."""
    return [f.name for f in _ENTRIES if arity is None or f.arity == arity]


def all_names() -> list[str]:
    """Every name a formula may call: canonical names and aliases."""
    return sorted(set(FUNCTIONS) | set(ALIASES))


def canonical(name: str) -> str | None:
    """The canonical name of a callable name or alias, else ``None``."""
    if name in FUNCTIONS:
        return name
    return ALIASES.get(name)


def get(name: str) -> Function:
    """Look a function up by canonical name, alias or power name (``"x^2"``, ``"x^-0.5"``)."""
    canon = canonical(name)
    if canon is not None:
        return FUNCTIONS[canon]
    if name in _SPECIAL:
        return power(_SPECIAL[name])
    m = _POWER_RE.match(name)
    if m:
        return power(float(m.group(1)))
    raise KanpilerError(
        f"unknown library function {name!r}; known: {', '.join(all_names())}, or x^p for a real p"
    )


def fit_library() -> list[Function]:
    """The default candidates of symbolic fitting (univariate, finite complexity)."""
    powers = [power(p) for p in (1.0, 2.0, 3.0, 4.0, -1.0, -2.0, 0.5, -0.5, 1.5)]
    return powers + [f for f in _ENTRIES if f.fit and f.arity == 1 and f.name != "sqrt"]


def sympy_inverse() -> dict[Any, Function]:
    """SymPy function class -> library record, for reading SymPy expressions back."""
    s = _sympy()
    table = {
        s.sin: "sin",
        s.cos: "cos",
        s.tan: "tan",
        s.cot: "cot",
        s.sec: "sec",
        s.csc: "csc",
        s.asin: "asin",
        s.acos: "acos",
        s.atan: "atan",
        s.sinh: "sinh",
        s.cosh: "cosh",
        s.tanh: "tanh",
        s.asinh: "asinh",
        s.acosh: "acosh",
        s.atanh: "atanh",
        s.exp: "exp",
        s.log: "log",
        s.Abs: "abs",
        s.sign: "sign",
        s.erf: "erf",
        s.Min: "min",
        s.Max: "max",
    }
    return {cls: FUNCTIONS[n] for cls, n in table.items()}
