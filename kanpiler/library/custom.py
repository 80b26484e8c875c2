"""User functions: one-line additions to the library table.

In: a name and a torch callable (optionally its SymPy form, domain, complexity). Out: a
:class:`~kanpiler.library.record.Function` record in ``FUNCTIONS``, so the name is callable in
formula text, a candidate of symbolic fitting, printed by the converters and stored in
checkpoints. Stage: library. A torch function without autograd support gets central-difference
gradients, so fitting and training through it work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import KanpilerError
from .record import Function
from .safe import _all_real, _sympy, _torch
from .table import _SPECIAL, ALIASES, CONSTANTS, FUNCTIONS, REGISTERED, SYMPY_CLASSES

__all__ = ["register", "unregister"]


def register(
    name: str,
    torch_fn: Callable[[Any], Any],
    sympy_fn: Callable[[Any], Any] | None = None,
    *,
    complexity: int = 3,
    in_domain: Callable[[Any], Any] | None = None,
    domain_text: str = "all reals",
    safe_fn: Callable[[Any], Any] | None = None,
    latex: str = "",
    fit: bool = True,
) -> Function:
    """Add a one-argument function to the library; returns its record.

    From then on the name is callable in formula text (``compile("J0(3*x)")``), a candidate of
    ``auto_symbolic`` and ``suggest_symbolic`` (unless ``fit=False``), usable in
    ``fix_symbolic``, printed by ``to_sympy``/``formula`` and stored in checkpoints (a
    checkpoint naming it loads where it is registered). ``torch_fn`` maps a tensor to a tensor
    of the same shape; one without autograd support (``torch.special.bessel_j0``) gets
    central-difference gradients. ``sympy_fn`` builds the SymPy expression (default: an
    undefined SymPy function of that name). Registering a name again replaces the previous
    user function; the built-in names cannot be replaced.

    >>> import torch
    >>> J0 = register("J0", torch.special.bessel_j0)
    >>> from kanpiler.library import get
    >>> get("J0").name, float(J0(torch.tensor([0.0])))
    ('J0', 1.0)
    >>> unregister("J0")
    """
    _check_new_name(name)
    exact = _with_gradient(name, torch_fn)
    sym = sympy_fn or _sympy().Function(name)
    record = Function(
        name=name, sympy_fn=sym, torch_fn=exact, safe_fn=safe_fn or exact,
        in_domain=in_domain or _all_real, domain_text=domain_text, label=name,
        latex=latex or ("\\operatorname{" + name + "}\\left({x}\\right)"),
        complexity=int(complexity), fit=bool(fit),
    )  # fmt: skip
    unregister(name)
    REGISTERED.append(record)
    FUNCTIONS[name] = record
    cls = _sympy_class(sym)
    if cls is not None:
        SYMPY_CLASSES[cls] = record
    return record


def unregister(name: str) -> None:
    """Remove a function added by :func:`register` (built-in names are refused)."""
    if name in FUNCTIONS and all(f.name != name for f in REGISTERED):
        raise KanpilerError(f"{name!r} is a built-in library function and cannot be removed")
    REGISTERED[:] = [f for f in REGISTERED if f.name != name]
    FUNCTIONS.pop(name, None)
    for cls in [c for c, f in SYMPY_CLASSES.items() if f.name == name]:
        del SYMPY_CLASSES[cls]


def _check_new_name(name: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise KanpilerError(
            f"a function name is a letter or '_' followed by letters, digits or '_', got {name!r}"
        )
    builtin = (
        name in ALIASES
        or name in CONSTANTS
        or name in _SPECIAL
        or (name in FUNCTIONS and all(f.name != name for f in REGISTERED))
    )
    if builtin:
        raise KanpilerError(f"{name!r} is already a built-in name of the library")


def _with_gradient(name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` itself if autograd differentiates it, else ``fn`` with central differences."""
    t = _torch()
    if not callable(fn):
        raise KanpilerError(f"register({name!r}): torch_fn must be callable, got {fn!r}")
    probe = t.linspace(-1.0, 1.0, 7, dtype=t.float64, requires_grad=True)
    try:
        out = fn(probe)
    except Exception as err:  # the user's function: report whatever it raised
        raise KanpilerError(
            f"register({name!r}): torch_fn fails on a float64 tensor: {err}"
        ) from err
    if not isinstance(out, t.Tensor) or out.shape != probe.shape:
        raise KanpilerError(f"register({name!r}): torch_fn must map a tensor to one of its shape")
    return fn if out.requires_grad else _finite_difference(fn)


def _finite_difference(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    t = _torch()

    class _Central(t.autograd.Function):  # type: ignore[name-defined]
        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            ctx.save_for_backward(x)
            return fn(x.detach())

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (x,) = ctx.saved_tensors
            h = t.finfo(x.dtype).eps ** (1 / 3) * (1 + x.abs())
            return grad * (fn(x + h) - fn(x - h)) / (2 * h)

    return _Central.apply


def _sympy_class(sym: Callable[[Any], Any]) -> Any:
    """The SymPy class that ``sym(u)`` applies to ``u`` alone, if it is one."""
    u = _sympy().Symbol("u")
    try:
        probe = sym(u)
    except Exception:  # a sympy_fn that needs more than a symbol: no reading back
        return None
    return probe.func if getattr(probe, "args", None) == (u,) else None
