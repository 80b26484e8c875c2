"""The one ``lower``: formula(s) -> verified ``Layout`` (parse, passes, lower, verify).

In: formula text, an ``Expr``, a SymPy expression or a list of these (one output each).
Out: a verified ``Layout`` computing them exactly; nothing is built. Stage: lowering (it runs
the parser and the passes, then hands ``expressions`` only the primitives they leave).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import ir, passes
from ..errors import CompileError
from ..layout import Layout, verify
from ..parser import parse
from .expressions import lower_canonical

#: the IR passes, in order: what lowering reads is what they leave
PASSES = ("canonicalize", "expand_variable_powers", "fold_numeric")


def as_list(formula: Any) -> list[Any]:
    """One formula or a list/tuple of them, as a list."""
    return list(formula) if isinstance(formula, (list, tuple)) else [formula]


def input_names(exprs: list[ir.Expr], variables: Sequence[str] | str | None) -> list[str]:
    """``variables`` if given (checked to cover the formulas), else order of first appearance."""
    found: dict[str, None] = {}
    for e in exprs:
        found.update(dict.fromkeys(ir.variables(e)))
    if variables is None:
        return list(found)
    if isinstance(variables, str):
        names = variables.replace(",", " ").split()
    elif isinstance(variables, (list, tuple)) and all(isinstance(v, str) for v in variables):
        names = list(variables)
    else:
        raise CompileError(
            f"variables must be a list of names or a string 'x, y', got {variables!r}"
        )
    missing = [v for v in found if v not in names]
    if missing:
        raise CompileError(f"the formula uses {missing} but variables={names} does not list them")
    if len(set(names)) != len(names):
        raise CompileError(f"variables must be distinct, got {names}")
    return names


def run_passes(e: ir.Expr, trace: list | None = None) -> ir.Expr:
    """The IR passes of ``PASSES``, in order (each step recorded in ``trace`` if given)."""
    for name in PASSES:
        e = getattr(passes, name)(e)
        if trace is not None:
            trace.append((name, e))
    return e


def lower(
    formula: Any, variables: Sequence[str] | str | None = None, *, trace: list | None = None
) -> Layout:
    """Formula(s) -> verified ``Layout`` (parse, passes, lower, verify), without building.

    ``formula`` is text, an ``Expr`` (raw or canonical), a SymPy expression or a list of these.
    ``variables`` fixes the inputs and their order (default: order of first appearance).
    ``trace`` (a list) receives every stage as ``(step, value)``.

    >>> print(lower("2*x + 3"))
    layout: 1 KAN layer, 1 edge, inputs [x], 1 output
    nodes 0: [in x]
    edges 0: 0->0 x c=2 d=3
    nodes 1: [sum]
    >>> x, y = ir.var("x"), ir.var("y")
    >>> lower(ir.call("sin", x) * ir.call("exp", y)).width
    [[2, 0], [0, 1]]
    """
    formulas = as_list(formula)
    input_names([], variables)  # the names' type is checked before parsing with them
    raw = [parse(f, variables) for f in formulas]
    names = input_names(raw, variables)
    if trace is not None:
        trace.append(("parse", raw))
    canonical = [run_passes(e, trace) for e in raw]
    labels = [_label(f, e) for f, e in zip(formulas, raw)]
    layout = lower_canonical(canonical, names, labels)
    if trace is not None:
        trace.append(("lower", layout))
    return verify(layout, "lower")


def _label(formula: Any, e: ir.Expr) -> str:
    if isinstance(formula, str):
        return formula.strip()
    try:
        return str(e)
    except Exception:  # printing is decoration: a label never breaks lowering
        return f"output ({e.op.name})"


__all__ = ["lower", "run_passes", "input_names", "as_list", "PASSES"]
