"""``KANRegressor``: formula discovery as a scikit-learn estimator.

In: ``X (n_samples, n_features)``, ``y`` through ``fit``. Out: a fitted estimator whose
``predict`` evaluates the discovered formula; ``formula_``, ``pareto_``, ``discovery_`` and
``model_`` (the formula compiled into a MultKAN) after fitting. Stage: discover (needs
scikit-learn, an optional dependency).

>>> import numpy as np
>>> X = np.linspace(1, 2, 60).reshape(-1, 1)
>>> reg = KANRegressor(surrogates=0).fit(X, 2 * X[:, 0] ** 3)
>>> reg.formula_
2*x0**3
>>> float(reg.score(X, 2 * X[:, 0] ** 3))
1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kanpiler.KANRegressor needs scikit-learn: pip install 'kanpiler[sklearn]'"
    ) from err

from .api import discover

__all__ = ["KANRegressor"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class KANRegressor(RegressorMixin, BaseEstimator):
    """Find a closed-form formula ``y = f(X)`` (see :func:`kanpiler.discover`).

    Parameters mirror :func:`kanpiler.discover`: ``time_limit`` (seconds, or None),
    ``seed``, ``functions`` (library names to try, None for all), ``surrogates`` (how many
    surrogate networks the structure search may train; 0 = direct fits only),
    ``max_samples``, ``drop_nonfinite``. Feature names of a DataFrame become the formula's
    variables when they are identifiers; otherwise ``x0, x1, ...``.
    """

    def __init__(
        self,
        time_limit: float | None = 120,
        seed: int = 0,
        functions: Sequence[str] | None = None,
        surrogates: int = 8,
        max_samples: int = 2000,
        drop_nonfinite: bool = False,
    ):
        self.time_limit = time_limit
        self.seed = seed
        self.functions = functions
        self.surrogates = surrogates
        self.max_samples = max_samples
        self.drop_nonfinite = drop_nonfinite

    def _names(self, n: int) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None and all(_NAME.match(str(s)) for s in names) and len(set(names)) == n:
            return [str(s) for s in names]
        return [f"x{i}" for i in range(n)]

    def fit(self, X: Any, y: Any) -> KANRegressor:
        """Discover the formula from ``X`` and ``y``; returns ``self``."""
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64,
                             ensure_all_finite=not self.drop_nonfinite)  # fmt: skip
        names = self._names(X.shape[1])
        self.discovery_ = discover(
            X, y, names, time_limit=self.time_limit, seed=self.seed, progress=False,
            functions=self.functions, surrogates=self.surrogates, max_samples=self.max_samples,
            drop_nonfinite=self.drop_nonfinite,
        )  # fmt: skip
        self.formula_ = self.discovery_.formula
        self.pareto_ = self.discovery_.pareto
        self.variables_ = names
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The discovered formula's values at the rows of ``X``."""
        check_is_fitted(self, "discovery_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.discovery_.predict(X).detach().cpu().numpy()

    @property
    def model_(self) -> Any:
        """The formula compiled into a float64 MultKAN."""
        check_is_fitted(self, "discovery_")
        return self.discovery_.model

    def sympy(self) -> Any:
        """The discovered formula (SymPy)."""
        check_is_fitted(self, "discovery_")
        return self.formula_

    def latex(self) -> str:
        """The discovered formula in LaTeX."""
        check_is_fitted(self, "discovery_")
        return self.discovery_.latex()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = bool(self.drop_nonfinite)
        return tags
