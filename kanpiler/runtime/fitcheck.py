"""Checking a ``fit`` call before anything changes, and the restarts it trains.

In: the model, the data and the options of :func:`kanpiler.runtime.train.fit`. Out: a
:class:`Plan` (validated tensors and settings) or a :class:`~kanpiler.errors.KanpilerError`
naming the bad input; the members (initialisations) of the restarts and the copy of the kept
one back into the model. Stage: runtime (training).

>>> import torch
>>> from kanpiler.runtime import MultKAN
>>> model = MultKAN([2, 1], dtype=torch.float64)
>>> x = torch.zeros(4, 2, dtype=torch.float64)
>>> check(model, x, torch.zeros(4, 1, dtype=torch.float64), lr=float("nan"))
Traceback (most recent call last):
...
kanpiler.errors.ConfigError: lr must be a finite number > 0, got nan
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError, FitError, ShapeError
from .basis import BSplineBasis
from .batches import BatchStream, is_batches
from .config import model_config
from .objective import Penalty

if TYPE_CHECKING:
    from .multkan import MultKAN
    from .stack import Stack

AUTO_WARMUP = 100  # Adam iterations before LBFGS on a fresh model (see docs/runtime.md)
AUTO_RESTARTS = 8
CUT_STEP = 5  # restarts train all together this many steps, then the best quarter goes on
AUTO_MAX_PARAMS = 1500  # trainable values per model up to which "auto" trains restarts
Pair = tuple[torch.Tensor, Any]


@dataclass
class Plan:
    """A checked ``fit`` call."""

    train: Pair
    test: Pair | None
    steps: int
    opt: str
    lr: float
    batch: int
    penalty: Penalty
    grid: tuple[bool, int, int, int]  # update, every, start, stop
    patience: int
    loss_fn: Callable | None
    metrics: dict[str, Callable]
    restarts: int
    seed: int
    threads: int | None
    stall_window: int
    warmup: int = 0
    warmup_lr: float = 0.01
    history_size: int = 10  # memory of torch's L-BFGS, used for models too large for BFGS
    cut_step: int = 0  # after this many steps only the best ``keep`` restarts go on
    keep: int = 1
    stream: BatchStream | None = None  # training batches from a loader; ``train`` is the first
    test_stream: BatchStream | None = None  # test batches from a loader (passed over per step)
    _noise: float | None = field(default=None, repr=False)

    @property
    def has_test(self) -> bool:
        return self.test is not None or self.test_stream is not None

    @property
    def loss_name(self) -> str:
        return "RMSE" if self.loss_fn is None else "loss"

    def noise_level(self) -> float:
        """An estimate of the targets' noise (RMS): leave-one-out residuals of local linear
        fits on the ``2 d + 4`` nearest neighbours of at most 2048 training points. An
        upper estimate: the curvature of the target adds to it, most in many dimensions."""
        if self._noise is None:
            self._noise = local_noise(*(t[:2048] for t in self.train))
        return self._noise


def local_noise(x: torch.Tensor, y: torch.Tensor) -> float:
    """RMS of ``y`` minus its prediction by a linear fit on the nearest neighbours of ``x``."""
    n, d = x.shape
    k = min(2 * d + 4, n - 1)
    if k < d + 2:
        return 0.0
    with torch.no_grad():
        x64, y64 = x.double(), y.double().reshape(n, -1)
        dist = torch.cdist(x64, x64)
        dist.fill_diagonal_(math.inf)
        near = dist.topk(k, largest=False).indices  # (n, k)
        design = torch.cat(
            [torch.ones(n, k, 1, dtype=x64.dtype, device=x.device), x64[near] - x64.unsqueeze(1)],
            -1,
        )
        sol = torch.linalg.lstsq(design, y64[near]).solution  # (n, d + 1, out)
        return float((y64 - sol[:, 0]).square().mean().sqrt())


def check(
    model: MultKAN, x: Any, y: Any, x_test: Any = None, y_test: Any = None, *,
    steps: int = 100, opt: str = "LBFGS", lr: float = 1.0, batch: int = -1,
    penalty: tuple = (0.0, 1.0, 2.0, 0.0, 0.0), grid: tuple = (True, 10, -1, 50),
    early_stopping: bool | int = False, loss_fn: Callable | None = None,
    metrics: Any = None, restarts: int | str = "auto", seed: int = 0,
    threads: int | None = None, stall_window: int | None = None, warmup: int | str = "auto",
    history_size: int | None = None,
) -> Plan:  # fmt: skip
    """Validate everything ``fit`` needs; raise before any change to ``model``."""
    if isinstance(x, Mapping):
        if y is not None:
            raise ConfigError("fit(model, dataset): pass the dataset dict alone, without y")
        x, y, x_test, y_test = _from_dict(x)
    opt = _option(opt, ("LBFGS", "Adam"), "optimizer (opt)")
    lr = _positive(lr, "lr")
    steps = _count(steps, "steps", 0)
    stream = _stream(model, x, y, "training", loss_fn) if is_batches(x) else None
    if stream is not None:
        if batch is not None and int(batch) > 0:
            raise ConfigError(
                "batch= does not apply to a loader: its batches are used as they come (set "
                "the batch size in the DataLoader)"
            )
        train = stream.first()
    else:
        train = _pair(model, x, y, "training", loss_fn)
    test, test_stream = None, None
    if is_batches(x_test):
        test_stream = _stream(model, x_test, y_test, "test", loss_fn)
        if test_stream.one_shot:
            raise ConfigError(
                "test data given as a one-shot iterator (e.g. a generator) cannot be passed "
                "over at every step; give a DataLoader, a list of batches or tensors"
            )
        test_stream.first()
    elif x_test is not None or y_test is not None:
        test = _pair(model, x_test, y_test, "test", loss_fn)
    n = train[0].shape[0]
    batch = (
        n
        if stream is not None or batch is None or int(batch) <= 0 or int(batch) >= n
        else int(batch)
    )
    pen = Penalty(*(_nonnegative(v, name) for v, name in zip(penalty, _PENALTY_NAMES)))
    update, num, start, stop = grid
    num = _count(num, "grid_update_num", 1)
    patience = (
        (20 if early_stopping is True else _count(early_stopping, "early_stopping", 0))
        if early_stopping
        else 0
    )
    if patience and test is None and test_stream is None:
        raise ConfigError(
            "early_stopping needs test data (x_test and y_test, or test_input/test_label)"
        )
    if threads is not None:
        threads = _count(threads, "threads", 1)
    if not any(p.requires_grad for p in model.parameters()):
        raise FitError("the model has no trainable parameters (every requires_grad is False)")
    plan = Plan(
        train=train, test=test, steps=steps, opt=opt, lr=lr, batch=batch, penalty=pen,
        grid=(bool(update), max(1, int(int(stop) / num)), int(start), int(stop)),
        patience=patience, loss_fn=loss_fn, metrics=_metrics(metrics),
        restarts=_restarts(model, restarts, opt, batch < n or stream is not None),
        seed=int(seed), threads=threads, stream=stream, test_stream=test_stream,
        stall_window=_count(stall_window, "stall_window", 1) if stall_window else (5 if opt == "LBFGS" else 100),
        warmup=_warmup(model, warmup, opt),
        history_size=10 if history_size is None else _count(history_size, "history_size", 1),
    )  # fmt: skip
    if plan.restarts > 1 and opt == "LBFGS":
        plan.cut_step, plan.keep = max(1, min(CUT_STEP, steps // 4)), max(1, plan.restarts // 4)
    _try_loss(model, plan)
    return plan


_PENALTY_NAMES = ("lamb", "lamb_l1", "lamb_entropy", "lamb_coef", "lamb_coefdiff")


def _from_dict(data: Mapping) -> tuple:
    missing = [k for k in ("train_input", "train_label") if k not in data]
    if missing:
        raise ConfigError(f"the dataset dict lacks {', '.join(missing)} (has {sorted(data)})")
    return data["train_input"], data["train_label"], data.get("test_input"), data.get("test_label")


def _option(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; use one of {', '.join(map(repr, allowed))}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _positive(value: Any, name: str) -> float:
    v = _number(value, name)
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def _nonnegative(value: Any, name: str) -> float:
    v = _number(value, name)
    if not (math.isfinite(v) and v >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _stream(model: MultKAN, x: Any, y: Any, what: str, loss_fn: Callable | None) -> BatchStream:
    """A stream of ``what`` batches from ``x``, a loader or iterable of ``(x, y)`` pairs."""
    if y is not None:
        raise ConfigError(
            f"{what} data: pass a loader of (x, y) batches alone, without separate targets"
        )
    return BatchStream(x, lambda item, i: _batch(model, item, f"{what} batch {i}", loss_fn), what)


def _batch(model: MultKAN, item: Any, what: str, loss_fn: Callable | None) -> Pair:
    """Check one batch from a loader (as :func:`_pair`, on any device); move it to the model's."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        size = f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""
        hint = "; for tensors x, y call fit(model, x, y)" if isinstance(item, torch.Tensor) else ""
        raise ShapeError(f"{what} must be a pair (x, y), got {type(item).__name__}{size}{hint}")
    x, y = _pair(model, item[0], item[1], what, loss_fn, any_device=True)
    if x.device != model.device:
        x = x.to(model.device, non_blocking=True)
        y = y.to(model.device, non_blocking=True)
    return x, y


def _pair(
    model: MultKAN, x: Any, y: Any, what: str, loss_fn: Callable | None, any_device: bool = False
) -> Pair:
    """Check one data set: tensors, shapes, dtypes, finiteness (devices: unless
    ``any_device``, those of the model)."""
    for name, t in ((f"{what} inputs", x), (f"{what} targets", y)):
        if not isinstance(t, torch.Tensor):
            raise ShapeError(
                f"{name} must be a torch.Tensor, got {type(t).__name__}; convert with "
                f"torch.as_tensor(..., dtype=model.dtype)"
            )
    if x.dim() != 2 or x.shape[1] != model.n_inputs:
        raise ShapeError(f"{what} inputs must be (N, {model.n_inputs}), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ShapeError(f"{what} data is empty (0 samples)")
    if not x.is_floating_point():
        raise ShapeError(f"{what} inputs are {x.dtype}: use floating point ({model.dtype})")
    if x.dtype != model.dtype or (x.device != model.device and not any_device):
        raise ShapeError(
            f"{what} inputs are {x.dtype} on {x.device}, the model {model.dtype} on "
            f"{model.device}; use x.to(model.dtype, model.device)"
        )
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{what} data: {x.shape[0]} inputs but {y.shape[0]} targets")
    _finite(x, f"{what} inputs")
    if loss_fn is None:
        want = (x.shape[0], model.n_outputs)
        if tuple(y.shape) != want:
            raise ShapeError(
                f"{what} targets must be {want} for the squared loss, got {tuple(y.shape)}"
            )
        if y.dtype != x.dtype or y.device != x.device:
            raise ShapeError(
                f"{what} targets are {y.dtype} on {y.device}, inputs {x.dtype} on {x.device}"
            )
    if y.is_floating_point():
        _finite(y, f"{what} targets")
    return x, y


def _finite(t: torch.Tensor, name: str) -> None:
    bad = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten()
        raise ShapeError(
            f"{name} hold NaN or inf in {rows.numel()} row(s), first at row {int(rows[0])}"
        )


def _metrics(metrics: Any) -> dict[str, Callable]:
    if metrics is None:
        return {}
    items = metrics.items() if isinstance(metrics, Mapping) else [
        (getattr(m, "__name__", f"metric{i}"), m) for i, m in enumerate(metrics)]  # fmt: skip
    out = dict(items)
    for name, fn in out.items():
        if not callable(fn):
            raise ConfigError(f"metric {name!r} is not callable: {fn!r}")
    return out


def _warmup(model: MultKAN, warmup: int | str, opt: str) -> int:
    if warmup == "auto":
        return AUTO_WARMUP if opt == "LBFGS" and _fresh(model) else 0
    return _count(warmup, "warmup", 0)


def _restarts(model: MultKAN, restarts: int | str, opt: str, batched: bool) -> int:
    if restarts == "auto":
        small = sum(p.numel() for p in model.parameters() if p.requires_grad) <= AUTO_MAX_PARAMS
        splines = all(isinstance(layer.basis, BSplineBasis) for layer in model.layers)
        return AUTO_RESTARTS if small and splines and not batched and _fresh(model) else 1
    n = _count(restarts, "restarts", 1)
    if n > 1 and any(layer.active for layer in model.symbolic):
        raise ConfigError("restarts > 1 needs a model without symbolic edges")
    return n


def _fresh(model: MultKAN) -> bool:
    """Whether ``model`` still holds the initialisation of its seed (nothing trained yet)."""
    if any(layer.active for layer in model.symbolic) or not all(
        layer.active for layer in model.layers
    ):
        return False
    ref = _initialised(model, model.seed)
    return all(
        torch.equal(getattr(a, name), getattr(b, name))
        for a, b in zip(model.layers, ref.layers)
        for name in _INIT
    )


_INIT = ("coef", "scale_base", "scale_sp")


def _initialised(model: MultKAN, seed: int) -> MultKAN:
    """A new model of ``model``'s configuration, initialised from ``seed``."""
    config = {**model_config(model), "seed": seed}
    return type(model)(**config, dtype=model.dtype, device=model.device)


def members(model: MultKAN, n: int) -> list[MultKAN]:
    """The restarts: the model as given, then ``n - 1`` fresh initialisations (derived seeds)
    that share everything else (grids, masks, node affines) with it."""
    out = [model]
    for r in range(1, n):
        fresh = _initialised(model, (model.seed + 1) * 1_000_003 + r)
        state = model.state_dict()
        state.update({k: v for k, v in fresh.state_dict().items() if k.rsplit(".", 1)[-1] in _INIT})
        fresh.load_state_dict(state)
        out.append(fresh)
    return out


def member(model: MultKAN, stack: Stack, r: int) -> MultKAN:
    """A new model of ``model``'s configuration holding restart ``r`` of ``stack``."""
    out = _initialised(model, model.seed)
    out.load_state_dict(stack.member_state(r))
    flags = dict(model.named_parameters())
    for name, p in out.named_parameters():
        p.requires_grad_(flags[name].requires_grad)
    for li in range(out.depth):
        out.symbolic[li].fn_names = list(stack.model.symbolic[li].fn_names)
    return out


def load_member(model: MultKAN, stack: Stack, r: int, state: dict | None = None) -> None:
    """Copy restart ``r`` of ``stack`` (or its saved ``state``) into ``model``, in place."""
    with torch.no_grad():
        model.load_state_dict(stack.member_state(r) if state is None else state)
    for li in range(model.depth):
        model.symbolic[li].fn_names = list(stack.model.symbolic[li].fn_names)


def _try_loss(model: MultKAN, plan: Plan) -> None:
    """Run the loss once on the initial model: a wrong target shape fails here, not mid-fit."""
    if plan.loss_fn is None:
        return
    x, y = plan.train
    with torch.no_grad():
        try:
            value = plan.loss_fn(model(x[:8]), y[:8])
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise ShapeError(
                f"loss_fn failed on the model's output {tuple(model(x[:8]).shape)} and targets "
                f"{tuple(y.shape)} ({y.dtype}): {err}"
            ) from err
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise ConfigError("loss_fn must return a scalar tensor (use reduction='mean')")
