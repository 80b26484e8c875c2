"""Numeric evaluation of SymPy formulas with torch, without generating code.

In: a SymPy expression and a mapping ``name -> tensor``. Out: the tensor of its values.
Stage: convert (checks formulas against data while snapping constants).

Walks the expression iteratively (post-order) with the function library's exact torch
callables; no ``lambdify``, ``eval`` or ``exec``.

>>> import sympy, torch
>>> x = sympy.Symbol("x")
>>> evaluate_sympy(sympy.sin(x) ** 2 + sympy.pi, {"x": torch.zeros(2, dtype=torch.float64)})
tensor([3.1416, 3.1416], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from .. import library
from ..errors import UnsupportedError

__all__ = ["evaluate_sympy"]


def _functions() -> dict[Any, Any]:
    return {cls: fn.torch_fn for cls, fn in library.sympy_inverse().items()}


def _node(
    node: sympy.Basic, args: list[torch.Tensor], like: torch.Tensor, fns: dict[Any, Any]
) -> torch.Tensor:
    if node.is_Symbol:
        raise UnsupportedError(f"evaluate: no value given for the variable {node}")
    if node.is_Number or node.is_NumberSymbol:
        return torch.full_like(like, float(node))
    if node.is_Add:
        return torch.stack(torch.broadcast_tensors(*args)).sum(0)
    if node.is_Mul:
        return torch.stack(torch.broadcast_tensors(*args)).prod(0)
    if node.is_Pow:
        base, exp = args
        return torch.pow(base, exp)
    fn = fns.get(node.func)
    if fn is None or len(args) != 1:
        raise UnsupportedError(f"evaluate: the SymPy function {node.func} is not in the library")
    return fn(args[0])


def evaluate_sympy(
    expr: sympy.Basic,
    values: dict[str, torch.Tensor],
    params: dict[sympy.Basic, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Values of ``expr`` where each Symbol takes ``values[symbol.name]`` (same shapes).

    ``params`` maps sub-expressions (e.g. the ``Float`` constants) to tensors used in their
    place, so constants can be trained with autograd.
    """
    like = next(iter(values.values()))
    fns = _functions()  # once per call: library.register may add functions between calls
    done: dict[sympy.Basic, torch.Tensor] = dict(params or {})
    for node in sympy.postorder_traversal(expr):
        if node in done:
            continue
        if node.is_Symbol and node.name in values:
            done[node] = values[node.name]
        else:
            done[node] = _node(node, [done[a] for a in node.args], like, fns)
    return torch.broadcast_to(done[expr], like.shape)
