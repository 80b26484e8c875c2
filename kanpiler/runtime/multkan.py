"""MultKAN: a KAN of sum and multiplication nodes (KAN 2.0), numeric and symbolic edges.

In: a width list such as ``[2, [5, 2], 1]``. Out: a ``torch.nn.Module`` mapping ``(N, n_in)``
to ``(N, n_out)``. Stage: runtime; the compiler builds into it and the converter reads it.
Training, grids, pruning, checkpoints and plots live in sibling modules and are exposed here
as methods.

>>> import torch
>>> model = MultKAN([2, [0, 1], 1], numeric=False)
>>> model.set_symbolic(0, 0, 0, "x")
>>> model.set_symbolic(0, 1, 1, "sin")
>>> model.set_symbolic(1, 0, 0, "x")
>>> x = torch.tensor([[2.0, 0.5]])
>>> torch.allclose(model(x), 2.0 * torch.sin(x[:, 1:]))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ShapeError
from ..layout import Layout
from . import checkpoint, domain, grid, native_model, plot, prune, symfit, train
from .bases import basis_choice
from .basis import Basis, snapshot, unchanged
from .layer import KANLayer
from .structure import (
    Edge,
    LayerValues,
    ModuleSeq,
    Record,
    Width,
    edge_kind,
    node_subnodes,
    normalize_arity,
    normalize_width,
    subnode_owners,
)
from .symbolic import SymbolicLayer

__all__ = ["MultKAN", "Edge", "LayerValues", "Record"]


class MultKAN(nn.Module):
    """A Kolmogorov-Arnold network with sum and multiplication nodes.

    See ``docs/design.md`` ("The runtime contract") for the node/subnode ordering and the
    per-edge formula ``phi = mask_num*(w_b*silu + w_s*spline) + mask_sym*(c*f(a*x+b)+d)``.
    """

    def __init__(
        self,
        width: Width,
        grid: int = 5,
        k: int = 3,
        mult_arity: Any = 2,
        *,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        noise_scale: float = 0.3,
        base_fun: str = "silu",
        grid_eps: float = 0.02,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        variables: Sequence[str] | None = None,
        affine_trainable: bool = False,
        numeric: bool = True,
        basis: str | Basis | None = None,
        basis_options: dict[str, Any] | None = None,
        **more_options: Any,
    ) -> None:
        super().__init__()
        self.basis_name, self.basis_options = basis_choice(basis, basis_options, more_options)
        self.width = normalize_width(width)
        self.mult_arity = normalize_arity(mult_arity, self.width)
        self.depth = len(self.width) - 1
        self.grid, self.k = int(grid), int(k)
        self.grid_range = (float(grid_range[0]), float(grid_range[1]))
        self.base_fun, self.grid_eps, self.seed = base_fun, float(grid_eps), int(seed)
        self.noise_scale = float(noise_scale)
        gen = torch.Generator().manual_seed(int(seed))
        opts: dict[str, Any] = {"dtype": dtype, "device": device}
        layers, symbolic = [], []
        for li in range(self.depth):
            n_in, n_out = self.n_nodes(li), self.n_subnodes(li + 1)
            layer = KANLayer(
                n_in, n_out, grid, k, grid_range=grid_range, noise_scale=noise_scale,
                base_fun=base_fun, grid_eps=grid_eps, generator=gen, basis=self.basis_name,
                **self.basis_options, **opts,
            )  # fmt: skip
            if not numeric:
                layer.mask.zero_()
            layers.append(layer)
            symbolic.append(SymbolicLayer(n_in, n_out, **opts))
        self.layers: ModuleSeq[KANLayer] = ModuleSeq(layers)
        self.symbolic: ModuleSeq[SymbolicLayer] = ModuleSeq(symbolic)

        def plist(sizes: list[int], value: float) -> nn.ParameterList:
            return nn.ParameterList(
                nn.Parameter(torch.full((n,), value, **opts), requires_grad=affine_trainable)
                for n in sizes
            )

        nodes = [self.n_nodes(li + 1) for li in range(self.depth)]
        subnodes = [self.n_subnodes(li + 1) for li in range(self.depth)]
        self.node_scale, self.node_bias = plist(nodes, 1.0), plist(nodes, 0.0)
        self.subnode_scale, self.subnode_bias = plist(subnodes, 1.0), plist(subnodes, 0.0)
        n_in = self.n_nodes(0)
        names = list(variables) if variables is not None else [f"x{i + 1}" for i in range(n_in)]
        if len(names) != n_in:
            raise ShapeError(f"{len(names)} variable names for {n_in} inputs: {names!r}")
        self.variables = names
        self.cache_acts = False
        self.cache: Record | None = None
        self.layout: Layout | None = None
        self.source_formulas: list[str] | None = None
        self.compile_trace: list[tuple[str, Any]] | None = None
        self.symbolic_report: Any = None  # a convert.SymbolicReport after auto_symbolic
        self._mult_index: dict[tuple[int, str], torch.Tensor] = {}
        self._identity: dict[int, tuple] = {}

    # --- structure ----------------------------------------------------------------------------

    def n_nodes(self, li: int) -> int:
        """Number of nodes of node layer ``l`` (sum nodes first, then mult nodes)."""
        return sum(self.width[li])

    def n_subnodes(self, li: int) -> int:
        """Number of subnodes of node layer ``l >= 1`` (outputs of KAN layer ``l - 1``)."""
        return self.width[li][0] + sum(self.mult_arity[li])

    def subnode_owner(self, li: int) -> list[tuple[int, int]]:
        """For each subnode of node layer ``l``: ``(owning node, slot in that node)``."""
        return subnode_owners(self.width[li], self.mult_arity[li])

    def node_subnodes(self, li: int, node: int) -> range:
        """The subnodes of ``node`` of node layer ``l`` (one for a sum node)."""
        return node_subnodes(self.width[li], self.mult_arity[li], node)

    def node_kind(self, li: int, j: int) -> str:
        """``"input"`` (node layer 0), ``"sum"`` or ``"mult"``."""
        return "input" if li == 0 else ("sum" if j < self.width[li][0] else "mult")

    def edges(self, li: int, *, active: bool = True) -> list[Edge]:
        """The edges of KAN layer ``l`` as :class:`Edge` records, row-major; with ``active``
        (default) only those with a branch on."""
        self._check_layer(li)
        num_on = (self.layers[li].mask != 0).cpu().tolist()
        sym = self.symbolic[li]
        sym_on = (sym.mask != 0).cpu().tolist()
        affine = sym.affine.detach().cpu().tolist()
        out = []
        for i, row in enumerate(num_on):
            for j, on in enumerate(row):
                kind = edge_kind(on, sym_on[i][j])
                if active and kind == "off":
                    continue
                fn = sym.function(i, j) if sym_on[i][j] else None
                out.append(Edge(i, j, kind, fn, *affine[i][j]))
        return out

    @property
    def n_inputs(self) -> int:
        return self.n_nodes(0)

    @property
    def n_outputs(self) -> int:
        return self.n_nodes(self.depth)

    @property
    def dtype(self) -> torch.dtype:
        return self.node_scale[0].dtype

    @property
    def device(self) -> torch.device:
        return self.node_scale[0].device

    def mult_index(self, li: int, device: torch.device) -> torch.Tensor:
        """``(n_mult, max_arity)`` subnode indices of node layer ``l``'s mult nodes.

        Missing positions point at one extra column of ones appended to the subnodes.
        """
        key = (li, str(device))
        if key not in self._mult_index:
            n_sum, n_mult = self.width[li]
            pad, width = self.n_subnodes(li), max(self.mult_arity[li])
            rows = []
            for m in range(n_mult):
                subs = list(self.node_subnodes(li, n_sum + m))
                rows.append(subs + [pad] * (width - len(subs)))
            self._mult_index[key] = torch.tensor(rows, dtype=torch.long, device=device)
        return self._mult_index[key]

    # --- forward ------------------------------------------------------------------------------

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself if it is a ``(N, n_inputs)`` tensor of the model's dtype and device."""
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"MultKAN expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.n_inputs:
            raise ShapeError(
                f"MultKAN expects input (N, {self.n_inputs}) for variables {self.variables}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.dtype != self.dtype or x.device != self.device:
            raise ShapeError(
                f"input is {x.dtype} on {x.device} but the model is {self.dtype} on "
                f"{self.device}; use x.to(model.dtype, model.device) or model.to(...)"
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.cache_acts and isinstance(x, torch.Tensor) and not self._hooked():
            # pure B-spline models on CPU: the whole network in one native call (not when a
            # layer has forward hooks: they would never see the layer run)
            fast = native_model.forward(self, x)
            if fast is not None:
                return fast
        out, rec = self.run(x, record=self.cache_acts)
        if rec is not None:
            self.cache = rec
        return out

    def _hooked(self) -> bool:
        """Whether a layer module carries forward hooks."""
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.layers)

    def run(self, x: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, Record | None]:
        """Forward pass; with ``record`` also the activations of every layer (a
        :class:`Record`)."""
        x = self.check_input(x)
        rec = Record([], [], [], []) if record else None
        for li in range(self.depth):
            if rec is not None:
                spline = self.layers[li].edge_values(x)
                rec.acts.append(x)
                rec.spline_acts.append(spline)
                rec.edge_acts.append(spline + self.symbolic[li].edge_values(x))
            values = self._layer_forward(li, x)
            if rec is not None:
                rec.subnode_acts.append(values.subnodes)
            x = values.nodes
        if rec is not None:
            rec.acts.append(x)
        return x, rec

    def record(self, x: torch.Tensor | None = None) -> Record:
        """Activations of a no-grad forward pass on ``x``, or (``x`` None) those cached by the
        last forward with ``cache_acts`` on. Raises :class:`ShapeError` if there are none."""
        if x is not None:
            with torch.no_grad():
                rec = self.run(x, record=True)[1]
            assert rec is not None
            return rec
        if self.cache is None:
            raise ShapeError(
                "no activations cached: pass x, or set model.cache_acts = True and run model(x)"
            )
        return self.cache

    @property
    def acts(self) -> list[torch.Tensor] | None:
        """Cached inputs of every layer, then the output (``cache_acts``), else None."""
        return None if self.cache is None else self.cache.acts

    @property
    def edge_acts(self) -> list[torch.Tensor] | None:
        """Cached per-edge values ``(N, in, out)`` per layer (``cache_acts``), else None."""
        return None if self.cache is None else self.cache.edge_acts

    @property
    def subnode_acts(self) -> list[torch.Tensor] | None:
        """Cached subnode values per layer (``cache_acts``), else None."""
        return None if self.cache is None else self.cache.subnode_acts

    def layer_forward(self, li: int, h: torch.Tensor) -> LayerValues:
        """Subnode and node values that KAN layer ``l`` computes from node values ``h``
        (``(N, n_nodes(l))``) of node layer ``l``."""
        self._check_layer(li)
        if h.dim() != 2 or h.shape[1] != self.n_nodes(li):
            raise ShapeError(
                f"layer {li} expects (N, {self.n_nodes(li)}) node values, got {tuple(h.shape)}"
            )
        return self._layer_forward(li, h)

    def _layer_forward(self, li: int, h: torch.Tensor) -> LayerValues:
        num, sym = self.layers[li], self.symbolic[li]
        y = num(h) if num.active else None
        if sym.active:
            y = sym(h) if y is None else y + sym(h)
        if y is None:
            y = torch.zeros(h.shape[0], num.out_features, dtype=h.dtype, device=h.device)
        y = self._affine(y, self.subnode_scale[li], self.subnode_bias[li])
        nodes = self._affine(self._nodes(li + 1, y), self.node_scale[li], self.node_bias[li])
        return LayerValues(y, nodes)

    def _affine(self, y: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``scale * y + bias``, skipped when both are frozen at 1 and 0 (checked once per
        change of the tensors, not per forward)."""
        if scale.requires_grad or bias.requires_grad:
            return scale * y + bias
        key = self._identity.get(id(scale))
        if key is None or not unchanged(key[0], scale, bias):
            flag = bool((scale == 1).all() and (bias == 0).all())
            key = (snapshot(scale, bias), flag)
            self._identity[id(scale)] = key
        return y if key[1] else scale * y + bias

    def _nodes(self, li: int, y: torch.Tensor) -> torch.Tensor:
        """Node values of node layer ``l`` from its subnode values ``y``."""
        n_sum, n_mult = self.width[li]
        if n_mult == 0:
            return y
        idx = self.mult_index(li, y.device)
        padded = torch.cat([y, torch.ones_like(y[:, :1])], dim=1)
        prod = padded[:, idx].prod(dim=-1)
        return torch.cat([y[:, :n_sum], prod], dim=1) if n_sum else prod

    # --- symbolic edges -----------------------------------------------------------------------

    def set_symbolic(
        self, li: int, i: int, j: int, fn: str,
        a: float = 1.0, b: float = 0.0, c: float = 1.0, d: float = 0.0,
    ) -> None:  # fmt: skip
        """Lock edge ``(l, i, j)`` to ``c*fn(a*x+b)+d`` exactly (``"0"`` switches it off)."""
        self.check_edge(li, i, j)
        self.symbolic[li].set_edges([(i, j, fn, a, b, c, d)])
        with torch.no_grad():
            self.layers[li].mask[i, j] = 0.0

    def set_edges(self, li: int, edges: Sequence[Sequence]) -> None:
        """Lock many edges of layer ``l`` at once (``(i, j, fn, a, b, c, d)``), numeric off."""
        self.symbolic[li].set_edges(edges)
        if edges:
            rows = torch.tensor([int(e[0]) for e in edges], device=self.device)
            cols = torch.tensor([int(e[1]) for e in edges], device=self.device)
            with torch.no_grad():
                self.layers[li].mask[rows, cols] = 0.0

    def unfix_symbolic(self, li: int, i: int, j: int) -> None:
        """Turn edge ``(l, i, j)`` back into a spline (symbolic off, numeric on)."""
        self.check_edge(li, i, j)
        with torch.no_grad():
            self.layers[li].mask[i, j] = 1.0
            self.symbolic[li].mask[i, j] = 0.0

    def fix_symbolic(self, li: int, i: int, j: int, fn: str, fit: bool = True, **kw: Any) -> float:
        """Lock edge ``(l, i, j)`` to ``fn``; with ``fit`` fit ``a, b, c, d`` to its curve.

        ``x`` (keyword) gives the model inputs to sample the edge on (else the last cached
        activations). Returns the r² of the fit (1.0 without fitting). A poor fit (r² below
        ``min_r2=0.9``) raises a ``FitError`` and changes nothing, unless ``force=True``.
        """
        return symfit.fix_symbolic(self, li, i, j, fn, fit=fit, **kw)

    def suggest_symbolic(self, li: int, i: int, j: int, topk: int = 5, **kw: Any) -> list:
        """The ``topk`` library functions that best fit edge ``(l, i, j)``, best first:
        ``(name, r2, complexity, (a, b, c, d))`` (``lib=``, ``x=``; see ``symfit``)."""
        return symfit.suggest_symbolic(self, li, i, j, topk, **kw)

    def symbolic_to_spline(self, x: torch.Tensor | None = None, ranges: Any = None) -> None:
        """Replace every symbolic edge by a spline fitted to it (see ``symfit``)."""
        symfit.symbolic_to_spline(self, x=x, ranges=ranges)

    def _check_layer(self, li: int) -> None:
        if not 0 <= li < self.depth:
            raise ShapeError(f"layer {li} out of range: the model has {self.depth} KAN layers")

    def check_edge(self, li: int, i: int, j: int) -> None:
        """Raise :class:`ShapeError` unless ``(l, i, j)`` is an edge of the model."""
        self._check_layer(li)
        n_in, n_out = self.n_nodes(li), self.n_subnodes(li + 1)
        if not (0 <= i < n_in and 0 <= j < n_out):
            raise ShapeError(f"edge ({li}, {i}, {j}) outside layer {li} of shape ({n_in}, {n_out})")

    # --- delegated features -------------------------------------------------------------------

    def fit(self, x: Any, y: Any = None, **kw: Any) -> dict[str, list]:
        """Train the model on ``(x, y)`` or a pykan dataset dict; see
        :func:`kanpiler.runtime.train.fit`."""
        return train.fit(self, x, y, **kw)

    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt every layer's grid to the activations of ``x`` (function kept)."""
        grid.update_model_grid(self, x)

    def refine(self, grid: int, x: torch.Tensor) -> MultKAN:  # noqa: F811
        """A NEW model with ``grid`` intervals fitted to this one on ``x`` (grid extension)."""
        return _grid_refine(self, grid, x)

    def attribute(self, x: torch.Tensor | None = None) -> dict[str, list[torch.Tensor]]:
        """Edge, subnode and node scores as in KAN 2.0; see :mod:`.prune`."""
        return prune.attribute(self, x)

    def prune(self, x: torch.Tensor | None = None, **kw: Any) -> MultKAN:
        """A NEW, smaller model without unimportant nodes and edges; see :mod:`.prune`."""
        return prune.prune(self, x, **kw)

    def save(self, path: str | Path) -> None:
        """Write ``path.safetensors`` and ``path.json``; see
        :func:`kanpiler.runtime.checkpoint.save`."""
        checkpoint.save(self, path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str | None = None) -> MultKAN:
        """A model written by :meth:`save`; see :func:`kanpiler.runtime.checkpoint.load`."""
        return checkpoint.load(path, device, cls=cls)

    def plot(self, x: torch.Tensor | None = None, **kw: Any) -> Any:
        """A matplotlib Figure of every edge's curve, labelled with the candidates of
        ``self.symbolic_report`` when ``auto_symbolic`` left one; see
        :func:`kanpiler.runtime.plot.plot`."""
        return plot.plot(self, x, **kw)

    def domain(self) -> list[str]:
        """The conditions of the input domain, one per symbolic edge of restricted domain
        (``['log(x): x > 0']``); see :func:`kanpiler.runtime.domain.domain`."""
        return domain.domain(self)

    def in_domain(self, x: torch.Tensor) -> torch.Tensor:
        """``(N,)`` mask of the rows of ``x`` inside the domain (and with a finite output)."""
        return domain.in_domain(self, x)

    def evaluate(self, x: torch.Tensor, *, outside: str = "raise") -> torch.Tensor:
        """``model(x)`` checked against the domain: rows outside it raise a ``DomainError``
        (``outside="raise"``), warn (``"warn"``) or give NaN (``"nan"``); see
        :func:`kanpiler.runtime.domain.evaluate`."""
        return domain.evaluate(self, x, outside=outside)

    @property
    def has_grid(self) -> bool:
        """Whether the edges' basis has a grid to update (B-splines, RBF, ...)."""
        return all(getattr(layer.basis, "gridded", True) for layer in self.layers)

    def extra_repr(self) -> str:
        basis = "" if self.basis_name == "bspline" else f", basis={self.basis_name!r}"
        opts = "".join(f", {k}={v!r}" for k, v in self.basis_options.items())
        return (
            f"width={self.width}, grid={self.grid}, k={self.k}{basis}{opts}, "
            f"variables={self.variables}"
        )


_grid_refine = grid.refine  # inside ``refine`` the argument ``grid`` hides the module
