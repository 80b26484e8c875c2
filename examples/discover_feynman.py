"""Discover a physics formula from samples: Compton scattering, K = E / (1 + E/(m c^2) (1 - cos t)).

2000 noise-free samples in the box of the AI Feynman bonus equation 8; ``kanpiler.discover``
finds the structure (which inputs combine how), fits symbols and constants, and returns the
formula, its accuracy-complexity front and the steps it took.

    python examples/discover_feynman.py [noise]     # noise: fraction of std(y), e.g. 0.01
"""

from __future__ import annotations

import sys

import numpy as np

import kanpiler


def main() -> None:
    noise = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 3, size=(2000, 4))
    E, m, c, theta = X.T
    y = E / (1 + E / (m * c**2) * (1 - np.cos(theta)))
    y = y + noise * y.std() * rng.standard_normal(len(y))
    found = kanpiler.discover(X, y, ["E", "m", "c", "theta"], progress=False, time_limit=None)
    print(found)
    truth = kanpiler.to_sympy("E/(1 + E/(m*c**2)*(1 - cos(theta)))", ["E", "m", "c", "theta"])
    Xf = rng.uniform(1, 3, size=(500, 4))
    ref = E_ = Xf[:, 0] / (1 + Xf[:, 0] / (Xf[:, 1] * Xf[:, 2] ** 2) * (1 - np.cos(Xf[:, 3])))
    err = np.max(np.abs(found.predict(Xf).numpy() - ref) / np.abs(E_))
    print(f"truth: {truth}")
    print(f"max relative error on fresh points: {err:.1e}")


if __name__ == "__main__":
    main()
