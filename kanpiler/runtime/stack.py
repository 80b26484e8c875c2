"""Several initialisations of one MultKAN held side by side as a single block-diagonal model.

In: ``R`` models of one configuration. Out: a :class:`Stack`, one MultKAN whose every layer
holds the ``R`` models' layers as diagonal blocks (edges between blocks are masked off), with
the index maps between the stacked model and each member, and flat parameter and gradient
buffers the optimisers read and write with single tensor operations. Stage: runtime
(training). One forward of the stack is one forward of all members; members never interact.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> members = [MultKAN([2, 3, 1], seed=s, dtype=torch.float64) for s in range(3)]
>>> stack = Stack(members)
>>> x = torch.rand(5, 2, dtype=torch.float64)
>>> out = stack.forward(x)  # (N, R, n_out)
>>> bool(torch.allclose(out[:, 2], members[2](x)))
True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from .config import model_config

if TYPE_CHECKING:
    from .multkan import MultKAN

Selector = Callable[[int], tuple]


def node_index(width: list[int], arity: list[int], n_members: int, subnodes: bool) -> torch.Tensor:
    """``(R, n)``: where node (or subnode) ``j`` of member ``r`` sits in the stacked layer.

    A stacked layer lists all sum nodes first (member by member), then all mult nodes; a
    mult node's subnodes are contiguous, ``arity`` slots each.
    """
    n_sum, n_mult = width
    n_rest = sum(arity) if subnodes else n_mult
    r = torch.arange(n_members).unsqueeze(1)
    j = torch.arange(n_sum + n_rest).unsqueeze(0)
    return torch.where(j < n_sum, r * n_sum + j, n_members * n_sum + r * n_rest + (j - n_sum))


def stacked_config(model: MultKAN, n_members: int) -> dict[str, Any]:
    """Constructor arguments of the stacked model of ``n_members`` copies of ``model``."""
    config = model_config(model)
    config.update(
        width=[[w[0] * n_members, w[1] * n_members] for w in model.width],
        mult_arity=[list(a) * n_members for a in model.mult_arity],
        variables=None, dtype=model.dtype, device=model.device,
    )  # fmt: skip
    return config


class Stack:
    """``R`` members of one configuration as one block-diagonal :class:`MultKAN`.

    ``model`` is the stacked network; ``index`` is ``(R, P)``, the positions of each member's
    ``P`` trainable values in the flat buffer ``flat`` that the stacked model's trainable
    parameters view (``grad_flat`` likewise holds their gradients).
    """

    def __init__(self, members: Sequence[MultKAN]) -> None:
        first = members[0]
        self.n = len(members)
        self.depth = first.depth
        self.nodes = [
            node_index(first.width[li], first.mult_arity[li], self.n, subnodes=False)
            for li in range(first.depth + 1)
        ]
        self.subnodes = [torch.zeros(self.n, 0, dtype=torch.long)] + [
            node_index(first.width[li], first.mult_arity[li], self.n, subnodes=True)
            for li in range(1, first.depth + 1)
        ]
        self.model = type(first)(**stacked_config(first, self.n))
        self._shapes = {k: v.shape for k, v in self.model.state_dict().items()}
        self._load_members(members)
        self._flatten()

    # --- where each member's tensors sit ------------------------------------------------------

    def selector(self, name: str) -> Selector:
        """For a state-dict entry of a member, ``r -> index`` of its block in the stack."""
        edge = re.fullmatch(
            r"(layers|symbolic)\.(\d+)\.(coef|scale_base|scale_sp|mask|affine|fn_ids)", name
        )
        if edge:
            li = int(edge.group(2))
            rows, cols = self.nodes[li], self.subnodes[li + 1]
            return lambda r: (rows[r].unsqueeze(1), cols[r].unsqueeze(0))
        basis = re.fullmatch(r"layers\.(\d+)\.basis\..+", name)
        if basis:  # per-input state (knots, ...) by rows; shared state as a whole
            rows = self.nodes[int(basis.group(1))]
            shared = self._shapes[name][:1] != (rows.shape[1] * self.n,)
            return (lambda r: (slice(None),)) if shared else (lambda r: (rows[r],))
        affine = re.fullmatch(r"(node|subnode)_(scale|bias)\.(\d+)", name)
        if affine:
            table = self.nodes if affine.group(1) == "node" else self.subnodes
            idx = table[int(affine.group(3)) + 1]
            return lambda r: (idx[r],)
        raise ConfigError(f"restarts: no rule to stack the model entry {name!r}")

    def _load_members(self, members: Sequence[MultKAN]) -> None:
        big = self.model
        state = {k: torch.zeros_like(v) for k, v in big.state_dict().items()}
        for r, member in enumerate(members):
            for name, value in member.state_dict().items():
                state[name][self.selector(name)(r)] = value
        big.load_state_dict(state)
        params = dict(members[0].named_parameters())
        for name, p in big.named_parameters():
            p.requires_grad_(params[name].requires_grad)
        for li in range(big.depth):
            big.symbolic[li].fn_names = list(members[0].symbolic[li].fn_names)
            big.layers[li].grid_eps = members[0].layers[li].grid_eps

    def _flatten(self) -> None:
        """Make the trainable parameters views of one flat buffer (and their grads too)."""
        idle = {f"symbolic.{li}." for li, sym in enumerate(self.model.symbolic) if not sym.active}
        named = [
            (n, p) for n, p in self.model.named_parameters()
            if p.requires_grad and not any(n.startswith(prefix) for prefix in idle)
        ]  # fmt: skip
        self.params = [p for _, p in named]
        sizes = [p.numel() for p in self.params]
        opts: dict[str, Any] = {"dtype": self.model.dtype, "device": self.model.device}
        self.flat = (
            torch.cat([p.detach().reshape(-1) for p in self.params])
            if named
            else (torch.zeros(0, **opts))
        )
        self.grad_flat = torch.zeros_like(self.flat)
        blocks, offset = [], 0
        for (name, p), size in zip(named, sizes):
            p.data = self.flat[offset : offset + size].view_as(p)
            p.grad = self.grad_flat[offset : offset + size].view_as(p)
            pos = torch.arange(offset, offset + size, device=self.flat.device).view_as(p)
            sel = self.selector(name)
            if self.n > 1 and sel(0) == (slice(None),):
                raise ConfigError(f"restarts > 1: the trainable {name!r} is shared by all inputs")
            blocks.append(torch.stack([pos[sel(r)].reshape(-1) for r in range(self.n)]))
            offset += size
        self.index = (
            torch.cat(blocks, dim=1) if blocks else torch.zeros(self.n, 0, dtype=torch.long)
        )

    # --- use ------------------------------------------------------------------------------------

    def theta(self) -> torch.Tensor:
        """``(R, P)``: every member's trainable values (a copy)."""
        return self.flat[self.index]

    def set_theta(self, theta: torch.Tensor) -> None:
        self.flat[self.index] = theta

    def grad(self) -> torch.Tensor:
        return self.grad_flat[self.index]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked model's input: ``x`` repeated once per member."""
        return x.repeat(1, self.n) if self.n > 1 else x

    def outputs(self, out: torch.Tensor) -> torch.Tensor:
        """``(N, R, n_out)`` from the stacked model's output."""
        return out[:, self.nodes[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(self.model(self.inputs(x)))

    def member_state(self, r: int) -> dict[str, torch.Tensor]:
        """Member ``r``'s state dict (copies), for ``MultKAN.load_state_dict``."""
        return {
            name: value[self.selector(name)(r)].clone()
            for name, value in self.model.state_dict().items()
        }

    def edge_blocks(self, li: int, values: torch.Tensor) -> torch.Tensor:
        """``(..., R, in, out)`` member blocks of a stacked ``(..., in_all, out_all)`` tensor."""
        rows, cols = self.nodes[li], self.subnodes[li + 1]
        return values[..., rows.unsqueeze(2), cols.unsqueeze(1)]
