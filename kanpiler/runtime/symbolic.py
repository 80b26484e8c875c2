"""The symbolic branch of a KAN layer: edges locked to ``c * f(a * x + b) + d``.

In: ``x`` of shape ``(N, in)``. Out: ``(N, out)``, the sum of the active symbolic edges.
Stage: runtime. Edges are grouped by function: ``forward`` loops over the distinct functions
in use (gather the inputs of all edges of one function, evaluate the library's ``safe_fn``
once, ``index_add`` into the outputs), never over edges.

>>> import torch
>>> sym = SymbolicLayer(2, 1)
>>> sym.set_edges([(0, 0, "sin", 1.0, 0.0, 2.0, 0.0), (1, 0, "x^2", 1.0, 0.0, 1.0, 0.0)])
>>> sym(torch.tensor([[0.0, 3.0]])).tolist()
[[9.0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .. import library
from ..errors import KanpilerError, ShapeError
from .basis import snapshot, unchanged

ZERO = "0"

EdgeSpec = Sequence  # (i, j, fn) or (i, j, fn, a, b, c, d)


class SymbolicLayer(nn.Module):
    """Symbolic edges of one KAN layer.

    ``affine`` is a ``(in, out, 4)`` parameter holding ``[a, b, c, d]`` per edge; ``mask``
    (``(in, out)`` buffer, 0/1) says which edges are on; ``fn_ids`` (``(in, out)`` buffer)
    indexes ``fn_names`` (``fn_names[0] == "0"``, the zero function).
    """

    mask: torch.Tensor
    fn_ids: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        shape = (in_features, out_features)
        affine = torch.zeros(*shape, 4, dtype=dtype, device=device)
        affine[..., 0] = 1.0
        affine[..., 2] = 1.0
        self.affine = nn.Parameter(affine)
        self.register_buffer("mask", torch.zeros(shape, dtype=dtype, device=device))
        self.register_buffer("fn_ids", torch.zeros(shape, dtype=torch.long, device=device))
        self._groups_key: tuple | None = None
        self.fn_names = [ZERO]
        self._groups: list[tuple[library.Function, torch.Tensor, torch.Tensor]] = []

    @property
    def fn_names(self) -> list[str]:
        """Function names indexed by ``fn_ids`` (``fn_names[0] == "0"``)."""
        return self._fn_names

    @fn_names.setter
    def fn_names(self, names: list[str]) -> None:
        self._fn_names = list(names)
        self._groups_key = None

    # --- assignment ---------------------------------------------------------------------------

    def fn_id(self, name: str) -> int:
        """Index of a function name in ``fn_names`` (added if new; names are canonicalised)."""
        if name in (ZERO, "zero"):
            return 0
        canon = library.get(name).name
        if canon not in self.fn_names:
            self.fn_names.append(canon)
        return self.fn_names.index(canon)

    def function(self, i: int, j: int) -> str:
        """Name of the function on edge ``(i, j)`` (``"0"`` when none)."""
        return self.fn_names[int(self.fn_ids[i, j])]

    def set_edges(self, edges: Iterable[EdgeSpec], *, mask: bool = True) -> None:
        """Set many edges at once: ``(i, j, fn)`` or ``(i, j, fn, a, b, c, d)`` tuples.

        ``fn`` is a library name (``"sin"``, ``"x^2"``) or ``"0"``; the mask of each listed
        edge is switched on (off for ``"0"``) unless ``mask=False``.
        """
        rows, cols, ids, params = [], [], [], []
        for spec in edges:
            if len(spec) not in (3, 7):
                raise ShapeError(f"an edge is (i, j, fn) or (i, j, fn, a, b, c, d), got {spec!r}")
            i, j = int(spec[0]), int(spec[1])
            if not (0 <= i < self.in_features and 0 <= j < self.out_features):
                raise ShapeError(
                    f"edge ({i}, {j}) outside a layer of shape "
                    f"({self.in_features}, {self.out_features})"
                )
            rows.append(i)
            cols.append(j)
            ids.append(self.fn_id(str(spec[2])))
            params.append([float(v) for v in spec[3:]] if len(spec) == 7 else [1.0, 0.0, 1.0, 0.0])
        if not rows:
            return
        dev = self.fn_ids.device
        r = torch.tensor(rows, device=dev)
        c = torch.tensor(cols, device=dev)
        fid = torch.tensor(ids, device=dev)
        with torch.no_grad():
            self.fn_ids[r, c] = fid
            self.affine[r, c] = torch.tensor(params, dtype=self.affine.dtype, device=dev)
            if mask:
                self.mask[r, c] = (fid != 0).to(self.mask.dtype)

    # --- evaluation ---------------------------------------------------------------------------

    def groups(self) -> list[tuple[library.Function, torch.Tensor, torch.Tensor]]:
        """Active edges grouped by function: ``(function, flat edge index, input index)``.

        Recomputed only when ``mask`` or ``fn_ids`` changed (tracked by tensor versions).
        """
        if not unchanged(self._groups_key, self.mask, self.fn_ids):
            ids = torch.where(self.mask != 0, self.fn_ids, torch.zeros_like(self.fn_ids))
            flat = ids.flatten()
            groups = []
            for fid in torch.unique(flat).tolist():
                if fid == 0:
                    continue
                edges = torch.nonzero(flat == fid).flatten()
                groups.append((library.get(self.fn_names[fid]), edges, edges // self.out_features))
            self._groups, self._groups_key = groups, snapshot(self.mask, self.fn_ids)
        return self._groups

    @property
    def active(self) -> bool:
        return bool(self.groups())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.out_features, dtype=x.dtype, device=x.device)
        groups = self.groups()
        if not groups:
            return out
        aff = self.affine.reshape(-1, 4)
        mask = self.mask.flatten()
        for fn, edges, inputs in groups:
            a, b, c, d = aff[edges].unbind(-1)
            y = (c * fn.safe_fn(a * x[:, inputs] + b) + d) * mask[edges]
            out = out.index_add(1, edges % self.out_features, y)
        return out

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-edge values ``(N, in, out)`` (0 on inactive edges), for plots and attribution."""
        n = x.shape[0]
        out = torch.zeros(n, self.in_features * self.out_features, dtype=x.dtype, device=x.device)
        aff = self.affine.reshape(-1, 4)
        mask = self.mask.flatten()
        for fn, edges, inputs in self.groups():
            a, b, c, d = aff[edges].unbind(-1)
            y = (c * fn.safe_fn(a * x[:, inputs] + b) + d) * mask[edges]
            out = out.index_copy(1, edges, y)
        return out.view(n, self.in_features, self.out_features)

    def check_names(self) -> None:
        """Raise if a stored function name is not in the library (e.g. a tampered file)."""
        for name in self.fn_names[1:]:
            try:
                library.get(name)
            except KanpilerError as err:
                raise KanpilerError(f"symbolic layer holds an unknown function: {err}") from err
