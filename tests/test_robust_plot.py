"""plot(): edges fade by importance, wide layers stay readable, inputs and outputs are named."""

from __future__ import annotations

import torch

from kanpiler.runtime import MultKAN


def _alphas(fig) -> list[float]:
    """Opacity of each edge curve, in drawing order (layer, input, output)."""
    return [ax.lines[0].get_alpha() for ax in fig.axes if ax.lines]


def test_edge_opacity_follows_attribution() -> None:
    model = MultKAN([2, 2, 1], seed=0, dtype=torch.float64, numeric=False)
    model.set_symbolic(0, 0, 0, "sin", 1.0, 0.0, 1.0, 0.0)
    model.set_symbolic(0, 1, 1, "sin", 1.0, 0.0, 1e-4, 0.0)  # almost nothing flows here
    model.set_symbolic(1, 0, 0, "x", 1.0, 0.0, 1.0, 0.0)
    model.set_symbolic(1, 1, 0, "x", 1.0, 0.0, 1.0, 0.0)
    x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
    alphas = _alphas(model.plot(x))
    # layer 0 edges: (0,0) strong, (0,1) off, (1,0) off, (1,1) weak
    assert alphas[0] == 1.0 or alphas[0] > 0.99
    assert alphas[3] < 0.2 and alphas[1] < 0.1 and alphas[2] < 0.1
    assert alphas[3] > alphas[1]
    assert set(_alphas(model.plot())) <= {1.0, 0.08}  # no data: the masks alone


def test_wide_layers_give_a_readable_figure() -> None:
    fig = MultKAN([4, 9, 1], seed=0).plot()
    w, h = fig.get_size_inches()
    assert w <= 14.0 and w / h < 3
    fig = MultKAN([2, 1], seed=0).plot(scale=2.0, max_width=10.0)
    assert fig.get_size_inches()[0] <= 20.0


def test_inputs_and_outputs_are_named() -> None:
    model = MultKAN([2, 3, 2], seed=0, variables=["a", "b"])
    texts = {t.get_text() for t in model.plot().texts}
    assert {"a", "b", "y1", "y2"} <= texts
    texts = {t.get_text() for t in model.plot(out_vars=["u", "v"]).texts}
    assert {"u", "v"} <= texts
