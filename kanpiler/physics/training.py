"""Physics-informed training: fit a model so a differential residual and its conditions vanish.

In: a model (``MultKAN`` or any ``torch.nn`` module), a residual function of
:class:`Derivatives`, a :class:`Box` domain, boundary/initial :class:`Condition` s and a
schedule of :class:`Stage` s. Out: a :class:`PINNResult` with the trained model (a new object
after a grid refinement), the loss history and per-stage summaries. Stage: physics.

>>> import math, torch
>>> from kanpiler.runtime import MultKAN
>>> box = Box([0.0], [1.0], names=("x",))
>>> model = MultKAN([1, 1], grid=5, dtype=torch.float64)
>>> ends = Condition(box.boundary(2), value=lambda x: x)      # u(0) = 0, u(1) = 1
>>> res = solve(model, lambda d: d("x", "x"), box, [ends], n_points=16, sampling="mesh",
...             stages=[Stage("lbfgs", 5)])
>>> res.history[-1]["loss"] < 1e-6                               # u'' = 0: a straight line
True
>>> round(float(res.model(torch.tensor([[0.25]], dtype=torch.float64))), 3)
0.25
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, FitError, ShapeError
from .derivatives import Derivatives
from .domain import Box, resample
from .grids import update_grid
from .problem import Condition, Stage

Residual = Callable[[Derivatives], torch.Tensor]
DEFAULT_STAGES = (Stage("adam", 200, lr=1e-2), Stage("lbfgs", 50))


@dataclass
class PINNResult:
    """The outcome of :func:`solve`: ``model`` (the trained module), ``history`` (one dict per
    step: ``stage``, ``loss`` and each term), ``stages`` (per-stage summaries, with
    ``test_mse`` when test data was given), ``points`` (the last collocation points),
    ``seconds`` and ``stopped`` (``"steps"`` or ``"time_limit"``)."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    points: torch.Tensor | None = None
    seconds: float = 0.0
    stopped: str = "steps"


def solve(
    model: nn.Module,
    residual: Residual,
    domain: Box,
    conditions: Sequence[Condition] = (),
    *,
    points: torch.Tensor | None = None,
    n_points: int = 1024,
    sampling: str = "uniform",
    stages: Sequence[Stage] = DEFAULT_STAGES,
    residual_weight: float = 1.0,
    method: str = "auto",
    seed: int = 0,
    progress: bool = False,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    time_limit: float | None = None,
) -> PINNResult:
    """Train ``model`` so ``residual(d)`` vanishes at collocation points in ``domain`` and
    each condition holds; see ``docs/physics.md``.

    ``points`` (interior collocation points) default to ``n_points`` drawn by ``sampling``
    (``uniform``, ``mesh`` or ``sobol``). The loss is ``residual_weight * mean(r^2)`` plus
    ``weight * mean(c^2)`` per condition. ``time_limit`` (seconds) is an outer bound: the
    best model so far is returned. Non-finite residuals raise a ``FitError`` naming the term
    and the point, after the best parameters so far are put back into the model.
    """
    gen = torch.Generator().manual_seed(int(seed))
    dtype, device = _dtype_device(model)
    if points is None:
        points = domain.interior(n_points, sampling, gen)
    points = points.to(dtype=dtype, device=device)
    domain.check(points, "collocation points")
    conds = _prepare(conditions, domain, dtype, device)
    job = _Job(residual, conds, residual_weight, method, domain.names)
    job.probe(model, points)
    result = PINNResult(model=model, points=points)
    start = time.perf_counter()
    for index, stage in enumerate(stages):
        model, points = _prepare_stage(model, stage, job, domain, points, gen)
        result.model, result.points = model, points
        deadline = None if time_limit is None else start + time_limit
        if _run_stage(model, stage, index, job, points, result, progress, deadline):
            result.stopped = "time_limit"
        result.stages.append(_summary(model, stage, index, result, test, start))
        if result.stopped == "time_limit":
            break
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class _Job:
    residual: Residual
    conditions: list[Condition]
    residual_weight: float
    method: str
    names: tuple[str, ...]

    def probe(self, model: nn.Module, points: torch.Tensor) -> None:
        """Check shapes and values once, before any optimiser state exists (on all points:
        a residual may close over data aligned with them)."""
        with torch.no_grad():
            self.terms(model, points)

    def terms(self, model: nn.Module, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean squares of the residual and of every condition (unweighted)."""
        out = {"residual": self.residual_values(model, points).square().mean()}
        for cond in self.conditions:
            out[cond.name] = self.condition_values(model, cond).square().mean()
        return out

    def loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.residual_weight * terms["residual"]
        for cond in self.conditions:
            total = total + cond.weight * terms[cond.name]
        return total

    def residual_values(self, model: nn.Module, points: torch.Tensor) -> torch.Tensor:
        d = Derivatives(model, points, names=self.names, method=self.method)
        return _checked(self.residual(d), points, "residual")

    def condition_values(self, model: nn.Module, cond: Condition) -> torch.Tensor:
        if cond.residual is not None:
            d = Derivatives(model, cond.points, names=self.names, method=self.method)
            return _checked(cond.residual(d), cond.points, cond.name)
        u = model(cond.points)
        target = cond.target(cond.points)
        if target.shape[0] != u.shape[0] or target.shape[1] not in (1, u.shape[1]):
            raise ShapeError(
                f"condition {cond.name!r}: value has shape {tuple(target.shape)}, "
                f"the model gives {tuple(u.shape)} at its {len(cond.points)} points"
            )
        return _checked(u - target, cond.points, cond.name)


def _checked(r: torch.Tensor, points: torch.Tensor, name: str) -> torch.Tensor:
    """The residual as ``(N, m)``; a ``ShapeError`` for a wrong shape, a ``FitError`` naming
    the first point where it is NaN or infinite."""
    if not isinstance(r, torch.Tensor) or r.dim() not in (1, 2) or r.shape[0] != len(points):
        got = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
        raise ShapeError(
            f"the {name} function returned {got} for {len(points)} points; "
            f"return a tensor of shape ({len(points)},) or ({len(points)}, m)"
        )
    r = r.reshape(len(points), -1)
    finite = torch.isfinite(r).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise FitError(
            f"the {name} term is {r[i].tolist()} at point {i} = {points[i].tolist()} "
            f"({int((~finite).sum())} of {len(points)} points not finite); "
            "the step was rejected and the best parameters so far were kept"
        )
    return r


def _dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(iter(model.parameters()), None)
    if p is None:
        raise ShapeError(f"{type(model).__name__} has no parameters to train")
    return p.dtype, p.device


def _prepare(conditions, domain: Box, dtype, device) -> list[Condition]:
    seen: dict[str, int] = {}
    out = []
    for cond in conditions:
        if not isinstance(cond, Condition):
            raise ConfigError(f"conditions must be Condition objects, got {type(cond).__name__}")
        pts = cond.points.to(dtype=dtype, device=device)
        domain.check(pts, f"condition {cond.name!r}")
        n = seen.get(cond.name, 0)
        seen[cond.name] = n + 1
        name = cond.name if n == 0 else f"{cond.name}{n + 1}"
        out.append(Condition(pts, cond.value, cond.residual, float(cond.weight), name))
    return out


def _is_kan(model: nn.Module) -> bool:
    return hasattr(model, "refine") and hasattr(model, "update_grid")


def _prepare_stage(model, stage: Stage, job: _Job, domain: Box, points, gen):
    """Grid refinement / update and resampling before a stage (each if asked for)."""
    if (stage.grid is not None or stage.update_grid) and not _is_kan(model):
        raise ConfigError(f"grid options need a MultKAN, not {type(model).__name__}")
    fit_points = torch.cat([points, *(c.points for c in job.conditions)])
    if stage.update_grid:  # knots to the current activations, then the finer grid on them
        update_grid(model, fit_points, stage.margin)
    if stage.grid is not None and stage.grid != model.grid:
        model = model.refine(stage.grid, fit_points)
    if stage.resample:
        pool = domain.interior(4 * len(points), "uniform", gen).to(points)
        score = job.residual_values(model, pool).detach()
        points = resample(pool, score, len(points), gen)
    return model, points


def _optimizer(model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if stage.optimizer == "adam":
        return torch.optim.Adam(params, lr=stage.learning_rate)
    return torch.optim.LBFGS(
        params, lr=stage.learning_rate, max_iter=stage.inner, history_size=50,
        line_search_fn="strong_wolfe", tolerance_grad=1e-30, tolerance_change=1e-30,
    )  # fmt: skip


def _run_stage(model, stage, index, job, points, result, progress, deadline) -> bool:
    """Steps of one stage; True when the time limit cut it short. Every loss evaluation that
    improves on the best so far snapshots the parameters that gave it; they are restored at
    the end of the stage (and before an error leaves it)."""
    opt = _optimizer(model, stage)
    best: dict[str, Any] = {"loss": math.inf, "state": None}
    step_best: dict[str, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad()
        terms = job.terms(model, points)
        loss = job.loss(terms)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FitError(f"stage {index} ({stage.optimizer}): the loss became {value}")
        if value < step_best.get("loss", math.inf):
            step_best.clear()
            step_best.update({k: float(v.detach()) for k, v in terms.items()}, loss=value)
        if value < best["loss"]:
            best.update(loss=value, state=_state(model))
        loss.backward()
        return loss

    bar = _bar(stage, index, progress)
    timed_out = False
    try:
        for _ in range(stage.steps):
            step_best.clear()
            opt.step(closure)  # type: ignore[arg-type]
            result.history.append({"stage": index, **step_best})
            if bar is not None:
                bar.set_postfix({k: f"{v:.2e}" for k, v in step_best.items()}, refresh=False)
                bar.update()
            if deadline is not None and time.perf_counter() > deadline:
                timed_out = True
                break
    finally:
        if bar is not None:
            bar.close()
        if best["state"] is not None:
            _restore(model, best["state"])
    return timed_out


def _bar(stage: Stage, index: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=stage.steps, desc=f"stage {index} {stage.optimizer}", leave=True)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _restore(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        model.load_state_dict(state)


def n_params(model: Any) -> int:
    """Trainable parameters that shape the function: for a KAN, ``n_basis + 2`` per active
    numeric edge (coefficients, ``w_b``, ``w_s``) and 4 per active symbolic edge, plus any
    trainable node affines; for other modules every trainable parameter."""
    if not _is_kan(model):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    count = 0
    for num, sym in zip(model.layers, model.symbolic):
        count += int((num.mask != 0).sum()) * (num.basis.n_basis + 2)
        count += int((sym.mask != 0).sum()) * 4
    affines = (model.node_scale, model.node_bias, model.subnode_scale, model.subnode_bias)
    return count + sum(p.numel() for group in affines for p in group if p.requires_grad)


def _summary(model, stage: Stage, index: int, result: PINNResult, test, start) -> dict[str, Any]:
    rows = [h for h in result.history if h["stage"] == index]
    out: dict[str, Any] = {"stage": index, "optimizer": stage.optimizer, "steps": len(rows)}
    out["grid"] = getattr(model, "grid", None) if _is_kan(model) else None
    out["params"] = n_params(model)
    out.update({k: v for k, v in (min(rows, key=lambda r: r["loss"]) if rows else {}).items()})
    out["seconds"] = time.perf_counter() - start
    if test is not None:
        dtype, device = _dtype_device(model)
        x, u = (t.to(dtype=dtype, device=device) for t in test)
        with torch.no_grad():
            out["test_mse"] = float((model(x) - u.reshape(len(x), -1)).square().mean())
    return out
