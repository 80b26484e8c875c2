"""Training MultKAN models: LBFGS or Adam, mini-batches, KAN regularisation, grid updates.

In: a model and data ``x (N, n_in)``, ``y (N, n_out)``. Out: the trained model (in place) and
a history of train/test RMSE and regularisation per step. Stage: runtime. Deterministic for a
given ``seed`` (a private ``torch.Generator`` picks mini-batches); no global RNG is touched and
nothing is written to disk.

>>> import torch
>>> from kanpiler.runtime import MultKAN, fit
>>> model = MultKAN([1, 1], grid=5, dtype=torch.float64)
>>> x = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(-1, 1)
>>> history = fit(model, x, x**2, steps=5, progress=False)
>>> history["train_rmse"][-1] < 1e-2
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError, FitError, ShapeError
from ..numerics import loss_scale, make_lbfgs
from .structure import Record

if TYPE_CHECKING:
    from .multkan import MultKAN

History = dict[str, list[float]]


def regularization(
    model: MultKAN, record: Record, lamb_l1: float = 1.0, lamb_entropy: float = 2.0
) -> torch.Tensor:
    """The KAN paper's penalty: L1 of edge magnitudes plus the entropy of their shares.

    An edge's magnitude is the std of its numeric activation over the batch divided by the std
    of its input (+0.1), as in pykan's ``edge_forward_spline_n``.
    """
    total = torch.zeros((), dtype=model.dtype, device=model.device)
    for acts, edge in zip(record.acts, record.spline_acts):
        if edge.shape[0] < 2:
            continue
        scale = edge.std(dim=0) / (acts.std(dim=0).unsqueeze(1) + 0.1)  # (in, out)
        share_in = scale / (scale.sum(dim=0, keepdim=True) + 1)
        share_out = scale / (scale.sum(dim=1, keepdim=True) + 1)
        ent_in = -(share_in * torch.log2(share_in + 1e-4)).sum(dim=0).mean()
        ent_out = -(share_out * torch.log2(share_out + 1e-4)).sum(dim=1).mean()
        total = total + lamb_l1 * scale.sum() + lamb_entropy * (ent_in + ent_out)
    return total


def _check_data(model: MultKAN, x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    model.check_input(x)
    if y.dim() != 2 or y.shape != (x.shape[0], model.n_outputs):
        raise ShapeError(
            f"{what}: targets must be ({x.shape[0]}, {model.n_outputs}), got {tuple(y.shape)}"
        )
    if y.dtype != x.dtype or y.device != x.device:
        raise ShapeError(
            f"{what}: targets are {y.dtype} on {y.device}, inputs {x.dtype} on {x.device}"
        )


def _check_options(steps: int, lr: float, threads: int | None) -> None:
    if not (isinstance(steps, numbers.Integral) and steps >= 0):
        raise ConfigError(f"steps must be an int >= 0, got {steps!r}")
    if not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr!r}")
    if threads is not None and not (isinstance(threads, numbers.Integral) and threads >= 1):
        raise ConfigError(f"threads must be an int >= 1 (or None), got {threads!r}")


def _optimizer(name: str, params: list, lr: float, history: int | None) -> torch.optim.Optimizer:
    if name == "LBFGS":
        if history is None:  # a long memory is cheap for small models and converges much faster
            history = 100 if sum(p.numel() for p in params) <= 100_000 else 10
        if history < 1:
            raise ConfigError(f"history_size must be >= 1, got {history}")
        return make_lbfgs(params, lr=lr, history_size=history)
    if name == "Adam":
        return torch.optim.Adam(params, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}; use 'LBFGS' or 'Adam'")


def fit(
    model: MultKAN,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    opt: str = "LBFGS",
    lr: float = 1.0,
    batch: int = -1,
    lamb: float = 0.0,
    lamb_l1: float = 1.0,
    lamb_entropy: float = 2.0,
    update_grid: bool = True,
    grid_update_num: int = 10,
    start_grid_update_step: int = -1,
    stop_grid_update_step: int = 50,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    early_stopping: bool | int = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[int, dict[str, float]], Any] | None = None,
    threads: int | None = None,
    history_size: int | None = None,
) -> History:
    """Train ``model`` in place; return ``{"train_rmse", "test_rmse", "reg"}`` per step.

    ``batch=-1`` uses all samples. ``lamb > 0`` adds ``lamb * regularization``. Grids are
    updated from the current batch every ``stop_grid_update_step // grid_update_num`` steps
    before ``stop_grid_update_step``. ``early_stopping`` (True = 20 steps, or an int patience)
    stops when the test RMSE has not improved for that many steps and restores the best
    weights. ``log(step, record)`` is called after every step. ``threads`` sets torch's CPU
    thread count for the call (restored after): small models train fastest on one thread.
    ``history_size`` is LBFGS's memory (default: 100 pairs for models of up to 100,000
    trainable parameters, else 10); a long memory reaches a given loss in far fewer steps.
    """
    _check_options(steps, lr, threads)
    _check_data(model, x, y, "training data")
    has_test = x_test is not None and y_test is not None
    if x_test is not None and y_test is not None:
        _check_data(model, x_test, y_test, "test data")
    patience = (20 if early_stopping is True else int(early_stopping)) if early_stopping else 0
    if patience and not has_test:
        raise ConfigError("early_stopping needs x_test and y_test")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise FitError("the model has no trainable parameters (every requires_grad is False)")
    run = _Run(
        model=model, optimizer=_optimizer(opt, params, lr, history_size), opt=opt,
        loss_fn=loss_fn or (lambda pred, target: torch.mean((pred - target) ** 2)),
        lamb=(lamb, lamb_l1, lamb_entropy), patience=patience, log=log,
        data=(x, y, x_test, y_test), gen=torch.Generator().manual_seed(int(seed)),
        size=x.shape[0] if batch <= 0 or batch > x.shape[0] else int(batch),
        grid=(update_grid, start_grid_update_step, stop_grid_update_step,
              max(1, int(stop_grid_update_step / max(grid_update_num, 1)))),
    )  # fmt: skip
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for notebooks on import

    bar = tqdm(range(steps), disable=not progress, desc="fit", leave=False)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        for step in bar:
            record = run.step(step)
            if progress:
                bar.set_postfix_str(
                    f"train {record['train_rmse']:.2e} test {record['test_rmse']:.2e}"
                )
            if run.should_stop(step, record):
                break
    finally:
        torch.set_num_threads(old_threads)
    run.finish()
    return run.history


@dataclass
class _Run:
    """The state of one ``fit`` call: optimizer, data, schedule, history, best weights."""

    model: MultKAN
    optimizer: torch.optim.Optimizer
    opt: str
    loss_fn: Callable
    lamb: tuple[float, float, float]
    patience: int
    log: Callable | None
    data: tuple
    gen: torch.Generator
    size: int
    grid: tuple[bool, int, int, int]
    scale: float = 0.0
    best: tuple = (math.inf, None, -1)
    history: History = field(default_factory=lambda: {"train_rmse": [], "test_rmse": [], "reg": []})

    def step(self, step: int) -> dict[str, float]:
        x, y, x_test, y_test = self.data
        n = x.shape[0]
        ids = (
            torch.randperm(n, generator=self.gen)[: self.size].to(x.device)
            if self.size < n
            else None
        )
        xb, yb = (x, y) if ids is None else (x[ids], y[ids])
        update, start, stop, freq = self.grid
        if update and self.model.has_grid and start <= step < stop and step % freq == 0:
            self.model.update_grid(xb)
        closure = _Closure(self.model, self.optimizer, self.loss_fn, xb, yb, *self.lamb)
        if self.opt == "LBFGS":
            self.scale = self.scale or _lbfgs_scale(closure)
            closure.scale = self.scale
        loss = self.optimizer.step(closure)  # type: ignore[arg-type]  # returns a tensor
        if loss is not None and not bool(torch.isfinite(torch.as_tensor(loss))):
            raise FitError(f"training diverged at step {step}: the loss is {float(loss)}")
        record = _evaluate(self.model, x, y, x_test, y_test)
        record["reg"] = closure.reg
        for key in self.history:
            self.history[key].append(record[key])
        if self.log is not None:
            self.log(step, record)
        return record

    def should_stop(self, step: int, record: dict[str, float]) -> bool:
        if not self.patience:
            return False
        if record["test_rmse"] < self.best[0]:
            self.best = (record["test_rmse"], _snapshot(self.model), step)
            return False
        return step - self.best[2] >= self.patience

    def finish(self) -> None:
        if self.patience and self.best[1] is not None:
            self.model.load_state_dict(self.best[1])


class _Closure:
    """The loss of one batch (what LBFGS re-evaluates); remembers the last penalty."""

    def __init__(self, model, optimizer, loss_fn, xb, yb, lamb, lamb_l1, lamb_entropy) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.xb, self.yb = xb, yb
        self.lamb, self.lamb_l1, self.lamb_entropy = lamb, lamb_l1, lamb_entropy
        self.reg = 0.0
        self.scale = 1.0

    def __call__(self) -> torch.Tensor:
        self.optimizer.zero_grad()
        pred, rec = self.model.run(self.xb, record=self.lamb > 0)
        loss = self.loss_fn(pred, self.yb)
        if self.lamb > 0:
            reg = regularization(self.model, rec, self.lamb_l1, self.lamb_entropy)
            self.reg = float(reg.detach())
            loss = loss + self.lamb * reg
        loss = loss * self.scale
        loss.backward()
        return loss


def _lbfgs_scale(closure: _Closure) -> float:
    """:func:`kanpiler.numerics.loss_scale` of the initial loss (an RMSE of 1e-4 would stall
    unscaled LBFGS, e.g. after a grid extension)."""
    with torch.no_grad():
        pred, rec = closure.model.run(closure.xb, record=closure.lamb > 0)
        loss = closure.loss_fn(pred, closure.yb)
        if closure.lamb > 0:
            loss = loss + closure.lamb * regularization(
                closure.model, rec, closure.lamb_l1, closure.lamb_entropy
            )
    return loss_scale(float(loss))


def _snapshot(model: MultKAN) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rmse(model: MultKAN, x: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error of ``model`` on ``(x, y)``."""
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def _evaluate(model, x, y, x_test, y_test) -> dict[str, float]:
    train = rmse(model, x, y)
    test = rmse(model, x_test, y_test) if x_test is not None and y_test is not None else math.nan
    return {"train_rmse": train, "test_rmse": test}
