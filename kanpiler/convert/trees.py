"""The tree converter: the separability structure of any differentiable function.

In: a callable ``f`` (a trained KAN, an MLP, a torch function) and samples ``X``.
Out: a ``networkx.DiGraph`` tree (``graph["kind"] == "tree"``) whose nodes are ``Add``,
``Mul``, a function of a sum ``F(+)``, a symmetric group ``G(x, y)`` or a leaf variable, with
every test's score in ``graph["scores"]``; :func:`skeleton` reads it as ``f = F(x + y) * z``.
Stage: convert.

Tests, applied top-down to a set of variables V (see :mod:`.separability`):

1. additive split of V (mixed second derivatives vanish between groups) -> ``Add``;
2. multiplicative split (the same on ``log|f|``; below an ``Add``, with the other variables
   held at their medians, the same test on ``log|f - beta|`` for a fitted constant beta)
   -> ``Mul``;
3. a proper subgroup A of V through which ``f`` depends on A only via one function ``G(A)``
   (gradients with respect to A stay parallel as the other variables move) -> ``F(G(A), ...)``;
4. ``f = F(u(x) + v(y) + ...)`` (``log|f_x / f_y|`` is additive) -> ``F(+)``;
5. otherwise an opaque group ``G(x, y, ...)``.

Leaves stand for unknown functions of one variable: ``x * y + z`` means ``u(x) v(y) + w(z)``.

>>> import torch
>>> X = torch.rand(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) + 0.5
>>> t = tree(lambda v: torch.sin(v[:, 0] + v[:, 1]) * v[:, 2], X, ["x", "y", "z"])
>>> skeleton(t)
'f = F(x + y) * z'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import networkx as nx
import numpy as np
import torch

from ..errors import ShapeError
from . import separability as sep
from .derivatives import Derivatives

__all__ = ["tree", "skeleton"]

LABELS = {"add": "Add", "mul": "Mul", "sum_inside": "F(+)", "compose": "F"}


def _components(vs: list[int], linked: Callable[[int, int], bool]) -> list[list[int]]:
    g = nx.Graph()
    g.add_nodes_from(vs)
    g.add_edges_from((i, j) for i, j in combinations(vs, 2) if linked(i, j))
    return sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: c[0])


class _Builder:
    """Recursive decomposition into a networkx tree; every score it computes is recorded."""

    def __init__(self, d: Derivatives, names: list[str], threshold: float, max_group: int):
        self.d, self.names, self.thr, self.max_group = d, names, threshold, max_group
        self.held: dict[tuple[int, ...], Derivatives] = {}
        self.graph = nx.DiGraph(kind="tree")
        self.scores: list[dict[str, Any]] = []
        self.memo: dict[tuple[str, str], float] = {}

    def holding(self, vs: list[int]) -> Derivatives:
        """Derivatives at the samples with every variable outside ``vs`` held at its median."""
        key = tuple(vs)
        if key not in self.held:
            X = self.d.X.clone()
            rest = [k for k in range(X.shape[1]) if k not in vs]
            if rest:
                X[:, rest] = X[:, rest].median(dim=0).values
            self.held[key] = Derivatives(self.d.f, X, method=self.d.method)
        return self.held[key]

    def score(self, test: str, fn: Callable[..., float], *args: Any, d: Any = None) -> float:
        named = [[self.names[k] for k in a] if isinstance(a, list) else self.names[a] for a in args]
        key = (test, repr(named))
        if key not in self.memo:
            s = fn(d or self.d, *args)
            self.memo[key] = s
            self.scores.append({"test": test, "on": named, "score": s, "passed": s < self.thr})
        return self.memo[key]

    def node(self, kind: str, vs: list[int], label: str | None = None) -> int:
        nid = self.graph.number_of_nodes()
        names = tuple(self.names[k] for k in vs)
        text = label or LABELS.get(kind) or f"G({', '.join(names)})"
        self.graph.add_node(nid, kind=kind, label=text, variables=names)
        return nid

    def split(self, kind: str, vs: list[int], parts: list[list[int]], view: str) -> int:
        nid = self.node(kind, vs)
        for order, part in enumerate(parts):
            self.graph.add_edge(nid, self.build(part, view), order=order)
        return nid

    def build(self, vs: list[int], view: str) -> int:
        """``view``: 'log' (log|f| is valid), 'hess' (f up to scale/offset), 'ratio' (inside G)."""
        if len(vs) == 1:
            return self.node("var", vs, self.names[vs[0]])
        if view != "ratio":
            parts = _components(vs, lambda i, j: self.score("add", sep.additive, i, j) >= self.thr)
            if len(parts) > 1:
                return self.split("add", vs, parts, "hess")
            if view == "log":
                parts = _components(
                    vs, lambda i, j: self.score("mul", sep.multiplicative, i, j) >= self.thr
                )
            else:  # below an Add: f = a*g(vs) + b once the other variables are held fixed
                held = self.holding(vs)
                parts = _components(
                    vs,
                    lambda i, j: (
                        self.score("mul", sep.multiplicative_offset, i, j, d=held) >= self.thr
                    ),
                )
            if len(parts) > 1:
                return self.split("mul", vs, parts, view)
        group = self.find_group(vs)
        if group is not None:
            nid = self.node("compose", vs)
            rest = [k for k in vs if k not in group]
            self.graph.add_edge(nid, self.build_group(group), order=0)
            for order, k in enumerate(rest, start=1):
                self.graph.add_edge(nid, self.build([k], "ratio"), order=order)
            return nid
        return self.build_group(vs)

    def build_group(self, vs: list[int]) -> int:
        """A set that f sees only through one function: look for F(u + v + ...) inside."""

        def linked(i: int, j: int) -> bool:
            others = [k for k in vs if k not in (i, j)]
            if others and self.score("group", sep.through_group, [i, j], others) >= self.thr:
                return True
            return self.score("sum_inside", sep.sum_inside, i, j) >= self.thr

        parts = _components(vs, linked)
        if len(parts) > 1:
            return self.split("sum_inside", vs, parts, "ratio")
        nid = self.node("group", vs)
        for order, k in enumerate(vs):
            self.graph.add_edge(nid, self.node("var", [k], self.names[k]), order=order)
        return nid

    def find_group(self, vs: list[int]) -> list[int] | None:
        """The largest proper subgroup (size >= 2) that f sees through one function."""
        for size in range(min(len(vs) - 1, self.max_group), 1, -1):
            for group in combinations(vs, size):
                others = [k for k in vs if k not in group]
                if self.score("group", sep.through_group, list(group), others) < self.thr:
                    return list(group)
        return None


def _prepare(f: Any, X: Any, max_samples: int, seed: int) -> torch.Tensor:
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    if X.dim() != 2 or X.shape[0] == 0:
        raise ShapeError(f"tree: X must be a non-empty (N, n_vars) array, got {tuple(X.shape)}")
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        row, col = (int(v) for v in torch.nonzero(~torch.isfinite(X))[0])
        raise ShapeError(
            f"tree: X holds {int((~torch.isfinite(X)).sum())} NaN or infinite values "
            f"(first at row {row}, column {col}); the derivative tests need finite points"
        )
    param = next(iter(f.parameters()), None) if isinstance(f, torch.nn.Module) else None
    if param is not None:
        X = X.to(device=param.device, dtype=param.dtype)
    elif not X.is_floating_point() or X.dtype != torch.float64:
        X = X.to(torch.float64)
    if X.shape[0] > max_samples:
        gen = torch.Generator().manual_seed(seed)
        X = X[torch.randperm(X.shape[0], generator=gen)[:max_samples].to(X.device)]
    return X.detach()


def tree(
    f: Callable[[torch.Tensor], torch.Tensor],
    X: Any,
    variables: Sequence[str] | None = None,
    *,
    threshold: float = 0.1,
    max_samples: int = 256,
    max_group: int = 6,
    seed: int = 0,
) -> nx.DiGraph:
    """Decompose ``f`` into a tree of Add / Mul / F(+) / G(group) nodes over its variables.

    ``f`` maps ``(N, n)`` to ``(N,)`` or ``(N, 1)``; ``X`` are samples (numpy or torch; at most
    ``max_samples`` rows are used, picked with ``seed``). A test passes when its score (0 =
    exact) is below ``threshold``; all scores are in ``graph.graph["scores"]``. Node
    attributes: ``kind`` (add, mul, sum_inside, compose, group, var), ``label``, ``variables``.
    The root is node 0; edges carry their child ``order``.
    """
    Xt = _prepare(f, X, max_samples, seed)
    n = Xt.shape[1]
    names = list(variables or getattr(f, "variables", None) or [f"x{i + 1}" for i in range(n)])
    if len(names) != n:
        raise ShapeError(f"tree: {len(names)} variable names for {n} columns of X")
    builder = _Builder(Derivatives(f, Xt), names, threshold, max_group)
    builder.build(list(range(n)), "log")
    g = builder.graph
    g.graph.update(
        scores=builder.scores,
        threshold=threshold,
        variables=tuple(names),
        samples=Xt.shape[0],
        method=builder.d.method,
    )
    g.graph["skeleton"] = skeleton(g)
    return g


def _text(g: nx.DiGraph, nid: int, letters: list[str]) -> str:
    attrs = g.nodes[nid]
    kids = sorted(g.successors(nid), key=lambda c: g.edges[nid, c]["order"])
    kind = attrs["kind"]
    if kind == "var":
        return attrs["label"]
    if kind == "group":
        return f"{letters.pop(0)}({', '.join(attrs['variables'])})"
    name = letters.pop(0) if kind in ("sum_inside", "compose") else ""
    parts = [_text(g, c, letters) for c in kids]
    if kind == "add":
        return " + ".join(parts)
    if kind == "mul":
        wrap = [f"({p})" if g.nodes[c]["kind"] == "add" else p for c, p in zip(kids, parts)]
        return " * ".join(wrap)
    return f"{name}({' + '.join(parts)})" if kind == "sum_inside" else f"{name}({', '.join(parts)})"


def skeleton(graph: nx.DiGraph) -> str:
    """The tree as a formula skeleton, e.g. ``'f = F(G(x, y), z)'`` or ``'f = x * y + z'``.

    Capital letters are unknown functions; a leaf stands for an unknown function of it.
    """
    taken = set(graph.graph.get("variables", ()))
    letters = [c for c in "FGHKPQRUVW" if c not in taken] + [f"F{i}" for i in range(1, 100)]
    return "f = " + _text(graph, 0, letters)
