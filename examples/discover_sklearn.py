"""KANRegressor inside a scikit-learn Pipeline, cross-validated; then the formula it found.

    python examples/discover_sklearn.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

import kanpiler


def main() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.uniform(-2, 2, 400), "y": rng.uniform(-2, 2, 400),
                      "unused": rng.uniform(-2, 2, 400)})  # fmt: skip
    target = np.sin(X["x"]) * np.exp(X["y"]) + 1
    reg = kanpiler.KANRegressor(surrogates=2)
    scores = cross_val_score(make_pipeline(reg), X, target, cv=3)
    print(f"cross-validated R^2: {', '.join(f'{s:.6f}' for s in scores)}")
    reg.fit(X, target)
    print(f"formula: {reg.formula_}")
    print(f"latex: {reg.latex()}")


if __name__ == "__main__":
    main()
