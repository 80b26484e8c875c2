"""The shared numerics: least squares, Levenberg-Marquardt, curve fits, scaled LBFGS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kanpiler import library
from kanpiler.errors import FitError
from kanpiler.numerics import (
    fit_curves,
    levenberg_marquardt,
    loss_scale,
    minimize_lbfgs,
)

F64 = torch.float64


def test_levenberg_marquardt_recovers_decays_in_a_batch() -> None:
    t = torch.linspace(0, 3, 60, dtype=F64)
    truth = torch.tensor([[2.0, 0.7], [-1.0, 1.9], [0.5, 0.1]], dtype=F64)
    y = truth[:, :1] * torch.exp(-truth[:, 1:] * t)

    def residual(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.exp(-p[:, 1:] * t)
        jac = torch.stack([e, -p[:, :1] * t * e], -1)
        return p[:, :1] * e - y, jac

    def sse(p: torch.Tensor) -> torch.Tensor:
        return ((p[:, :1] * torch.exp(-p[:, 1:] * t) - y) ** 2).sum(-1)

    start = torch.ones(3, 2, dtype=F64)
    p, loss = levenberg_marquardt(residual, sse, start, steps=60)
    np.testing.assert_allclose(p.numpy(), truth.numpy(), rtol=1e-8)
    assert float(loss.max()) < 1e-20
    assert bool((sse(p) <= sse(start)).all())


def test_fit_curves_rejects_arguments_outside_the_domain() -> None:
    x = torch.linspace(-1, 1, 80, dtype=F64).reshape(1, -1)
    fits = fit_curves(x, 2 * torch.log(x + 1.5) + 1, [library.get("log"), library.get("sin")])
    a, b, c, d = fits.params[0, 0].tolist()
    assert float(fits.r2[0, 0]) > 1 - 1e-10
    xs = x.flatten()
    np.testing.assert_allclose(c * torch.log(a * xs + b) + d, 2 * torch.log(xs + 1.5) + 1,
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert float(fits.r2[0, 1]) < float(fits.r2[0, 0])


def test_loss_scale() -> None:
    assert loss_scale(1e-8) == pytest.approx(1e8)
    assert loss_scale(5.0) == 1.0 and loss_scale(0.0) == pytest.approx(1e30)
    with pytest.raises(FitError, match="initial loss"):
        loss_scale(math.nan)


def test_minimize_lbfgs_fits_tiny_losses_and_never_makes_things_worse() -> None:
    x = torch.linspace(-1, 1, 50, dtype=F64)
    y = 1e-5 * torch.sin(3 * x)  # a loss of 1e-10: unscaled LBFGS would stop at once
    w = torch.tensor([2.5], dtype=F64, requires_grad=True)
    c = torch.tensor([1e-5], dtype=F64, requires_grad=True)
    start, end = minimize_lbfgs([w, c], lambda: ((c * torch.sin(w * x) - y) ** 2).mean(), 50)
    assert end < 1e-12 * start and abs(float(w.detach()) - 3.0) < 1e-6
    bad = torch.tensor([1.0], dtype=F64, requires_grad=True)
    before = bad.detach().clone()
    start, end = minimize_lbfgs([bad], lambda: (bad * 0 + 1.0).sum(), 10)  # flat: nothing to win
    assert start == end == 1.0 and torch.equal(bad.detach(), before)
