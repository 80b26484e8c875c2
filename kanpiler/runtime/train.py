"""Training MultKAN models: batched restarts, quasi-Newton or Adam, penalties, grid updates.

In: a model and data, as ``(x, y)`` tensors, pykan's dataset dict, or a ``DataLoader`` (any
iterable) of ``(x, y)`` batches. Out: the trained model
(in place) and a history per step. Stage: runtime. Several initialisations (``restarts``)
train as one stacked model and the best on validation data is kept; a fit whose loss stops
moving far above the data's noise level warns once and says so in the history. Every input
and option is checked before anything changes; a failed fit leaves the model as it was.
Deterministic for a given ``seed``; no global RNG is touched, nothing is written to disk.

>>> import torch
>>> from kanpiler.runtime import MultKAN, fit
>>> model = MultKAN([1, 1], grid=5, dtype=torch.float64)
>>> x = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(-1, 1)
>>> history = fit(model, x, x**2, steps=5, progress=False)
>>> history["train_rmse"][-1] < 1e-2
True
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..numerics import loss_scale, make_lbfgs
from . import distributed, fitcheck
from .objective import LossFn, Objective, losses, penalty
from .optimizers import BatchedAdam, BatchedBFGS
from .stack import Stack
from .structure import Record

if TYPE_CHECKING:
    from .multkan import MultKAN

History = dict[str, list]
ITERATIONS_PER_STEP = 20  # evaluations per LBFGS step, as torch's and pykan's max_iter
DENSE_LIMIT = 16_000_000  # restarts * params**2 up to which the inverse Hessian is kept dense
STALL_FACTOR = 3.0  # a plateau above this many times the noise level is a stall
GRID_SAMPLES = 4096  # rows (over all ranks) a grid update reads from a loader, at most


class StallWarning(UserWarning):
    """Training stopped improving while the error is far above the data's noise level."""


def fit(
    model: MultKAN,
    x: Any,
    y: Any = None,
    *,
    steps: int = 100,
    opt: str = "LBFGS",
    lr: float = 1.0,
    batch: int = -1,
    lamb: float = 0.0,
    lamb_l1: float = 1.0,
    lamb_entropy: float = 2.0,
    lamb_coef: float = 0.0,
    lamb_coefdiff: float = 0.0,
    update_grid: bool = True,
    grid_update_num: int = 10,
    start_grid_update_step: int = -1,
    stop_grid_update_step: int = 50,
    x_test: Any = None,
    y_test: Any = None,
    early_stopping: bool | int = False,
    loss_fn: LossFn | None = None,
    metrics: Mapping[str, Callable] | Sequence[Callable] | None = None,
    restarts: int | str = "auto",
    warmup: int | str = "auto",
    seed: int = 0,
    progress: bool = True,
    log: Callable[[int, dict[str, float]], Any] | None = None,
    threads: int | None = None,
    stall_window: int | None = None,
    history_size: int | None = None,
) -> History:
    """Train ``model`` in place; return the history of the kept restart, one entry per step.

    Data: ``fit(model, x, y)`` or ``fit(model, dataset)`` with pykan's dict (``train_input``,
    ``train_label``, optional ``test_input``/``test_label``), or ``fit(model, loader)`` with
    a ``DataLoader`` or any iterable of ``(x, y)`` batches (data larger than memory): every
    step trains on the next batch (LBFGS: all evaluations of a step on that one batch), a
    re-iterable loader is passed over again and again, a generator ends the fit when it
    ends; grids are updated from the step's batch and the next of its pass (up to
    ``GRID_SAMPLES`` rows); ``train_loss`` is the loss on the step's batch. ``x_test`` may be
    a re-iterable loader too (a full pass per step). Under torchrun each rank reads its own
    loader (use a ``DistributedSampler``). History keys: ``train_loss``,
    ``test_loss``, ``reg`` and, with the default squared loss, ``train_rmse``/``test_rmse``;
    one list per ``metrics`` entry (``metric(pred, target)`` on the test data if given, else
    the training data); ``warnings`` (messages) and ``restart`` (the index kept).

    ``opt="LBFGS"`` makes 20 quasi-Newton evaluations per step (as pykan's LBFGS); ``"Adam"``
    one step of size ``lr``. ``restarts=N`` trains N initialisations at once (the model as
    given, then N - 1 fresh ones with derived seeds), keeps the best quarter after the first
    steps and in the end the best on the test data (the training loss without it);
    ``"auto"`` is 8 for a freshly built small B-spline model on full batches, else 1.
    ``warmup`` Adam iterations (``"auto"``: 100 for a fresh model and LBFGS, else 0) come
    before the first quasi-Newton step. ``lamb > 0`` adds pykan's regulariser
    (``lamb_l1``, ``lamb_entropy``, ``lamb_coef``, ``lamb_coefdiff``). Grids follow the data
    every ``stop_grid_update_step // grid_update_num`` steps before ``stop_grid_update_step``.
    ``early_stopping`` (True = 20 steps, or a patience) keeps the weights of the best test
    loss. ``loss_fn(pred, target)`` gets the targets exactly as given (e.g. integer labels
    for cross-entropy). ``threads`` sets torch's CPU threads for the call. ``stall_window``
    (default 5 LBFGS / 100 Adam steps) is the plateau length that warns. ``history_size`` is
    the memory of torch's L-BFGS, used instead of BFGS for models too large for it.
    """
    plan = fitcheck.check(
        model, x, y, x_test, y_test, steps=steps, opt=opt, lr=lr, batch=batch,
        penalty=(lamb, lamb_l1, lamb_entropy, lamb_coef, lamb_coefdiff),
        grid=(update_grid, grid_update_num, start_grid_update_step, stop_grid_update_step),
        early_stopping=early_stopping, loss_fn=loss_fn, metrics=metrics, restarts=restarts,
        warmup=warmup, seed=seed, threads=threads, stall_window=stall_window,
        history_size=history_size,
    )  # fmt: skip
    plan = _sharded(plan)
    old_threads = torch.get_num_threads()
    if plan.threads:
        torch.set_num_threads(plan.threads)
    try:
        run = _Run(model, plan)
        run.train(progress, log)
        return run.finish()
    finally:
        torch.set_num_threads(old_threads)


def _sharded(plan: fitcheck.Plan) -> fitcheck.Plan:
    """Under ``torch.distributed`` (torchrun): this rank's rows of the training and test data
    (see :mod:`.distributed`); the plan itself with one process. Loaders are not sharded:
    each rank reads its own (e.g. through a ``DistributedSampler``)."""
    if not distributed.active():
        return plan
    x, y = distributed.shard(*plan.train) if plan.stream is None else plan.train
    test = None
    if plan.test is not None:
        x_test, y_test = distributed.shard(*plan.test)
        test = (x_test, y_test)
    return dataclasses.replace(plan, train=(x, y), test=test)


class _Run:
    """One ``fit`` call: the stack of restarts, the optimiser, the schedule and the records.

    ``rows`` hold one ``(R,)`` tensor per step (losses of every restart still trained);
    ``best`` the best validation loss per restart, ``best_state`` its weights (early
    stopping only), ``kept`` the original index of each restart still trained.
    """

    def __init__(self, model: MultKAN, plan: fitcheck.Plan) -> None:
        self.model, self.plan = model, plan
        self.stack = Stack(fitcheck.members(model, plan.restarts))
        distributed.broadcast_module(self.stack.model)  # every rank starts from rank 0's
        self.objective = Objective(self.stack, plan.penalty, plan.loss_fn)
        self.optimizer = self._optimizer()
        self.gen = torch.Generator().manual_seed(plan.seed)
        self.theta = self.stack.theta()
        self.rows: dict[str, list[torch.Tensor]] = {"train": [], "test": [], "reg": []}
        self.rows.update({name: [] for name in plan.metrics})
        opts: dict[str, Any] = {"dtype": model.dtype, "device": model.device}
        self.best = torch.full((plan.restarts,), math.inf, **opts)
        self.best_state: list[dict[str, torch.Tensor] | None] = [None] * plan.restarts
        self.best_step = 0  # the last step that improved the best validation loss of all
        self.kept = list(range(plan.restarts))
        self.batch: tuple[torch.Tensor, Any] = plan.train
        self.warnings: list[str] = []

    def _optimizer(self) -> Any:
        plan, n_params = self.plan, self.stack.index.shape[1]
        opts: dict[str, Any] = {"dtype": self.model.dtype, "device": self.model.device}
        if plan.opt == "Adam":
            return BatchedAdam(plan.restarts, n_params, plan.lr, **opts)
        if plan.restarts * n_params**2 <= DENSE_LIMIT:
            return BatchedBFGS(plan.restarts, n_params, **opts)
        return _TorchLBFGS(self.stack, self.objective, plan.history_size)

    # --- the loop -------------------------------------------------------------------------------

    def train(self, progress: bool, log: Callable | None) -> None:
        from tqdm.auto import tqdm  # lazy: tqdm.auto probes for notebooks on import

        plan = self.plan
        quiet = not progress or not distributed.is_main()  # one bar, on rank 0
        bar = tqdm(range(plan.steps), disable=quiet, desc="fit", leave=False)
        refresh = max(1, plan.steps // 20)  # the bar's loss is read (a host sync) this often
        for step in bar:
            if not self._prepare(step):
                break  # a one-shot stream of batches (a generator) has ended
            self._optimise()
            self._record(step)
            if not quiet and (step % refresh == 0 or step + 1 == plan.steps):
                bar.set_postfix_str(f"train {self._entry(self._leader(), -1)['train_loss']:.2e}")
            if log is not None:
                log(step, self._entry(self._leader(), -1))
            if step + 1 == plan.cut_step and self.stack.n > plan.keep and self._cuttable():
                self._cut()
            self._check_stall(step)
            if plan.patience and step - self.best_step >= plan.patience:
                break

    def _prepare(self, step: int) -> bool:
        """Pick the batch, warm up, update grids when scheduled, and tell the optimiser;
        ``False`` when a one-shot stream of batches has ended (on any rank)."""
        plan, (x, y) = self.plan, self.plan.train
        n = x.shape[0]
        changed = plan.batch < n or step == 0
        if plan.stream is not None:  # a loader: its next batch (the same tensors: no change)
            batch = plan.stream.next()
            if not distributed.every(batch is not None, self.model.device):
                return False
            assert batch is not None
            x, y = batch
            changed = step == 0 or x is not self.batch[0] or y is not self.batch[1]
        elif plan.batch < n:
            ids = torch.randperm(n, generator=self.gen)[: plan.batch].to(x.device)
            x, y = x[ids], y[ids]
        self.batch = (x, y)
        self.objective.set_batch(x, y)
        if step == 0 and plan.warmup:
            adam = BatchedAdam(self.stack.n, self.theta.shape[1], plan.warmup_lr,
                               dtype=self.theta.dtype, device=self.theta.device)  # fmt: skip
            self.theta = adam.run(self.theta, self.objective, plan.warmup)
        update, every, start, stop = plan.grid
        if update and self.model.has_grid and start <= step < stop and step % every == 0:
            self.stack.set_theta(self.theta)
            sample = x
            if plan.stream is not None:  # this batch and the next of its pass, up to a bound
                sample = plan.stream.sample(x, GRID_SAMPLES // distributed.world_size())
            self.stack.model.update_grid(distributed.gather_rows(self.stack.inputs(sample)))
            self.theta = self.stack.theta()
            changed = True
        if changed:
            self.optimizer.forget()
        return True

    def _optimise(self) -> None:
        before = self.theta
        iterations = ITERATIONS_PER_STEP if self.plan.opt == "LBFGS" else 1
        self.theta = self.optimizer.run(self.theta, self.objective, iterations)
        bad = ~torch.isfinite(self.theta).all(dim=1)
        self.theta = torch.where(bad.unsqueeze(1), before, self.theta)
        self.stack.set_theta(self.theta)

    def _leader(self) -> int:
        """The restart of best validation loss so far (a host sync)."""
        return int(torch.argmin(self.best))

    def _record(self, step: int) -> None:
        """Losses of every restart on the full data (the step's batch from a loader), on all
        of the test data, kept as tensors (no host sync unless early stopping needs one); the
        best per restart so far."""
        plan, stack = self.plan, self.stack
        scored = self._scored()
        with torch.no_grad():
            train_pred = self.objective.predict(scored[0])
            train = losses(train_pred, scored[1], plan.loss_fn)
            train = distributed.weighted_mean(train, scored[0].shape[0])
            reg = self._penalty()
            if plan.test_stream is not None:
                test, values = self._test_pass(plan.test_stream)
            else:
                data, pred, test = scored, train_pred, train
                if plan.test is not None:
                    data, pred = plan.test, self.objective.predict(plan.test[0])
                    test = losses(pred, plan.test[1], plan.loss_fn)
                    test = distributed.weighted_mean(test, plan.test[0].shape[0])
                values = {name: _metric(f, pred, data[1]) for name, f in plan.metrics.items()}
        self.rows["train"].append(train)
        self.rows["test"].append(test)
        self.rows["reg"].append(reg)
        for name, row in values.items():
            self.rows[name].append(row)
        score = torch.nan_to_num(test, nan=math.inf)
        better = score < self.best
        if plan.patience:
            for r in torch.nonzero(better).flatten().tolist():
                self.best_state[r] = stack.member_state(r)
            if step == 0 or bool(score.min() < self.best.min()):
                self.best_step = step
        self.best = torch.where(better, score, self.best)

    def _scored(self) -> tuple[torch.Tensor, Any]:
        """The training data the history reports on: all of it, or the step's batch from a
        loader (the data as a whole need not fit in memory)."""
        return self.plan.train if self.plan.stream is None else self.batch

    def _test_pass(self, stream: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Test losses ``(R,)`` and metrics over one pass of a test loader: batch values
        weighted by their rows (over every rank's batches under torchrun)."""
        plan, stack = self.plan, self.stack
        total, count = 0.0, 0
        sums: dict[str, torch.Tensor] = {}
        for x, y in stream.one_pass():
            pred = stack.forward(x)
            total = total + losses(pred, y, plan.loss_fn) * x.shape[0]
            for name, f in plan.metrics.items():
                sums[name] = sums.get(name, 0.0) + _metric(f, pred, y) * x.shape[0]
            count += x.shape[0]
        if count == 0:
            raise ConfigError("the test data yields no batches")
        test = distributed.weighted_mean(torch.as_tensor(total) / count, count)
        return test, {name: value / count for name, value in sums.items()}

    def _penalty(self) -> torch.Tensor:
        pen, stack = self.plan.penalty, self.stack
        if not pen.active:
            return torch.zeros(stack.n, dtype=self.model.dtype, device=self.model.device)
        _, record = stack.model.run(stack.inputs(self._scored()[0]), record=True)
        return penalty(stack, record, pen) if record is not None else torch.zeros(stack.n)

    def _entry(self, r: int, i: int) -> dict[str, float]:
        """The history entry of restart ``r`` (current index) at recorded step ``i``."""
        has_test = self.plan.has_test
        entry = {name: float(rows[i][r]) for name, rows in self.rows.items()}
        entry["train_loss"], entry["test_loss"] = entry.pop("train"), entry.pop("test")
        if not has_test:
            entry["test_loss"] = math.nan
        if self.plan.loss_fn is None:
            entry["train_rmse"] = math.sqrt(max(entry["train_loss"], 0.0))
            entry["test_rmse"] = math.sqrt(max(entry["test_loss"], 0.0)) if has_test else math.nan
        return entry

    def _cuttable(self) -> bool:
        return not isinstance(self.optimizer, _TorchLBFGS)

    def _cut(self) -> None:
        """Go on with the ``plan.keep`` restarts of best validation loss so far: the ones
        stuck in a plateau show it within the first steps."""
        idx = torch.argsort(self.best)[: self.plan.keep].sort().values
        keep = idx.tolist()
        self.stack.set_theta(self.theta)
        members = [fitcheck.member(self.model, self.stack, r) for r in keep]
        self.stack = Stack(members)
        self.objective = Objective(self.stack, self.plan.penalty, self.plan.loss_fn)
        self.objective.set_batch(*self.batch)
        self.theta = self.stack.theta()
        self.optimizer.select(idx)
        self.rows = {k: [row[idx] for row in v] for k, v in self.rows.items()}
        self.best = self.best[idx]
        self.best_state = [self.best_state[r] for r in keep]
        self.kept = [self.kept[r] for r in keep]

    # --- stalls ---------------------------------------------------------------------------------

    def _check_stall(self, step: int) -> None:
        """Warn once when the best training loss so far has improved by less than a relative
        1e-3 over the last ``stall_window`` steps while far above the noise level."""
        window, rows = self.plan.stall_window, self.rows["train"]
        if self.warnings or len(rows) <= window:
            return
        best = torch.stack([row.min() for row in rows])  # best restart per step
        now, then = float(best.min()), float(best[: len(rows) - window].min())
        if not (math.isfinite(now) and then - now < 1e-3 * abs(then)):
            return
        level, floor = self._levels(now)
        if level <= floor:
            return
        hint = "more restarts (restarts=16)" if self.stack.n > 1 else "fit(..., restarts=8)"
        msg = (
            f"training stalled at step {step}: the training {self.plan.loss_name} "
            f"({level:.3g}) improved by less than 0.1% in {window} steps, far above the "
            f"data's noise level ({floor / STALL_FACTOR:.2g}). Try {hint}, another seed "
            "(MultKAN(..., seed=1)) or a wider hidden layer."
        )
        self.warnings.append(msg)
        warnings.warn(msg, StallWarning, stacklevel=4)

    def _levels(self, loss: float) -> tuple[float, float]:
        """The loss in its reported unit and the level above which a plateau is a stall."""
        if self.plan.loss_fn is None:
            return math.sqrt(max(loss, 0.0)), STALL_FACTOR * self.plan.noise_level()
        return loss, STALL_FACTOR * 1e-2 * float(self.rows["train"][0].min())

    # --- the end --------------------------------------------------------------------------------

    def finish(self) -> History:
        """Load the kept restart into the model and return its history."""
        if not self.rows["train"]:  # steps=0: nothing trained, nothing changed
            return {"train_loss": [], "test_loss": [], "reg": [], "warnings": [], "restart": []}
        if self.plan.patience:
            r = int(torch.argmin(self.best))
            state = self.best_state[r]
        else:
            r = int(torch.argmin(torch.nan_to_num(self.rows["test"][-1], nan=math.inf)))
            state = None
        fitcheck.load_member(self.model, self.stack, r, state)
        history: History = {}
        for i in range(len(self.rows["train"])):
            for key, value in self._entry(r, i).items():
                history.setdefault(key, []).append(value)
        history["warnings"] = list(self.warnings)
        history["restart"] = [self.kept[r]]
        return history


class _TorchLBFGS:
    """torch's L-BFGS on the summed restart losses, for models too large for a dense Hessian
    estimate; the loss is scaled to about 1 (:func:`kanpiler.numerics.loss_scale`)."""

    def __init__(self, stack: Stack, objective: Objective, history_size: int) -> None:
        self.stack, self.objective = stack, objective
        self.opt = make_lbfgs(stack.params, lr=1.0, history_size=history_size)
        self.scale = 0.0

    def forget(self, curvature: bool = False) -> None:
        self.scale = 0.0

    def select(self, idx: torch.Tensor) -> None:
        raise NotImplementedError("restarts are not cut with torch's L-BFGS")

    def run(self, theta: torch.Tensor, evaluate: Callable, iterations: int) -> torch.Tensor:
        stack, objective = self.stack, self.objective
        stack.set_theta(theta)
        if not self.scale:
            with torch.no_grad():
                data = objective.values()[0]
                data = distributed.weighted_mean(data, objective.inputs.shape[0])
                self.scale = loss_scale(float(data.sum()))

        def closure() -> torch.Tensor:
            stack.grad_flat.zero_()
            data, reg = objective.values()
            total = (data + objective.pen.lamb * reg if objective.pen.active else data).sum()
            (total * self.scale).backward()
            # under torch.distributed: the loss and gradient of the whole batch
            n = objective.inputs.shape[0]
            loss = distributed.average_gradients(stack.params, n, (total * self.scale).detach())
            assert loss is not None  # a loss was passed
            return loss

        self.opt.step(closure)
        return stack.theta()


def _metric(metric: Callable, pred: torch.Tensor, target: Any) -> torch.Tensor:
    """``(R,)`` float64: ``metric(pred_r, target)`` of every restart ``r``."""
    values = [float(metric(pred[:, r], target)) for r in range(pred.shape[1])]
    return torch.tensor(values, dtype=torch.float64)


def rmse(model: MultKAN, x: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error of ``model`` on ``(x, y)``."""
    with torch.no_grad():
        return float(torch.sqrt(torch.mean((model(x) - y) ** 2)))


def regularization(
    model: MultKAN, record: Record, lamb_l1: float = 1.0, lamb_entropy: float = 2.0
) -> torch.Tensor:
    """The KAN paper's penalty of one model: L1 of edge magnitudes plus the entropy of their
    shares. An edge's magnitude is the std of its numeric activation over the batch divided by
    the std of its input (+0.1), as in pykan's ``edge_forward_spline_n``."""
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
