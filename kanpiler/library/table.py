"""The table: ONE list of the named functions of the formula language, and lookups.

In: a name (``"sin"``, an alias such as ``"arcsin"``, or a power name such as ``"x^2"``).
Out: its :class:`Function` record; the named constants. Stage: library.

>>> get("arcsin").name, get("x^2").power, CONSTANTS["pi"] > 3
('asin', 2.0, True)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ..errors import KanpilerError
from .powers import power
from .record import Function
from .safe import (
    _all_real,
    _between,
    _safe_cosh,
    _safe_exp,
    _safe_log,
    _safe_recip_arg,
    _safe_sinh,
    _safe_sqrt,
    _safe_tan,
    _sympy,
    _tiny,
    _torch,
    _unit_clamp,
)


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
    **facts: Any,
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
        sympy_class=facts.pop("sympy_class", getattr(sym, "sympy_class", "")),
        **facts,
    )


# ---- affine-canonical rules (see kanpiler.convert.canonical) --------------------------------


def _shift_to_scale(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
    """exp(a*x + b) = e**b * exp(a*x)."""
    return (a, 0.0, c * math.exp(b), d) if abs(b) < 700 else (a, b, c, d)


def _log_rule(base: float) -> Callable[..., tuple[float, float, float, float]]:
    def rule(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        if a == 0.0:
            return (a, b, c, d)
        # log(a*x+b) = log|a| + log(sign(a)*(x + b/a))
        return (math.copysign(1.0, a), b / abs(a), c, d + c * math.log(abs(a)) / math.log(base))

    return rule


def _scale_out(sign_only: bool) -> Callable[..., tuple[float, float, float, float]]:
    def rule(a: float, b: float, c: float, d: float) -> tuple[float, float, float, float]:
        if a == 0.0:
            return (a, b, c, d)
        # |a*x+b| = |a|*|x+b/a| ; sign(a*x+b) = sign(a)*sign(x+b/a)
        return (1.0, b / a, c * (math.copysign(1.0, a) if sign_only else abs(a)), d)

    return rule


def _sign_exact(v: Any) -> int:
    return (v > 0) - (v < 0)


def _s(attr: str) -> Callable[..., Any]:
    def build(*a: Any) -> Any:
        return getattr(_sympy(), attr)(*a)

    build.sympy_class = attr  # type: ignore[attr-defined]
    return build


def _t(attr: str) -> Callable[..., Any]:
    return lambda *a: getattr(_torch(), attr)(*a)


def _sigmoid_sym(x: Any) -> Any:
    s = _sympy()
    return 1 / (1 + s.exp(-x))


_ENTRIES: tuple[Function, ...] = (
    _entry("sin", _s("sin"), _t("sin"), parity="odd", period=2 * math.pi, inverse="asin"),
    _entry("cos", _s("cos"), _t("cos"), parity="even", period=2 * math.pi, inverse="acos"),
    _entry(
        "tan",
        _s("tan"),
        _t("tan"),
        _safe_tan,
        in_domain=lambda x: _torch().isfinite(x) & (_torch().cos(x) != 0),
        domain_text="cos(x) != 0",
        complexity=3,
        parity="odd",
        inverse="atan",
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
        parity="odd",
        inverse="sin",
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
        inverse="cos",
    ),
    _entry(
        "atan",
        _s("atan"),
        _t("atan"),
        aliases=("arctan",),
        complexity=3,
        latex="\\operatorname{atan}\\left({x}\\right)",
        parity="odd",
        inverse="tan",
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
        parity="odd",
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
        parity="even",
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
        parity="odd",
    ),
    _entry("sinh", _s("sinh"), _t("sinh"), _safe_sinh, complexity=3, parity="odd", inverse="asinh"),
    _entry(
        "cosh", _s("cosh"), _t("cosh"), _safe_cosh, complexity=3, parity="even", inverse="acosh"
    ),
    _entry("tanh", _s("tanh"), _t("tanh"), complexity=3, parity="odd", inverse="atanh"),
    _entry(
        "asinh",
        _s("asinh"),
        _t("asinh"),
        aliases=("arcsinh",),
        complexity=3,
        latex="\\operatorname{asinh}\\left({x}\\right)",
        parity="odd",
        inverse="sinh",
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
        inverse="cosh",
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
        parity="odd",
        inverse="tanh",
    ),
    _entry(
        "exp",
        _s("exp"),
        _t("exp"),
        _safe_exp,
        latex="e^{{x}}",
        power_scales_argument=True,
        affine=_shift_to_scale,
        inverse="log",
    ),
    _entry(
        "log",
        _s("log"),
        _t("log"),
        _safe_log,
        in_domain=_between(0, math.inf, lo_open=True),
        domain_text="x > 0",
        aliases=("ln",),
        affine=_log_rule(math.e),
        inverse="exp",
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
        affine=_log_rule(10.0),
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
        affine=_log_rule(2.0),
    ),
    _entry(
        "sqrt",
        _s("sqrt"),
        _t("sqrt"),
        _safe_sqrt,
        in_domain=_between(0, math.inf),
        domain_text="x >= 0",
        latex="\\sqrt{{x}}",
        power_form=0.5,
        sympy_class="",
        inverse="x^2",
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
        power_form=1.0 / 3.0,
        sympy_class="",
        inverse="x^3",
    ),
    _entry(
        "square",
        lambda x: x**2,
        lambda x: x * x,
        fit=False,
        latex="{x}^{2}",
        parity="even",
        power_form=2.0,
        exact_value=lambda v: v * v,
    ),
    _entry(
        "abs",
        _s("Abs"),
        _t("abs"),
        latex="\\left|{x}\\right|",
        parity="even",
        exact_value=abs,
        affine=_scale_out(sign_only=False),
    ),
    _entry(
        "sign",
        _s("sign"),
        _t("sign"),
        aliases=("sgn",),
        complexity=3,
        latex="\\operatorname{sign}\\left({x}\\right)",
        parity="odd",
        exact_value=_sign_exact,
        affine=_scale_out(sign_only=True),
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
        parity="odd",
    ),
    _entry(
        "gaussian",
        lambda x: _sympy().exp(-(x**2)),
        lambda x: _torch().exp(-(x * x)),
        complexity=3,
        latex="e^{-{x}^{2}}",
        parity="even",
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
#: named constants of the language, the one table (a declared variable of the same name always
#: wins); ``E`` is spelled ``e`` in the IR
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "E": math.e}
#: spellings of a named constant -> its IR name
CONSTANT_NAMES: dict[str, str] = {"pi": "pi", "e": "e", "E": "e"}

IDENTITY = power(1.0)

#: functions added by :func:`kanpiler.library.register`, in order (also in ``FUNCTIONS``)
REGISTERED: list[Function] = []
#: SymPy function class -> registered record, for reading SymPy expressions back
SYMPY_CLASSES: dict[Any, Function] = {}

_POWER_RE = re.compile(r"^x\^\(?(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\)?$")
_SPECIAL = {"x": 1.0, "1/x": -1.0, "1/x^2": -2.0, "1/sqrt(x)": -0.5, "id": 1.0}


def names(arity: int | None = None) -> list[str]:
    """Canonical names of the table's functions (optionally of one arity), registered last."""
    return [f.name for f in (*_ENTRIES, *REGISTERED) if arity is None or f.arity == arity]


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
    table = [f for f in _ENTRIES if f.fit and f.arity == 1 and f.name != "sqrt"]
    return powers + table + [f for f in REGISTERED if f.fit]


def sympy_inverse() -> dict[Any, Function]:
    """SymPy function class -> library record (from each record's ``sympy_class``), for
    reading SymPy expressions back."""
    s = _sympy()
    return {getattr(s, f.sympy_class): f for f in _ENTRIES if f.sympy_class} | SYMPY_CLASSES


__all__ = [
    "FUNCTIONS",
    "ALIASES",
    "CONSTANTS",
    "CONSTANT_NAMES",
    "IDENTITY",
    "names",
    "all_names",
    "canonical",
    "get",
    "fit_library",
    "sympy_inverse",
]
