"""What training minimises: the loss of every restart, the KAN penalties, and their gradients.

In: a :class:`~kanpiler.runtime.stack.Stack` (one or more restarts), a batch and the loss
settings. Out: per-restart losses ``(R,)`` and gradients ``(R, P)`` at given parameters, the
function the optimisers call. Stage: runtime (training).

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> from kanpiler.runtime.stack import Stack
>>> stack = Stack([MultKAN([1, 2, 1], seed=s, dtype=torch.float64) for s in range(2)])
>>> x = torch.linspace(-1, 1, 20, dtype=torch.float64).reshape(-1, 1)
>>> objective = Objective(stack, Penalty(), None)
>>> objective.set_batch(x, x**2)
>>> loss, grad = objective(stack.theta())
>>> loss.shape, grad.shape == stack.index.shape
(torch.Size([2]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from . import distributed, native_model
from .stack import Stack
from .structure import Record

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Penalty:
    """pykan's regulariser: ``lamb * (l1 * L1 + entropy * H + coef * |c| + coefdiff * |dc|)``."""

    lamb: float = 0.0
    l1: float = 1.0
    entropy: float = 2.0
    coef: float = 0.0
    coefdiff: float = 0.0

    @property
    def active(self) -> bool:
        return self.lamb > 0


def mse_per_member(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(R,)`` mean squared errors of ``pred (N, R, out)`` against ``target (N, out)``."""
    return (pred - target.unsqueeze(1)).square().mean(dim=(0, 2))


def losses(pred: torch.Tensor, target: Any, loss_fn: LossFn | None) -> torch.Tensor:
    """``(R,)`` losses: MSE in one go, a custom ``loss_fn(pred_r, target)`` per restart."""
    if loss_fn is None:
        return mse_per_member(pred, target)
    return torch.stack([loss_fn(pred[:, r], target).reshape(()) for r in range(pred.shape[1])])


def penalty(stack: Stack, record: Record, pen: Penalty) -> torch.Tensor:
    """``(R,)`` the penalty of every restart from a recorded stacked forward."""
    total = torch.zeros(stack.n, dtype=stack.model.dtype, device=stack.model.device)
    for li, (acts, edges) in enumerate(zip(record.acts, record.spline_acts)):
        if edges.shape[0] < 2:
            continue
        rows = stack.nodes[li]
        edge = stack.edge_blocks(li, edges)  # (N, R, in, out)
        # standard deviations over the batch of every process (plain std with one)
        std_in = distributed.batch_std(acts[:, rows])
        scale = distributed.batch_std(edge) / (std_in.unsqueeze(-1) + 0.1)
        share_in = scale / (scale.sum(dim=1, keepdim=True) + 1)
        share_out = scale / (scale.sum(dim=2, keepdim=True) + 1)
        ent_in = -(share_in * torch.log2(share_in + 1e-4)).sum(dim=1).mean(dim=1)
        ent_out = -(share_out * torch.log2(share_out + 1e-4)).sum(dim=2).mean(dim=1)
        total = total + pen.l1 * scale.sum(dim=(1, 2)) + pen.entropy * (ent_in + ent_out)
        if pen.coef or pen.coefdiff:
            cols = stack.subnodes[li + 1]
            coef = stack.model.layers[li].coef[rows.unsqueeze(2), cols.unsqueeze(1)]
            total = total + pen.coef * coef.abs().mean(dim=2).sum(dim=(1, 2))
            total = total + pen.coefdiff * coef.diff(dim=-1).abs().mean(dim=2).sum(dim=(1, 2))
    return total


class Objective:
    """``theta (R, P) -> (loss (R,), grad (R, P))`` on the current batch (set by
    :meth:`set_batch`); ``data`` keeps the last data losses (without the penalty).

    Pure B-spline models with the squared loss and no penalty are evaluated by the native
    whole-model kernel (:mod:`.native_model`: one call for outputs, losses and gradients, the
    gradients written straight into the stack's gradient buffer); others, or without a C
    compiler, by autograd. Both give the same values.
    """

    def __init__(self, stack: Stack, pen: Penalty, loss_fn: LossFn | None) -> None:
        self.stack, self.pen, self.loss_fn = stack, pen, loss_fn
        self.inputs = torch.empty(0)
        self.target: Any = None
        self.native = self._native()
        self.native_batch = False  # whether the current batch suits the native kernel

    def _native(self) -> native_model.Model | None:
        """The native kernel for this objective, or ``None`` where it does not apply."""
        model = self.stack.model
        if self.loss_fn is not None or self.pen.active or not native_model.applies(model):
            return None
        handled = {
            id(p) for layer in model.layers for p in (layer.coef, layer.scale_base, layer.scale_sp)
        }
        if not all(id(p) in handled for p in self.stack.params):
            return None
        return native_model.Model(model)

    def set_batch(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.inputs, self.target = self.stack.inputs(x), y
        model = self.stack.model
        self.native_batch = (
            self.native is not None
            and isinstance(y, torch.Tensor)
            and y.dtype == model.dtype
            and y.device == model.device
            and tuple(y.shape) == (x.shape[0], self.stack.nodes[-1].shape[1])
        )

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, R, n_out)`` outputs of every restart at ``x`` (no autograd)."""
        stack = self.stack
        if self.native is None:
            with torch.no_grad():
                return stack.forward(x)
        return stack.outputs(self.native.outputs(stack.inputs(x)))

    def values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Data losses and penalties ``(R,)`` at the current parameters (with autograd)."""
        stack = self.stack
        out, record = stack.model.run(self.inputs, record=self.pen.active)
        data = losses(stack.outputs(out), self.target, self.loss_fn)
        reg = penalty(stack, record, self.pen) if record is not None else torch.zeros_like(data)
        return data, reg

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stack = self.stack
        stack.set_theta(theta)
        if self.native is not None and self.native_batch:
            _, loss = self.native.run(self.inputs, self.target, stack.nodes[-1], backward=True)
            assert loss is not None  # targets were given
            count = self.inputs.shape[0]
            return distributed.mean_loss_and_grad(loss.to(theta.dtype), stack.grad(), count)
        stack.grad_flat.zero_()
        with torch.enable_grad():
            data, reg = self.values()
            total = data + self.pen.lamb * reg if self.pen.active else data
            total.sum().backward()
        # under torch.distributed: the loss and gradient of the whole batch, on every rank
        return distributed.mean_loss_and_grad(total.detach(), stack.grad(), self.inputs.shape[0])
