"""Synthetic regression data sets from a function, in pykan's dataset layout.

In: a function of a ``(N, n_var)`` tensor, the sampling box and sizes. Out: a dict with
``train_input``, ``train_label``, ``test_input`` and ``test_label`` that :func:`kanpiler.fit`
and ``MultKAN.fit`` take as it is. Stage: data (used before the runtime). Inputs are drawn
uniformly, per variable, from a private generator seeded with ``seed`` in the order pykan's
``create_dataset`` uses, so ``make(f, seed=s)`` holds the same points as pykan's
``create_dataset(f, seed=s)`` without touching the global random state.

>>> import torch
>>> data = make(lambda x: x[:, :1] * x[:, 1:], n_var=2, n_train=5, n_test=3)
>>> data["train_input"].shape, data["train_label"].shape, data["test_input"].shape
(torch.Size([5, 2]), torch.Size([5, 1]), torch.Size([3, 2]))
>>> bool(torch.equal(data["train_label"], data["train_input"].prod(dim=1, keepdim=True)))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .errors import ConfigError, ShapeError

Dataset = dict[str, torch.Tensor]


def make(
    f: Callable[[torch.Tensor], torch.Tensor],
    n_var: int = 2,
    ranges: Sequence[float] | Sequence[Sequence[float]] = (-1.0, 1.0),
    n_train: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
    normal: bool | str = False,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Dataset:
    """Sample ``f`` on ``n_train`` training and ``n_test`` test points of a box.

    ``ranges`` is one ``(low, high)`` for every variable or one pair per variable. ``f``
    gets the ``(N, n_var)`` inputs and returns ``(N,)`` or ``(N, n_out)`` labels (a vector
    becomes one column). ``normal`` standardises with the training mean and standard
    deviation: ``True`` or ``"both"`` inputs and labels, ``"input"`` or ``"label"`` one of
    them (pykan's ``normalize_input`` / ``normalize_label``); the dict then also holds the
    statistics used (``input_mean``, ``input_std``, ``label_mean``, ``label_std``).
    """
    box = _box(n_var, ranges)
    n_train, n_test = _size(n_train, "n_train", 1), _size(n_test, "n_test", 0)
    if not callable(f):
        raise ConfigError(f"f must be a function of a (N, {n_var}) tensor, got {f!r}")
    which = _normal(normal)
    gen = torch.Generator().manual_seed(int(seed))
    train = torch.zeros(n_train, n_var, dtype=torch.float32)
    test = torch.zeros(n_test, n_var, dtype=torch.float32)
    for i, (lo, hi) in enumerate(box):  # pykan's order: per variable, train then test
        train[:, i] = torch.rand(n_train, generator=gen) * (hi - lo) + lo
        test[:, i] = torch.rand(n_test, generator=gen) * (hi - lo) + lo
    train, test = train.to(dtype=dtype, device=device), test.to(dtype=dtype, device=device)
    data = {"train_input": train, "train_label": _labels(f, train, "training"),
            "test_input": test, "test_label": _labels(f, test, "test")}  # fmt: skip
    for part in which:
        key = "input" if part == "input" else "label"
        mean = data[f"train_{key}"].mean(dim=0, keepdim=True)
        std = data[f"train_{key}"].std(dim=0, keepdim=True)
        std = torch.where(std > 0, std, torch.ones_like(std))
        for split in ("train", "test"):
            data[f"{split}_{key}"] = (data[f"{split}_{key}"] - mean) / std
        data[f"{key}_mean"], data[f"{key}_std"] = mean, std
    return data


def _box(n_var: int, ranges) -> list[tuple[float, float]]:
    n_var = _size(n_var, "n_var", 1)
    try:
        values = torch.as_tensor(ranges, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"ranges must be (low, high) or one pair per variable: {err}") from err
    if values.shape == (2,):
        values = values.expand(n_var, 2)
    if values.shape != (n_var, 2):
        raise ConfigError(
            f"ranges must be (low, high) or {n_var} pairs, got shape {tuple(values.shape)}"
        )
    box = [(float(lo), float(hi)) for lo, hi in values.tolist()]
    for i, (lo, hi) in enumerate(box):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"ranges[{i}] must be finite with low < high, got ({lo}, {hi})")
    return box


def _size(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


def _normal(normal: bool | str) -> tuple[str, ...]:
    table = {False: (), True: ("input", "label"), "both": ("input", "label"),
             "input": ("input",), "label": ("label",)}  # fmt: skip
    if not isinstance(normal, (bool, str)) or normal not in table:
        raise ConfigError(f"normal must be True, False, 'both', 'input' or 'label', got {normal!r}")
    return table[normal]


def _labels(f: Callable, x: torch.Tensor, what: str) -> torch.Tensor:
    y = f(x)
    if not isinstance(y, torch.Tensor):
        raise ShapeError(f"f must return a torch.Tensor, got {type(y).__name__}")
    y = y.unsqueeze(1) if y.dim() == 1 else y
    if y.dim() != 2 or y.shape[0] != x.shape[0]:
        raise ShapeError(
            f"f must return ({x.shape[0]},) or ({x.shape[0]}, n_out) labels, got {tuple(y.shape)}"
        )
    bad = ~torch.isfinite(y).all(dim=1)
    if y.is_floating_point() and bool(bad.any()):
        row = int(torch.nonzero(bad)[0])
        raise ShapeError(
            f"f is not finite at {int(bad.sum())} {what} point(s), first at "
            f"{x[row].tolist()}: check ranges against the function's domain"
        )
    return y
