"""Batched optimisers: R independent problems advanced by one set of tensor operations.

In: parameters ``theta (R, P)`` and a function returning the R losses ``(R,)`` and gradients
``(R, P)`` at any ``theta``. Out: the next ``theta``. Stage: runtime (training).
:class:`BatchedBFGS` keeps a dense inverse-Hessian estimate ``(P, P)`` per problem (for the
small models it is meant for, the limit of L-BFGS with a long memory, at the cost of a few
batched matrix products per iteration instead of a Python loop over the memory) and spreads a
backtracking (Armijo) line search per problem over its iterations; :class:`BatchedAdam` is
Adam. Both reject a step whose loss or gradient is not finite and keep the point.

>>> import torch
>>> target = torch.tensor([[1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
>>> weight = torch.tensor([[1.0], [10.0]], dtype=torch.float64)
>>> def evaluate(theta):
...     diff = theta - target
...     return (weight * diff**2).sum(1), 2 * weight * diff
>>> bfgs = BatchedBFGS(2, 2, dtype=torch.float64)
>>> theta = bfgs.run(torch.zeros(2, 2, dtype=torch.float64), evaluate, iterations=10)
>>> bool(torch.allclose(theta, target))
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import native_model

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class BatchedBFGS:
    """BFGS over a leading batch of ``R`` problems, one evaluation per iteration.

    Each iteration evaluates every problem once, at ``theta + t * d``. A problem whose trial
    passes the Armijo test (finite and low enough) moves there and updates its curvature; the
    others stay and retry the same direction next iteration with a shorter ``t`` (the
    minimiser of the quadratic through the known values, within ``[t/10, t/2]``). So a
    backtracking line search is spread over iterations, and no problem waits for another.
    After ``max_backtracks`` rejections in a row a problem forgets its curvature.
    ``run(theta, evaluate, iterations)`` returns the new ``theta``; the loss and gradient at
    ``theta`` are kept for the next call until :meth:`forget` (the objective changed).
    """

    def __init__(
        self, n_problems: int, n_params: int, *, dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None, c1: float = 1e-4, max_backtracks: int = 12,
        native: bool = True,
    ) -> None:  # fmt: skip
        self.c1, self.max_backtracks = float(c1), int(max_backtracks)
        opts: dict[str, Any] = {"dtype": dtype, "device": device}
        self.eye = torch.eye(n_params, **opts).expand(n_problems, -1, -1)
        self.h = self.eye.clone()
        self.fresh = torch.ones(n_problems, dtype=torch.bool, device=device)
        self.loss = torch.zeros(n_problems, **opts)
        self.grad = torch.zeros(n_problems, n_params, **opts)
        self.known = False  # whether loss and grad hold the values at the current theta
        self.direction = torch.zeros(n_problems, n_params, **opts)
        self.t = torch.zeros(n_problems, **opts)  # 0: take a new direction
        self.slope = torch.zeros(n_problems, **opts)
        self.rejected = torch.zeros(n_problems, dtype=torch.long, device=device)
        self.evaluations = 0
        self.native = native  # the C iteration where it applies (see :meth:`_kernels`)

    def forget(self, curvature: bool = False) -> None:
        """Drop the cached loss/gradient and pending steps (and, with ``curvature``, the
        Hessian estimate): the objective changed."""
        self.known = False
        self.t.zero_()
        if curvature:
            self.h = self.eye.clone()
            self.fresh.fill_(True)

    def select(self, idx: torch.Tensor) -> None:
        """Keep only the problems ``idx``, with all their state."""
        self.h, self.fresh = self.h[idx], self.fresh[idx]
        self.eye = self.eye[: len(idx)]
        self.direction, self.slope = self.direction[idx], self.slope[idx]
        self.rejected, self.t = self.rejected[idx], self.t[idx]
        self.loss, self.grad = self.loss[idx], self.grad[idx]

    def run(self, theta: torch.Tensor, evaluate: Evaluate, iterations: int) -> torch.Tensor:
        for _ in range(iterations):
            theta = self.iterate(theta, evaluate)
        return theta

    def _eval(self, theta: torch.Tensor, evaluate: Evaluate) -> tuple[torch.Tensor, torch.Tensor]:
        self.evaluations += 1
        return evaluate(theta)

    def _directions(self) -> None:
        """New quasi-Newton directions for the problems without a pending step."""
        grad, new = self.grad, self.t == 0
        direction = -torch.bmm(self.h, grad.unsqueeze(-1)).squeeze(-1)
        slope = (grad * direction).sum(1)
        uphill = ~(slope < 0)  # not a descent direction (or NaN): fall back to the gradient
        direction = torch.where(uphill.unsqueeze(1), -grad, direction)
        slope = torch.where(uphill, -(grad * grad).sum(1), slope)
        # first step of a fresh estimate: at most a unit step in the L1 norm (as torch's LBFGS)
        first = torch.clamp(1.0 / grad.abs().sum(1).clamp_min(1e-30), max=1.0)
        t = torch.where(self.fresh | uphill, first, torch.ones_like(first))
        self.direction = torch.where(new.unsqueeze(1), direction, self.direction)
        self.slope = torch.where(new, slope, self.slope)
        self.t = torch.where(new, t, self.t)

    def _kernels(self, theta: torch.Tensor) -> tuple[Any, Any] | None:
        """The C directions and acceptance (:mod:`.native_model`) for float32/float64 on CPU:
        the same arithmetic as the tensor code in a few loops, for the small problems where
        the ~50 tensor operations of an iteration cost more than the evaluation."""
        if not self.native or theta.device.type != "cpu":
            return None
        if theta.dtype not in (torch.float32, torch.float64) or self.h.dtype != theta.dtype:
            return None
        fns = native_model.kernel()
        if fns is None:
            return None
        return fns["bfgs_directions", theta.dtype], fns["bfgs_accept", theta.dtype]

    def _iterate_native(self, theta: torch.Tensor, evaluate: Evaluate, fns: tuple) -> torch.Tensor:
        directions, accept = fns
        theta = theta.contiguous().clone()
        state = [self.h, self.loss, self.grad, self.direction, self.t, self.slope, self.fresh,
                 self.rejected]  # fmt: skip
        (self.h, self.loss, self.grad, self.direction, self.t, self.slope, self.fresh,
         self.rejected) = (x.contiguous() for x in state)  # fmt: skip
        n, p = theta.shape
        trial = torch.empty_like(theta)
        directions(n, p, self.h.data_ptr(), self.grad.data_ptr(), self.fresh.data_ptr(),
                   self.direction.data_ptr(), self.slope.data_ptr(), self.t.data_ptr(),
                   theta.data_ptr(), trial.data_ptr())  # fmt: skip
        f, g = self._eval(trial, evaluate)
        f = f.to(theta.dtype).contiguous()
        g = g.to(theta.dtype).contiguous()
        work = torch.empty(2 * p, dtype=theta.dtype)
        accept(n, p, self.c1, self.max_backtracks, theta.data_ptr(), trial.data_ptr(),
               f.data_ptr(), g.data_ptr(), self.loss.data_ptr(), self.grad.data_ptr(),
               self.h.data_ptr(), self.fresh.data_ptr(), self.slope.data_ptr(),
               self.t.data_ptr(), self.rejected.data_ptr(), work.data_ptr())  # fmt: skip
        return theta

    def iterate(self, theta: torch.Tensor, evaluate: Evaluate) -> torch.Tensor:
        """One evaluation: every problem tries its step; the ones that pass take it."""
        if not self.known:
            self.loss, self.grad = self._eval(theta, evaluate)
            self.known = True
            self.t.zero_()
        fns = self._kernels(theta)
        if fns is not None:
            return self._iterate_native(theta, evaluate, fns)
        self._directions()
        loss, t = self.loss, self.t
        trial = theta + t.unsqueeze(1) * self.direction
        f, g = self._eval(trial, evaluate)
        ok = torch.isfinite(f) & (f <= loss + self.c1 * t * self.slope) & torch.isfinite(g).all(1)
        rejected = torch.where(ok, torch.zeros_like(self.rejected), self.rejected + 1)
        give_up = rejected >= self.max_backtracks
        self._update(trial - theta, g - self.grad, ok, give_up)
        self.loss = torch.where(ok, f, loss)
        self.grad = torch.where(ok.unsqueeze(1), g, self.grad)
        # rejected: the minimiser of the quadratic through f(0), f'(0), f(t), in [t/10, t/2]
        curv = torch.nan_to_num(f - loss - self.slope * t, nan=0.0, posinf=0.0)
        quad = torch.where(curv > 0, -self.slope * t * t / (2 * curv.clamp_min(1e-30)), 0.5 * t)
        shorter = torch.minimum(torch.maximum(quad, 0.1 * t), 0.5 * t)
        self.t = torch.where(ok | give_up, torch.zeros_like(t), shorter)
        self.rejected = torch.where(give_up, torch.zeros_like(rejected), rejected)
        return torch.where(ok.unsqueeze(1), trial, theta)

    def _update(
        self, s: torch.Tensor, y: torch.Tensor, ok: torch.Tensor, reset: torch.Tensor
    ) -> None:
        """BFGS update of the inverse Hessian where a step was taken with ``s.y > 0``; back to
        the identity where ``reset``."""
        sy = (s * y).sum(1)
        use = ok & (sy > 1e-10 * s.norm(dim=1) * y.norm(dim=1)) & torch.isfinite(sy)
        # a fresh estimate starts from the scaled identity (s.y / y.y) I
        gamma = torch.where(self.fresh, sy / (y * y).sum(1).clamp_min(1e-30), 1.0)
        h = torch.where(_col(self.fresh, 2), self.eye * gamma.view(-1, 1, 1), self.h)
        rho = torch.where(use, 1.0 / torch.where(use, sy, torch.ones_like(sy)), 0.0)
        hy = torch.bmm(h, y.unsqueeze(-1)).squeeze(-1)
        # H - rho (s hy^T + hy s^T) + (rho^2 y.hy + rho) s s^T, as one rank-2 product
        coef = (rho * rho * (y * hy).sum(1) + rho).unsqueeze(1)
        left = torch.stack([s, hy], dim=2)  # (R, P, 2)
        right = torch.stack([coef * s - rho.unsqueeze(1) * hy, -rho.unsqueeze(1) * s], dim=1)
        new = torch.baddbmm(h, left, right)
        self.h = torch.where(_col(use, 2), new, torch.where(_col(reset, 2), self.eye, self.h))
        self.fresh = (self.fresh & ~use) | reset


def _col(mask: torch.Tensor, extra: int = 1) -> torch.Tensor:
    return mask.view(-1, *([1] * extra))


class BatchedAdam:
    """Adam on ``theta (R, P)``; a problem whose loss or gradient is not finite skips the step
    (its moments are kept)."""

    def __init__(
        self, n_problems: int, n_params: int, lr: float, *, dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None, betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:  # fmt: skip
        self.lr, self.betas, self.t = float(lr), betas, 0
        self.m = torch.zeros(n_problems, n_params, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.m)

    def forget(self, curvature: bool = False) -> None:
        """Nothing is cached between steps (kept for the optimiser interface)."""

    def select(self, idx: torch.Tensor) -> None:
        """Keep only the problems ``idx``."""
        self.m, self.v = self.m[idx], self.v[idx]

    def run(self, theta: torch.Tensor, evaluate: Evaluate, iterations: int) -> torch.Tensor:
        for _ in range(iterations):
            theta = self.iterate(theta, evaluate)
        return theta

    def iterate(self, theta: torch.Tensor, evaluate: Evaluate) -> torch.Tensor:
        loss, grad = evaluate(theta)
        ok = (torch.isfinite(loss) & torch.isfinite(grad).all(dim=1)).unsqueeze(1)
        grad = torch.where(ok, grad, torch.zeros_like(grad))
        self.t += 1
        b1, b2 = self.betas
        self.m = torch.where(ok, b1 * self.m + (1 - b1) * grad, self.m)
        self.v = torch.where(ok, b2 * self.v + (1 - b2) * grad * grad, self.v)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return torch.where(ok, theta - self.lr * m_hat / (v_hat.sqrt() + 1e-8), theta)
