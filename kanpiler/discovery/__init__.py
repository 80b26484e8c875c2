"""Discovery: from samples ``(X, y)`` to the formula that generated them.

``discover(X, y)`` returns a :class:`Discovery`; :class:`~kanpiler.discovery.estimator.KANRegressor`
(in its own module, as it needs scikit-learn) wraps it as a scikit-learn estimator.

Modules: :mod:`.data` (input checks), :mod:`.expr` (evaluation, constant fitting),
:mod:`.univariate` and :mod:`.sparse` (brute-force and sparse-regression fits),
:mod:`.surrogate` (the smooth stand-in for the data), :mod:`.structure` (the recursive
search), :mod:`.api` (``discover``), :mod:`.estimator` (``KANRegressor``).

In: samples ``X (N, n)`` (numpy, torch or a DataFrame) and ``y (N,)``. Out: a
:class:`Discovery` (formula, Pareto front, structure, report). Stage: discovery (after the
compiler and the converter; only the facade and the CLI come later).
"""

from __future__ import annotations

from .api import Discovery, ParetoPoint, discover
from .data import DataError

__all__ = ["discover", "Discovery", "ParetoPoint", "DataError"]
