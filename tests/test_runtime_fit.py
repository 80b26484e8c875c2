"""fit: restarts, stall warnings, checks before any change, losses, metrics, datasets.make."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import kanpiler
from kanpiler.datasets import make
from kanpiler.errors import ConfigError, KanpilerError, ShapeError
from kanpiler.runtime import MultKAN
from kanpiler.runtime.fitcheck import members
from kanpiler.runtime.objective import Penalty, penalty
from kanpiler.runtime.stack import Stack
from kanpiler.runtime.train import StallWarning


def kan_paper(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:] ** 2)


@pytest.fixture(scope="module")
def paper_data() -> dict:
    return make(kan_paper, 2, seed=0)


def _state(model: MultKAN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_stalled_fit_warns_and_restarts_get_past_it(paper_data) -> None:
    # without warm-up, seed 0 of [2,1,1] lands in a plateau near RMSE 0.6 (target std 1.5)
    model = MultKAN([2, 1, 1], grid=3, seed=0)
    with pytest.warns(StallWarning, match="restarts=8"):
        history = model.fit(paper_data, steps=20, restarts=1, warmup=0)
    assert history["train_rmse"][-1] > 0.5 and "stalled" in history["warnings"][0]
    model = MultKAN([2, 1, 1], grid=3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StallWarning)
        history = model.fit(paper_data, steps=20)  # "auto": 8 restarts for a fresh small model
    assert history["train_rmse"][-1] < 4.2e-2 and history["warnings"] == []
    x, y = paper_data["train_input"], paper_data["train_label"]
    with torch.no_grad():
        want = float(((model(x) - y) ** 2).mean().sqrt())
    assert history["train_rmse"][-1] == pytest.approx(want, rel=1e-5)


def test_stacked_members_compute_their_own_functions() -> None:
    ms = [MultKAN([2, [1, 2], [1, 1]], grid=4, seed=s, dtype=torch.float64) for s in range(3)]
    stack = Stack(ms)
    x = torch.rand(7, 2, dtype=torch.float64) * 2 - 1
    out = stack.forward(x)
    for r, m in enumerate(ms):
        assert torch.allclose(out[:, r], m(x), rtol=1e-12, atol=1e-12)
        back = MultKAN([2, [1, 2], [1, 1]], grid=4, seed=99, dtype=torch.float64)
        back.load_state_dict(stack.member_state(r))
        assert torch.allclose(back(x), m(x), rtol=1e-12, atol=1e-12)


def test_restarts_train_like_separate_fits_and_keep_the_best() -> None:
    data = make(kan_paper, 2, n_train=200, n_test=200, seed=1, dtype=torch.float64)
    alone = []
    starts = members(MultKAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64), 4)
    for member in starts:  # the same four starts, trained one at a time
        h = member.fit(data, steps=3, restarts=1, stall_window=10)
        alone.append(h["test_loss"][-1])
    model = MultKAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    history = model.fit(data, steps=3, restarts=4, stall_window=10)
    # after step 1 (3 // 4 -> 1) the best one of four goes on alone
    best = int(np.argmin(alone))
    assert history["restart"] == [best]
    assert history["test_loss"][-1] == pytest.approx(alone[best], rel=1e-6)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (
            lambda d: d.update(train_input=d["train_input"][:0], train_label=d["train_label"][:0]),
            ShapeError,
            "empty",
        ),
        (lambda d: d["train_input"].__setitem__((3, 1), math.nan), ShapeError, "row 3"),
        (lambda d: d["train_label"].__setitem__((5, 0), math.inf), ShapeError, "row 5"),
        (lambda d: d.update(train_label=d["train_label"][:-1]), ShapeError, "targets"),
        (lambda d: d.update(train_input=d["train_input"].long()), ShapeError, "floating"),
        (lambda d: d.update(train_label=d["train_label"].reshape(-1)), ShapeError, r"\(50, 1\)"),
        (lambda d: d.update(train_label=d["train_label"].numpy()), ShapeError, "torch.Tensor"),
        (lambda d: d.update(test_input=d["test_input"][:, :1]), ShapeError, "test inputs"),
        (lambda d: d.pop("train_label"), ConfigError, "train_label"),
    ],
)
def test_bad_data_raises_before_any_change(change, error, match) -> None:
    data = make(kan_paper, 2, n_train=50, n_test=20, seed=2)
    change(data)
    model = MultKAN([2, 2, 1], grid=3, seed=0)
    before = _state(model)
    with pytest.raises(error, match=match):
        model.fit(data, steps=2)
    assert _same(before, _state(model))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"lr": math.nan}, "lr"),
        ({"threads": -1}, "threads"),
        ({"steps": -1}, "steps"),
        ({"opt": "SGD"}, "opt"),
        ({"restarts": 0}, "restarts"),
        ({"lamb": -1.0}, "lamb"),
        ({"early_stopping": True}, "test data"),
        ({"metrics": [1]}, "callable"),
    ],
)
def test_bad_options_raise_config_errors_before_any_change(options, match) -> None:
    x = torch.rand(30, 2) * 2 - 1
    model = MultKAN([2, 1], grid=3, seed=0)
    before = _state(model)
    with pytest.raises(ConfigError, match=match):
        model.fit(x, kan_paper(x), **options)
    assert _same(before, _state(model))


def test_cross_entropy_with_integer_labels_and_metrics() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(300, 2, generator=g) * 2 - 1
    labels = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like quadrants: two classes

    def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
        return float((pred.argmax(dim=1) == target).float().mean())

    model = MultKAN([2, 2, 2], grid=3, seed=0)
    history = model.fit(
        x, labels, x_test=x, y_test=labels, steps=10, loss_fn=torch.nn.CrossEntropyLoss(),
        metrics=[accuracy],
    )  # fmt: skip
    assert "train_rmse" not in history and len(history["train_loss"]) == 10
    assert history["accuracy"][-1] == accuracy(model(x).detach(), labels) > 0.9
    want = float(torch.nn.functional.cross_entropy(model(x).detach(), labels))
    assert history["train_loss"][-1] == pytest.approx(want, rel=1e-5)
    with pytest.raises(ShapeError, match="loss_fn failed"):
        model.fit(x, labels.float().reshape(-1, 1, 1), loss_fn=torch.nn.CrossEntropyLoss())


def test_a_dataset_dict_equals_tensors() -> None:
    data = make(kan_paper, 2, n_train=100, n_test=50, seed=3, dtype=torch.float64)
    a = MultKAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    b = MultKAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    ha = a.fit(data, steps=3)
    hb = kanpiler.runtime.fit(b, data["train_input"], data["train_label"], steps=3,
                              x_test=data["test_input"], y_test=data["test_label"])  # fmt: skip
    assert ha == hb and _same(_state(a), _state(b))


def test_nonfinite_losses_are_rejected_and_the_model_stays_finite() -> None:
    x = torch.rand(100, 2, dtype=torch.float64) * 2 - 1
    y = kan_paper(x)

    def touchy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = ((pred - target) ** 2).mean()
        return loss if bool(pred.abs().max() < 8) else loss * math.nan

    model = MultKAN([2, 2, 1], grid=3, seed=0, dtype=torch.float64)
    history = model.fit(x, y, steps=40, opt="Adam", lr=2.0, loss_fn=touchy, update_grid=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(history["train_loss"][-1]) and model(x).abs().max() < 8


def test_penalty_with_coefficient_terms_matches_numpy() -> None:
    model = MultKAN([2, 3, 1], grid=4, seed=0, dtype=torch.float64)
    x = torch.rand(64, 2, dtype=torch.float64) * 2 - 1
    stack = Stack([model])
    pen = Penalty(lamb=1.0, l1=0.7, entropy=1.3, coef=0.2, coefdiff=0.4)
    _, record = stack.model.run(x, record=True)
    got = float(penalty(stack, record, pen)[0].detach())
    want, h = 0.0, x.numpy()
    for layer in model.layers:
        edge = layer.edge_values(torch.from_numpy(h)).detach().numpy()  # (N, in, out)
        scale = edge.std(axis=0, ddof=1) / (h.std(axis=0, ddof=1)[:, None] + 0.1)
        p_in = scale / (scale.sum(0, keepdims=True) + 1)
        p_out = scale / (scale.sum(1, keepdims=True) + 1)
        ent = (
            -(p_in * np.log2(p_in + 1e-4)).sum(0).mean()
            - (p_out * np.log2(p_out + 1e-4)).sum(1).mean()
        )
        c = layer.coef.detach().numpy()
        want += 0.7 * scale.sum() + 1.3 * ent + 0.2 * np.abs(c).mean(1).sum()
        want += 0.4 * np.abs(np.diff(c, axis=-1)).mean(1).sum()
        h = edge.sum(axis=1)
    assert got == pytest.approx(want, rel=1e-10)


def test_make_matches_a_numpy_reference_and_leaves_the_global_rng() -> None:
    state = torch.random.get_rng_state()
    data = make(lambda x: np.pi * x[:, 0] - x[:, 1] ** 3, n_var=2, ranges=[[0.5, 2.0], [-3.0, 1.0]],
                n_train=400, n_test=100, seed=7)  # fmt: skip
    assert torch.equal(torch.random.get_rng_state(), state)
    x = data["train_input"].numpy().astype(np.float64)
    assert data["train_label"].shape == (400, 1)
    np.testing.assert_allclose(
        data["train_label"].numpy()[:, 0], np.pi * x[:, 0] - x[:, 1] ** 3, rtol=1e-5, atol=1e-5
    )
    assert (
        x[:, 0].min() >= 0.5
        and x[:, 0].max() < 2.0
        and x[:, 1].min() >= -3.0
        and x[:, 1].max() < 1.0
    )
    again = make(
        lambda x: np.pi * x[:, 0] - x[:, 1] ** 3, 2, [[0.5, 2.0], [-3.0, 1.0]], 400, 100, seed=7
    )
    assert all(torch.equal(data[k], again[k]) for k in data)
    norm = make(lambda x: x.sum(dim=1), 3, (0.0, 4.0), 500, 10, seed=1, normal=True)
    np.testing.assert_allclose(norm["train_input"].numpy().mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(norm["train_label"].numpy().std(0, ddof=1), 1.0, rtol=1e-5)
    with pytest.raises(KanpilerError, match="not finite"):
        make(lambda x: torch.log(x[:, 0]), 1, (-1.0, 1.0))
    with pytest.raises(ConfigError, match="ranges"):
        make(lambda x: x, 2, [[0.0, 1.0]])
