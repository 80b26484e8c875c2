"""Input checks for discovery: arrays, tensors or data frames in; float64 columns out.

In: ``X`` (numpy array, torch tensor, pandas DataFrame or nested lists), ``y``, optional
variable names. Out: ``(X (N, n) float64 tensor, y (N,) float64 tensor, names)``.
Stage: discover (first thing :func:`~kanpiler.discover` does).

Every problem is a :class:`DataError` naming what is wrong: mismatched lengths, non-numeric
columns, NaN or infinite rows (their count; dropped with a warning when asked), too few
samples.

>>> X, y, names = prepare([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], [1, 2, 3], min_samples=3)
>>> names, X.dtype, tuple(y.shape)
(['x1', 'x2'], torch.float64, (3,))
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import KanpilerError, ShapeError

__all__ = ["DataError", "prepare"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DataError(KanpilerError, ValueError):
    """The data given to discovery cannot be used as it is."""


def _numeric(dtype: Any) -> bool:
    try:
        dt = np.dtype(dtype)
    except TypeError:  # pandas extension dtypes (strings, categories, ...)
        return bool(getattr(dtype, "_is_numeric", False))
    return bool(np.issubdtype(dt, np.number) or dt == np.bool_)


def _columns(X: Any) -> tuple[np.ndarray, list[str] | None]:
    names = None
    if hasattr(X, "columns") and hasattr(X, "dtypes"):  # pandas DataFrame
        names = [str(c) for c in X.columns]
        bad = [str(c) for c, t in zip(X.columns, X.dtypes) if not _numeric(t)]
        if bad:
            raise DataError(f"discover: column(s) {', '.join(bad)} are not numeric")
        X = X.to_numpy()
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError("discover: X holds non-numeric values") from None
    if np.iscomplexobj(arr):
        raise DataError("discover: X is complex; only real data can be fitted")
    return arr.astype(np.float64), names


def prepare(
    X: Any,
    y: Any,
    variables: Sequence[str] | None = None,
    *,
    drop_nonfinite: bool = False,
    min_samples: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Checked float64 tensors and variable names (``x1, x2, ...`` unless named)."""
    Xa, frame_names = _columns(X)
    if Xa.ndim == 1:
        Xa = Xa[:, None]
    if Xa.ndim != 2:
        raise ShapeError(f"discover: X must be 2-D (samples, variables), got shape {Xa.shape}")
    ya, _ = _columns(y)
    ya = ya.reshape(ya.shape[0], -1) if ya.ndim > 1 else ya
    if ya.ndim == 2:
        if ya.shape[1] != 1:
            raise ShapeError(f"discover: y must be one column, got shape {ya.shape}")
        ya = ya[:, 0]
    if Xa.shape[0] != ya.shape[0]:
        raise ShapeError(f"discover: X has {Xa.shape[0]} rows but y has {ya.shape[0]}")
    names = list(variables) if variables is not None else (frame_names or [f"x{i + 1}" for i in range(Xa.shape[1])])
    if len(names) != Xa.shape[1]:
        raise ShapeError(f"discover: {len(names)} variable names for {Xa.shape[1]} columns of X")
    bad_names = [n for n in names if not _NAME.match(str(n))]
    if bad_names:
        raise DataError(f"discover: variable names must be identifiers, got {bad_names}")
    if len(set(names)) != len(names):
        raise DataError(f"discover: duplicate variable names in {names}")
    finite = np.isfinite(Xa).all(1) & np.isfinite(ya)
    nbad = int((~finite).sum())
    if nbad:
        if not drop_nonfinite:
            raise DataError(
                f"discover: {nbad} of {len(ya)} rows hold NaN or infinite values; clean them or "
                "pass drop_nonfinite=True to drop them"
            )
        warnings.warn(f"discover: dropped {nbad} rows holding NaN or infinite values", stacklevel=3)
        Xa, ya = Xa[finite], ya[finite]
    if len(ya) < min_samples:
        raise DataError(f"discover: got {len(ya)} sample(s) with finite values; at least "
                        f"{min_samples} are needed")
    return torch.from_numpy(np.ascontiguousarray(Xa)), torch.from_numpy(np.ascontiguousarray(ya)), [str(n) for n in names]
