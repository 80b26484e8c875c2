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
from typing import Any

import torch
from torch import nn

from ..errors import ShapeError
from .basis import snapshot, unchanged
from .layer import KANLayer
from .symbolic import SymbolicLayer

Width = Sequence[int | Sequence[int]]


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
    ) -> None:
        super().__init__()
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
                base_fun=base_fun, grid_eps=grid_eps, generator=gen, **opts,
            )  # fmt: skip
            if not numeric:
                layer.mask.zero_()
            layers.append(layer)
            symbolic.append(SymbolicLayer(n_in, n_out, **opts))
        self.layers = nn.ModuleList(layers)
        self.symbolic = nn.ModuleList(symbolic)

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
        self.acts: list[torch.Tensor] | None = None
        self.edge_acts: list[torch.Tensor] | None = None
        self.subnode_acts: list[torch.Tensor] | None = None
        self._mult_index: dict[tuple[int, str], torch.Tensor] = {}
        self._identity: dict[int, tuple] = {}

    # --- layout -------------------------------------------------------------------------------

    def n_nodes(self, li: int) -> int:
        """Number of nodes of node layer ``l`` (sum nodes first, then mult nodes)."""
        return sum(self.width[li])

    def n_subnodes(self, li: int) -> int:
        """Number of subnodes of node layer ``l >= 1`` (outputs of KAN layer ``l - 1``)."""
        return self.width[li][0] + sum(self.mult_arity[li])

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
            arities = self.mult_arity[li]
            pad = self.n_subnodes(li)
            width = max(arities)
            rows, start = [], self.width[li][0]
            for a in arities:
                rows.append(list(range(start, start + a)) + [pad] * (width - a))
                start += a
            self._mult_index[key] = torch.tensor(rows, dtype=torch.long, device=device)
        return self._mult_index[key]

    # --- forward ------------------------------------------------------------------------------

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
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
        out, rec = self.run(x, record=self.cache_acts)
        if rec is not None:
            self.acts, self.edge_acts = rec["acts"], rec["edge_acts"]
            self.subnode_acts = rec["subnode_acts"]
        return out

    def run(self, x: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, dict | None]:
        """Forward pass; with ``record`` also the activations of every layer.

        The record holds ``acts`` (inputs of each layer, then the output), ``edge_acts`` and
        ``spline_acts`` (``(N, in, out)`` all edges / numeric edges only) and ``subnode_acts``.
        """
        x = self._check_input(x)
        rec: dict[str, list] | None = (
            {"acts": [], "edge_acts": [], "spline_acts": [], "subnode_acts": []} if record else None
        )
        for li in range(self.depth):
            num, sym = self.layers[li], self.symbolic[li]
            y = None
            if num.active:
                y = num(x)
            if sym.active:
                y = sym(x) if y is None else y + sym(x)
            if y is None:
                y = torch.zeros(x.shape[0], num.out_features, dtype=x.dtype, device=x.device)
            if rec is not None:
                spline = num.edge_values(x)
                rec["acts"].append(x)
                rec["spline_acts"].append(spline)
                rec["edge_acts"].append(spline + sym.edge_values(x))
            y = self._affine(y, self.subnode_scale[li], self.subnode_bias[li])
            if rec is not None:
                rec["subnode_acts"].append(y)
            x = self._affine(self._nodes(li + 1, y), self.node_scale[li], self.node_bias[li])
        if rec is not None:
            rec["acts"].append(x)
        return x, rec

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
        self._check_edge(li, i, j)
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
        self._check_edge(li, i, j)
        with torch.no_grad():
            self.layers[li].mask[i, j] = 1.0
            self.symbolic[li].mask[i, j] = 0.0

    def fix_symbolic(self, li: int, i: int, j: int, fn: str, fit: bool = True, **kw: Any) -> float:
        """Lock edge ``(l, i, j)`` to ``fn``; with ``fit`` fit ``a, b, c, d`` to its curve.

        ``x`` (keyword) gives the model inputs to sample the edge on (else the last cached
        activations). Returns the r² of the fit (1.0 without fitting).
        """
        from .symfit import fix_symbolic

        return fix_symbolic(self, li, i, j, fn, fit=fit, **kw)

    def symbolic_to_spline(self, x: torch.Tensor | None = None, ranges: Any = None) -> None:
        """Replace every symbolic edge by a spline fitted to it (see ``symfit``)."""
        from .symfit import symbolic_to_spline

        symbolic_to_spline(self, x=x, ranges=ranges)

    def _check_edge(self, li: int, i: int, j: int) -> None:
        if not 0 <= li < self.depth:
            raise ShapeError(f"layer {li} out of range: the model has {self.depth} KAN layers")
        n_in, n_out = self.n_nodes(li), self.n_subnodes(li + 1)
        if not (0 <= i < n_in and 0 <= j < n_out):
            raise ShapeError(f"edge ({li}, {i}, {j}) outside layer {li} of shape ({n_in}, {n_out})")

    # --- delegated features -------------------------------------------------------------------

    def fit(self, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> dict[str, list[float]]:
        """Train the model; see :func:`kanpiler.runtime.train.fit`."""
        from .train import fit

        return fit(self, x, y, **kw)

    def update_grid(self, x: torch.Tensor) -> None:
        """Adapt every layer's grid to the activations of ``x`` (function kept)."""
        from .grid import update_model_grid

        update_model_grid(self, x)

    def refine(self, grid: int, x: torch.Tensor) -> MultKAN:
        """A NEW model with ``grid`` intervals fitted to this one on ``x`` (grid extension)."""
        from .grid import refine

        return refine(self, grid, x)

    def attribute(self, x: torch.Tensor | None = None) -> dict[str, list[torch.Tensor]]:
        """Edge, subnode and node scores as in KAN 2.0; see :mod:`.prune`."""
        from .prune import attribute

        return attribute(self, x)

    def prune(self, x: torch.Tensor | None = None, **kw: Any) -> MultKAN:
        """A NEW, smaller model without unimportant nodes and edges; see :mod:`.prune`."""
        from .prune import prune

        return prune(self, x, **kw)

    def save(self, path: str) -> None:
        """Write ``path.safetensors`` and ``path.json``; see :func:`kanpiler.runtime.io.save`."""
        from .io import save

        save(self, path)

    def plot(self, x: torch.Tensor | None = None, **kw: Any) -> Any:
        """A matplotlib Figure of every edge's curve, labelled with the candidates of
        ``self.symbolic_report`` when ``auto_symbolic`` left one; see
        :func:`kanpiler.runtime.plot.plot`."""
        from .plot import plot

        return plot(self, x, **kw)

    def formula(self, **kw: Any) -> Any:
        """The SymPy formula(s) of the model (delegates to ``kanpiler.convert``)."""
        from ..convert import model_to_sympy

        return model_to_sympy(self, **kw)

    def extra_repr(self) -> str:
        return f"width={self.width}, grid={self.grid}, k={self.k}, variables={self.variables}"
