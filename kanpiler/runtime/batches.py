"""Training and test data as a stream of ``(x, y)`` batches: a ``DataLoader`` or any iterable.

In: a source of batches (a ``torch.utils.data.DataLoader``, a list of pairs, a generator) and a
check that validates one batch and puts it on the model's device. Out: :class:`BatchStream`,
which hands ``fit`` one checked batch at a time, passes over a re-iterable source again and
again (telling a ``DistributedSampler`` the epoch), ends with a one-shot source (a generator),
and can look ahead within the current pass for a grid-update sample without changing the order
in which batches are trained on. Stage: runtime (training). Nothing is read before it is asked
for, so the data need never be in memory at once.

>>> import torch
>>> pairs = [(torch.full((2, 1), float(i)), torch.zeros(2, 1)) for i in range(3)]
>>> stream = BatchStream(pairs, lambda item, i: (item[0], item[1]), "training")
>>> [float(stream.next()[0][0, 0]) for _ in range(4)]  # a list is passed over again
[0.0, 1.0, 2.0, 0.0]
>>> once = BatchStream(iter(pairs), lambda item, i: (item[0], item[1]), "training")
>>> [b is None for b in (once.next(), once.next(), once.next(), once.next())]
[False, False, False, True]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..errors import ConfigError

Pair = tuple[torch.Tensor, Any]
Check = Callable[[Any, int], Pair]


def is_batches(data: Any) -> bool:
    """Whether ``data`` is a source of batches rather than an array: iterable, and neither a
    tensor, an array (anything with a ``shape``), a string nor a mapping."""
    if isinstance(data, (torch.Tensor, str, bytes, dict)) or hasattr(data, "shape"):
        return False
    return isinstance(data, Iterable)


class BatchStream:
    """Checked ``(x, y)`` batches from ``source``, one at a time.

    A re-iterable source (``DataLoader``, list) is passed over without end: at the end of a
    pass the next begins, and ``source.sampler.set_epoch(epoch)`` is called when the sampler
    has it (``DistributedSampler`` reshuffles per epoch). A one-shot source (an iterator or
    generator) ends: :meth:`next` then returns ``None``. ``check(item, index)`` validates the
    ``index``-th batch drawn and returns it on the model's device.
    """

    def __init__(self, source: Iterable[Any], check: Check, what: str) -> None:
        self.source, self.check, self.what = source, check, what
        self.one_shot = isinstance(source, Iterator)
        self._it: Iterator[Any] | None = None
        self._ahead: deque[Pair] = deque()  # drawn for a look-ahead, not yet handed out
        self._in_pass = 0  # batches drawn in the current pass
        self._pass_over = False  # the current pass's iterator is exhausted
        self.drawn = 0
        self.epoch = 0

    def _draw(self) -> Pair | None:
        """The next batch of the current pass (checked), ``None`` at its end."""
        if self._pass_over:
            return None
        if self._it is None:
            self._it = iter(self.source)
        try:
            item = next(self._it)
        except StopIteration:
            self._pass_over = True
            return None
        self.drawn += 1
        self._in_pass += 1
        return self.check(item, self.drawn - 1)

    def _new_pass(self) -> None:
        if self._in_pass == 0:
            raise ConfigError(f"the {self.what} data yields no batches")
        self.epoch += 1
        set_epoch = getattr(getattr(self.source, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        self._it, self._in_pass, self._pass_over = iter(self.source), 0, False

    def next(self) -> Pair | None:
        """The next batch; ``None`` once a one-shot source is exhausted."""
        if self._ahead:
            return self._ahead.popleft()
        batch = self._draw()
        if batch is None and not self.one_shot:
            self._new_pass()
            batch = self._draw()
        if batch is None and self.drawn == 0:
            raise ConfigError(f"the {self.what} data yields no batches")
        return batch

    def first(self) -> Pair:
        """The first batch, drawn and checked now, handed out again by the first :meth:`next`."""
        batch = self.next()
        assert batch is not None  # next raises on a source without batches
        self._ahead.appendleft(batch)
        return batch

    def sample(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        """``x`` (the current batch's inputs) and the inputs of the batches after it in the
        current pass, until ``rows`` rows or the end of the pass: a sample of the data for a
        grid update. The batches read ahead are still handed out by :meth:`next`, in order."""
        parts, count, i = [x], x.shape[0], 0
        while count < rows:
            if i < len(self._ahead):
                batch = self._ahead[i]
            else:
                drawn = self._draw()
                if drawn is None:
                    break
                batch = drawn
                self._ahead.append(batch)
            i += 1
            parts.append(batch[0])
            count += batch[0].shape[0]
        return torch.cat(parts) if len(parts) > 1 else x

    def one_pass(self) -> Iterator[Pair]:
        """Every batch of one new pass over a re-iterable source (test data), checked."""
        for i, item in enumerate(self.source):
            yield self.check(item, i)
