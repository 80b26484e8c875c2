"""Training: LBFGS accuracy, determinism, regularisation, early stopping, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import kanpiler
from kanpiler.errors import ConfigError, FitError, ShapeError
from kanpiler.runtime import MultKAN
from kanpiler.runtime.train import regularization, rmse


def _target(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)


def _data(seed: int, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1
    return x, _target(x)


def test_lbfgs_fits_the_kan_paper_function() -> None:
    x, y = _data(0)
    x_test, y_test = _data(1)
    model = MultKAN([2, 5, 1], grid=3, k=3, seed=0, dtype=torch.float64)
    model.fit(x, y, steps=20, progress=False)
    model = model.refine(20, x)  # grid extension, as in the KAN paper
    history = kanpiler.fit(model, x, y, steps=20, x_test=x_test, y_test=y_test, progress=False)
    test = rmse(model, x_test, y_test)
    assert history["test_rmse"][-1] == pytest.approx(test, rel=1e-9)
    assert test < 1e-3
    assert history["train_rmse"][-1] < 1e-3


def test_training_is_deterministic_for_a_seed_and_leaves_global_rng() -> None:
    x, y = _data(2, 300)
    runs = []
    state = torch.random.get_rng_state()
    for _ in range(2):
        model = MultKAN([2, 3, 1], grid=5, seed=3, dtype=torch.float64)
        h = model.fit(
            x, y, steps=6, opt="Adam", lr=0.05, batch=64, lamb=1e-3, seed=11, progress=False
        )
        runs.append((h, [p.detach().clone() for p in model.parameters()]))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(p, q) for p, q in zip(runs[0][1], runs[1][1]))
    assert runs[0][0]["train_rmse"][-1] < runs[0][0]["train_rmse"][0]
    other = MultKAN([2, 3, 1], grid=5, seed=3, dtype=torch.float64)
    h = other.fit(x, y, steps=6, opt="Adam", lr=0.05, batch=64, lamb=1e-3, seed=12, progress=False)
    assert h != runs[0][0]  # a different seed picks different batches


def test_regularization_matches_a_plain_computation() -> None:
    model = MultKAN([2, 3, 2], seed=0, dtype=torch.float64)
    x, _ = _data(4, 200)
    _, rec = model.run(x, record=True)
    got = float(regularization(model, rec, lamb_l1=0.7, lamb_entropy=1.3).detach())
    want = 0.0
    for li in range(model.depth):
        xin = x.numpy() if li == 0 else rec.acts[li].detach().numpy()
        w = model.layers[li]
        edge = np.stack(
            [
                [
                    (w.edge_values(torch.from_numpy(xin)))[:, i, j].detach().numpy()
                    for j in range(w.out_features)
                ]
                for i in range(w.in_features)
            ]
        )  # (in, out, N)
        scale = edge.std(axis=-1, ddof=1) / (xin.std(axis=0, ddof=1)[:, None] + 0.1)
        p_in = scale / (scale.sum(0, keepdims=True) + 1)
        p_out = scale / (scale.sum(1, keepdims=True) + 1)
        ent = (
            -(p_in * np.log2(p_in + 1e-4)).sum(0).mean()
            - (p_out * np.log2(p_out + 1e-4)).sum(1).mean()
        )
        want += 0.7 * scale.sum() + 1.3 * ent
    assert got == pytest.approx(want, rel=1e-10)


def test_regularisation_shrinks_unneeded_edges() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(300, 3, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.sin(2 * x[:, :1])  # inputs 2 and 3 are irrelevant
    model = MultKAN([3, 1], grid=5, seed=0, dtype=torch.float64)
    model.fit(x, y, steps=15, lamb=0.01, progress=False, update_grid=False)
    scores = model.attribute(x)["edge_scores"][0][:, 0]
    assert scores[0] > 20 * scores[1:].max()


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = _data(6, 200)
    x_test, y_test = _data(7, 200)
    model = MultKAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64)
    seen = []
    h = model.fit(
        x, y, steps=200, opt="Adam", lr=0.5, x_test=x_test, y_test=y_test, early_stopping=3,
        progress=False, update_grid=False, log=lambda step, rec: seen.append(step),
    )  # fmt: skip
    assert len(h["test_rmse"]) < 200 and seen == list(range(len(h["test_rmse"])))
    assert rmse(model, x_test, y_test) == pytest.approx(min(h["test_rmse"]), rel=1e-12)


def test_fit_rejects_bad_arguments() -> None:
    model = MultKAN([2, 1], dtype=torch.float64)
    x, y = _data(0, 10)
    with pytest.raises(ShapeError, match="10 inputs but 5 targets"):
        model.fit(x, y[:5], steps=1, progress=False)
    with pytest.raises(ConfigError, match="optimizer"):
        model.fit(x, y, steps=1, opt="SGD", progress=False)
    with pytest.raises(ConfigError, match="x_test"):
        model.fit(x, y, steps=1, early_stopping=True, progress=False)
    for bad, match in [({"lr": 0.0}, "lr"), ({"lr": float("nan")}, "lr"),
                       ({"threads": 0}, "threads"), ({"steps": -1}, "steps")]:  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            model.fit(x, y, progress=False, **{"steps": 1, **bad})
    assert issubclass(ConfigError, ValueError)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(FitError, match="no trainable parameters"):
        model.fit(x, y, steps=1, progress=False)
    bad = y.clone()
    bad[0] = float("nan")
    with pytest.raises(ShapeError, match="NaN or inf in 1 row"):
        MultKAN([2, 1], dtype=torch.float64).fit(x, bad, steps=1, progress=False)


def test_threads_are_set_for_the_call_and_restored() -> None:
    x, y = _data(8, 50)
    model = MultKAN([2, 1], grid=3, dtype=torch.float64)
    before = torch.get_num_threads()
    inside = []
    model.fit(
        x,
        y,
        steps=2,
        threads=1,
        progress=False,
        log=lambda s, r: inside.append(torch.get_num_threads()),
    )
    assert inside == [1, 1] and torch.get_num_threads() == before


def test_history_size_is_checked() -> None:
    x, y = _data(9, 30)
    model = MultKAN([2, 1], grid=3, seed=0, dtype=torch.float64)
    with pytest.raises(ConfigError, match="history_size"):
        model.fit(x, y, steps=1, history_size=0, progress=False)
