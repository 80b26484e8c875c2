"""The shape of a MultKAN: widths, mult arities, sub-node ownership, edges and records.

In: a width list such as ``[2, [5, 2], 1]`` and the arity of each multiplication node. Out:
normalised ``[[n_sum, n_mult], ...]`` lists, the owner of every sub-node, and the small
records that :class:`~kanpiler.runtime.MultKAN`'s structure API returns (:class:`Edge`,
:class:`LayerValues`, :class:`Record`). Stage: runtime (pure data, no torch modules).

>>> width = normalize_width([2, [1, 2], 1])
>>> width
[[2, 0], [1, 2], [1, 0]]
>>> subnode_owners(width[1], normalize_arity(2, width)[1])
[(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import torch
from torch import nn

from ..errors import ShapeError

Width = Sequence[int | Sequence[int]]

EDGE_KINDS = ("numeric", "symbolic", "both", "off")

M = TypeVar("M", bound=nn.Module)


class ModuleSeq(nn.ModuleList, Generic[M]):
    """An ``nn.ModuleList`` of one module type: ``model.layers[l]`` is a ``KANLayer`` to type
    checkers too (the state-dict keys are those of a plain ``ModuleList``)."""

    def __getitem__(self, idx: int) -> M:  # type: ignore[override]
        return super().__getitem__(idx)  # type: ignore[return-value]

    def __iter__(self) -> Iterator[M]:
        return super().__iter__()  # type: ignore[return-value]


class Edge(NamedTuple):
    """Edge ``i -> j`` of one KAN layer (input node ``i``, subnode ``j`` of the next layer).

    ``kind`` is ``"numeric"`` (spline only), ``"symbolic"``, ``"both"`` or ``"off"``; ``fn``
    is the symbolic function's name when the symbolic part is on (else None), and ``a, b, c,
    d`` its affine parameters in ``c*fn(a*x+b)+d``.
    """

    i: int
    j: int
    kind: str
    fn: str | None
    a: float
    b: float
    c: float
    d: float


class LayerValues(NamedTuple):
    """What one KAN layer computes: ``subnodes`` (after the subnode affine) and ``nodes``
    (after the products of mult nodes and the node affine)."""

    subnodes: torch.Tensor
    nodes: torch.Tensor


@dataclass
class Record:
    """Activations of one forward pass.

    ``acts``: the input of every KAN layer, then the output (``depth + 1`` tensors);
    ``edge_acts`` and ``spline_acts``: ``(N, in, out)`` per layer, all edges / numeric part
    only; ``subnode_acts``: ``(N, n_subnodes)`` per layer.
    """

    acts: list[torch.Tensor]
    edge_acts: list[torch.Tensor]
    spline_acts: list[torch.Tensor]
    subnode_acts: list[torch.Tensor]

    @property
    def output(self) -> torch.Tensor:
        """The model's output ``(N, n_out)``."""
        return self.acts[-1]


def normalize_width(width: Width) -> list[list[int]]:
    """``[n, [s, m], ...]`` -> ``[[n, 0], [s, m], ...]`` with checks."""
    if len(width) < 2:
        raise ShapeError(f"width needs at least an input and an output layer, got {width!r}")
    out = []
    for pos, w in enumerate(width):
        pair = [int(w), 0] if isinstance(w, int) else [int(v) for v in w]
        # an empty input layer is allowed: a constant formula has no variables
        if len(pair) != 2 or min(pair) < 0 or (sum(pair) == 0 and pos > 0):
            raise ShapeError(f"width[{pos}] must be n >= 1 or [n_sum, n_mult], got {w!r}")
        out.append(pair)
    if out[0][1]:
        raise ShapeError(f"the input layer cannot hold multiplication nodes, got {width[0]!r}")
    return out


def normalize_arity(mult_arity: Any, width: list[list[int]]) -> list[list[int]]:
    """Arity of every mult node, per node layer (an empty list for layers without any)."""
    if isinstance(mult_arity, int):
        per_layer: list[Any] = [mult_arity] * len(width)
    else:
        per_layer = list(mult_arity)
        if len(per_layer) != len(width):
            raise ShapeError(
                f"mult_arity needs one entry per node layer ({len(width)}), got {mult_arity!r}"
            )
    result = []
    for li, ((_, n_mult), a) in enumerate(zip(width, per_layer)):
        arities = [int(a)] * n_mult if isinstance(a, int) else [int(v) for v in a]
        if len(arities) != n_mult or any(v < 1 for v in arities):
            raise ShapeError(
                f"mult_arity of node layer {li}: need {n_mult} arities >= 1, got {a!r}"
            )
        result.append(arities)
    return result


def subnode_owners(width: Sequence[int], arities: Sequence[int]) -> list[tuple[int, int]]:
    """``(owning node, slot)`` of every subnode of a node layer of ``width = [n_sum, n_mult]``:
    sum nodes own one subnode each, then mult node ``m`` owns ``arities[m]`` in a row."""
    n_sum = int(width[0])
    owners = [(j, 0) for j in range(n_sum)]
    for m, arity in enumerate(arities):
        owners += [(n_sum + m, s) for s in range(arity)]
    return owners


def node_subnodes(width: Sequence[int], arities: Sequence[int], node: int) -> range:
    """Subnode indices of ``node`` in a node layer (one for a sum node, its arity for a mult)."""
    n_sum = int(width[0])
    if node < n_sum:
        return range(node, node + 1)
    m = node - n_sum
    start = n_sum + sum(arities[:m])
    return range(start, start + arities[m])


def edge_kind(numeric: bool, symbolic: bool) -> str:
    """The :class:`Edge` kind of an edge with the given branches on."""
    return EDGE_KINDS[(0 if numeric else 3) if not symbolic else (2 if numeric else 1)]
