"""Input domain of a model: where every symbolic edge is evaluated inside its function's domain.

In: a ``MultKAN`` and inputs ``x``. Out: the conditions each symbolic edge puts on its argument
(:func:`domain`), a per-point mask (:func:`in_domain`) and :func:`evaluate`, a checked forward
pass that warns or raises when points leave the domain. Stage: runtime. Training uses
singularity-safe functions (``log`` of a clamped argument, ``1/x`` moved off zero) so it stays
finite; the checked evaluation says when such a substitute, not the formula, gave the value.

>>> import torch, kanpiler
>>> model = kanpiler.compile("log(x) + 1/y", dtype=torch.float64)
>>> domain(model)
['log(x): x > 0', 'x^-1(y): y != 0']
>>> in_domain(model, torch.tensor([[2.0, 1.0], [-2.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
tensor([ True, False, False])
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .. import library
from ..errors import ConfigError, DomainError

__all__ = ["domain", "in_domain", "evaluate"]


def _edges(model: Any, li: int) -> list[tuple[library.Function, int, int, float, float]]:
    """Active symbolic edges of KAN layer ``li``: (function, i, j, a, b)."""
    return [(library.get(e.fn), e.i, e.j, e.a, e.b) for e in model.edges(li) if e.fn is not None]


def _restricted(fn: library.Function) -> bool:
    return fn.domain_text != "all reals"


def _argument(a: float, b: float, name: str) -> str:
    lin = name if a == 1 else f"{a:g}*{name}"
    if abs(b) <= 1e-12 * max(abs(a), 1.0):  # a shift of rounding size (1e-17 left by training)
        return lin
    return f"{lin} {'+' if b > 0 else '-'} {abs(b):g}"


def domain(model: Any) -> list[str]:
    """The conditions of the model's input domain, one per restricted symbolic edge, e.g.
    ``'log(x): x > 0'`` (the argument in the function's ``domain_text``). Edges after the first
    layer are named by their layer and node (``'sqrt(h1[0]): ...'``)."""
    out = []
    for li in range(model.depth):
        for fn, i, _j, a, b in _edges(model, li):
            if not _restricted(fn):
                continue
            name = model.variables[i] if li == 0 else f"h{li}[{i}]"
            arg = _argument(a, b, name)
            cond = fn.domain_text.replace("x", "\0").replace("\0", arg)
            out.append(f"{fn.name}({arg}): {cond}")
    return list(dict.fromkeys(out))


def in_domain(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` mask: the point's every symbolic edge argument lies in its function's domain
    and the output is finite (the value then is the formula's, not a safe substitute's)."""
    acts = model.record(x).acts
    ok = torch.isfinite(acts[-1]).all(dim=1)
    for li in range(model.depth):
        h = acts[li]
        for fn, i, _j, a, b in _edges(model, li):
            if _restricted(fn):
                ok &= fn.in_domain(a * h[:, i] + b)
    return ok


def evaluate(model: Any, x: torch.Tensor, *, outside: str = "raise") -> torch.Tensor:
    """``model(x)`` with the domain checked: points outside it raise a :class:`DomainError`
    (``outside="raise"``), give a ``RuntimeWarning`` (``"warn"``) or NaN (``"nan"``).

    >>> import kanpiler
    >>> model = kanpiler.compile("sqrt(x)", dtype=torch.float64)
    >>> evaluate(model, torch.tensor([[4.0]], dtype=torch.float64))
    tensor([[2.]], dtype=torch.float64)
    >>> evaluate(model, torch.tensor([[-1.0]], dtype=torch.float64), outside="nan")
    tensor([[nan]], dtype=torch.float64)
    """
    if outside not in ("raise", "warn", "nan"):
        raise ConfigError(f"outside must be 'raise', 'warn' or 'nan', got {outside!r}")
    ok = in_domain(model, x)
    with torch.no_grad():
        y = model(x)
    if bool(ok.all()):
        return y
    bad = torch.nonzero(~ok).flatten()
    where = f"{len(bad)} of {len(ok)} points (first: row {int(bad[0])}, {x[bad[0]].tolist()})"
    text = f"{where} lie outside the model's domain {domain(model) or '(finite outputs)'}"
    if outside == "raise":
        raise DomainError(text)
    if outside == "warn":
        warnings.warn(text, RuntimeWarning, stacklevel=2)
        return y
    return torch.where(ok[:, None], y, torch.full_like(y, float("nan")))
