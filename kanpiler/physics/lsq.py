"""Levenberg–Marquardt least squares for a KAN's spline layers, with the exact Jacobian.

In: a ``MultKAN`` and data ``(x, y)``. Out: the model fitted in place (the best parameters
seen are kept) and a :class:`LSQResult`. Stage: physics.

A KAN layer is linear in its weights given its input: its output is
``[silu(h) | B(h)] @ W`` per edge. So the derivative of output ``o`` at sample ``n`` with
respect to a weight of layer ``l`` is the layer's feature at ``n`` times ``du_o/dy_l`` at
``n``, and one backward pass of ``u[:, o].sum()`` gives ``du_o/dy_l`` for every sample at
once (samples do not interact). The full Jacobian ``(N * out, P)`` therefore costs one forward
and ``out`` backward passes, and each step solves the damped Gauss–Newton problem
``min |J delta + r|^2 + lambda |diag(J^T J)^(1/2) delta|^2`` exactly (QR, then an SVD of the
``P x P`` factor). Near a good fit
the residual is small and Gauss–Newton converges quadratically, where first-order and
quasi-Newton methods crawl on the ill-conditioned fine grids (at G = 100 LBFGS still improves
after 600 evaluations). Trained: the spline coefficients and base weights ``w_b`` of every
active numeric edge; ``w_s``, symbolic edges, node affines and the knots stay as they are.
Cost per step: ``O(N * out * P^2 + P^3)`` time and ``N * out * P`` memory, so it suits models up to a few thousand parameters.

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> x = torch.linspace(-1, 1, 200, dtype=torch.float64).reshape(-1, 1)
>>> model = MultKAN([1, 1], grid=10, dtype=torch.float64)
>>> res = least_squares(model, x, torch.sin(3 * x), steps=5)
>>> res.train_rmse[-1] < 1e-4
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError, ShapeError
from ..runtime.layer import BASE_FUNCTIONS


@dataclass
class LSQResult:
    """``train_rmse`` (after every step, the first entry before any), ``test_rmse`` (same,
    when test data was given), ``damping`` (lambda after every step), ``steps`` (taken) and
    ``stopped`` (``"steps"`` or ``"converged"``)."""

    train_rmse: list[float] = field(default_factory=list)
    test_rmse: list[float] = field(default_factory=list)
    damping: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = "steps"


def least_squares(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int = 20,
    *,
    damping: float = 1e-3,
    tolerance: float = 1e-12,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LSQResult:
    """Fit ``model(x)`` to ``y`` by ``steps`` Levenberg–Marquardt steps. Each step forms the
    Jacobian once, tries the dampings ``lambda * (1e-3, 1e-2, 0.1, 1)`` (``lambda`` starts at
    ``damping``, relative to unit-norm columns) and keeps the best, or raises ``lambda``
    tenfold until the loss falls. Stops early when a step lowers the loss by less than
    ``tolerance`` relative, or when no damping lowers it; the model keeps the best
    parameters."""
    if not hasattr(model, "layers") or not hasattr(model, "symbolic"):
        raise ConfigError(f"least_squares needs a MultKAN, not {type(model).__name__}")
    if steps < 0 or not damping > 0 or not tolerance >= 0:
        raise ConfigError(f"least_squares needs steps >= 0, damping > 0, tolerance >= 0, got "
                          f"{steps}, {damping}, {tolerance}")  # fmt: skip
    dtype, device = model.dtype, model.device
    x = model.check_input(x.to(dtype=dtype, device=device))
    y = y.to(dtype=dtype, device=device).reshape(len(x), -1)
    if y.shape[1] != model.n_outputs:
        raise ShapeError(f"y has {y.shape[1]} columns, the model {model.n_outputs} outputs")
    blocks = _blocks(model)
    if not blocks:
        raise ConfigError("least_squares: the model has no active spline edges to fit")
    out = LSQResult()

    def loss() -> float:
        with torch.no_grad():
            return float((model(x) - y).square().mean())

    def record(value: float, lam: float) -> None:
        out.train_rmse.append(math.sqrt(value))
        out.damping.append(lam)
        if test is not None:
            xt, yt = (t.to(dtype=dtype, device=device) for t in test)
            with torch.no_grad():
                err = model(xt) - yt.reshape(len(xt), -1)
            out.test_rmse.append(float(err.square().mean().sqrt()))

    current, lam = loss(), float(damping)
    record(current, lam)
    for _ in range(int(steps)):
        jac, r = _jacobian(model, blocks, x, y)
        step = _damped_steps(jac, r)
        theta = _get(blocks)

        def attempt(value: float, theta=theta, step=step) -> float:
            _set(blocks, theta + step(value))
            return loss()

        # smaller dampings first (the best of four), then larger ones until the loss falls
        tries = [(attempt(v), v) for v in (lam * 1e-3, lam * 1e-2, lam * 0.1, lam) if v >= 1e-16]
        trial, best = min(tries)
        while trial >= current and best < 1e12:
            best *= 10.0
            trial = attempt(best)
        out.steps += 1
        if trial >= current:
            _set(blocks, theta)
            out.stopped = "converged"
            record(current, lam)
            break
        _set(blocks, theta + step(best))
        gain = (current - trial) / current if current > 0 else 0.0
        current, lam = trial, max(best, 1e-15)
        record(current, lam)
        if gain < tolerance:
            out.stopped = "converged"
            break
    return out


def _blocks(model: Any) -> list[tuple[int, Any, torch.Tensor]]:
    """(layer index, layer, indices of its active edges) for every active numeric layer."""
    out = []
    for li, layer in enumerate(model.layers):
        if layer.active:
            out.append((li, layer, (layer.mask.reshape(-1) != 0).nonzero().flatten()))
    return out


def _jacobian(model, blocks, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``J`` ``(N * out, P)`` of the outputs with respect to the trained weights, and the
    residual ``model(x) - y`` flattened the same way (sample-major)."""
    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}
    hooks = []
    for li, layer, _ in blocks:

        def hook(mod, args, result, li=li):
            inputs[li], outputs[li] = args[0].detach(), result

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.enable_grad():
            u = model(x)
    finally:
        for h in hooks:
            h.remove()
    ys = [outputs[li] for li, _, _ in blocks]
    rows = []
    for o in range(u.shape[1]):
        grads = torch.autograd.grad(u[:, o].sum(), ys, retain_graph=o + 1 < u.shape[1])
        cols = []
        for (li, layer, edges), g in zip(blocks, grads):
            h = inputs[li]
            base = BASE_FUNCTIONS[layer.base_fun_name](h)  # (N, in)
            spline = layer.basis(h)  # (N, in, nb)
            w = (layer.scale_sp * layer.mask).detach()  # (in, out)
            # d u / d coef[i, j, b] = g[n, j] w_s[i, j] B[n, i, b]; d u / d w_b[i, j] = g silu
            d_coef = g.unsqueeze(1).unsqueeze(-1) * (w.unsqueeze(-1) * spline.unsqueeze(2))
            d_base = g.unsqueeze(1) * base.unsqueeze(2) * layer.mask
            n = len(h)
            d_coef = d_coef.reshape(n, -1, spline.shape[-1])[:, edges]
            cols += [d_coef.reshape(n, -1), d_base.reshape(n, -1)[:, edges]]
        rows.append(torch.cat(cols, dim=1))
    jac = torch.stack(rows, dim=1).reshape(len(x) * u.shape[1], -1)
    return jac.detach(), (u - y).detach().reshape(-1)


def _get(blocks) -> torch.Tensor:
    parts = []
    for _, layer, edges in blocks:
        nb = layer.coef.shape[-1]
        parts.append(layer.coef.detach().reshape(-1, nb)[edges].reshape(-1))
        parts.append(layer.scale_base.detach().reshape(-1)[edges])
    return torch.cat(parts)


def _set(blocks, theta: torch.Tensor) -> None:
    at = 0
    with torch.no_grad():
        for _, layer, edges in blocks:
            nb = layer.coef.shape[-1]
            coef = layer.coef.view(-1, nb)
            size = len(edges) * nb
            coef[edges] = theta[at : at + size].reshape(-1, nb)
            at += size
            layer.scale_base.view(-1)[edges] = theta[at : at + len(edges)]
            at += len(edges)


def _damped_steps(jac: torch.Tensor, r: torch.Tensor):
    """``lambda -> delta`` minimising ``|J delta + r|^2 + lambda |D^(1/2) delta|^2`` with
    ``D = diag(J^T J)`` (Marquardt's scaling), from one QR and one SVD of the scaled Jacobian,
    so trying another damping costs a matrix-vector product. Orthogonal factors, not the
    normal equations: the base function and the splines are nearly dependent (``silu`` is
    close to the spline space), and ``J^T J`` would square that conditioning."""
    norms = jac.norm(dim=0)
    norms = norms.clamp(min=1e-12 * float(norms.max()) + 1e-300)
    q, rr = torch.linalg.qr(jac / norms)
    u, s, vh = torch.linalg.svd(rr)
    c = u.T @ (q.T @ r)

    def step(lam: float) -> torch.Tensor:
        return -(vh.T @ (s / (s.square() + lam) * c)) / norms

    return step
