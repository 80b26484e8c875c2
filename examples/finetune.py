"""Fine-tune compiled formulas, both ways of KAN 2.0.

(a) The constants of a compiled formula are trainable parameters: compile 2*sin(3x) + 1 and
    fit it to data of 2.5*sin(2.8x) + 0.7; the constants move to the new values.
(b) Symbolic edges become splines that start as the formula, so the network learns a
    correction the formula does not contain.

    python examples/finetune.py
"""

from __future__ import annotations

import torch

import kanpiler

F64 = torch.float64
gen = torch.Generator().manual_seed(0)


def rmse(model, x, y) -> float:  # noqa: ANN001
    with torch.no_grad():
        return float((model(x) - y).pow(2).mean().sqrt())


def constants() -> None:
    model = kanpiler.compile("2.0*sin(3.0*x) + 1.0", dtype=F64)
    x = torch.rand(256, 1, generator=gen, dtype=F64) * 4 - 2
    y = 2.5 * torch.sin(2.8 * x) + 0.7
    print(f"(a) before: RMSE {rmse(model, x, y):.3f}")
    model.fit(x, y, steps=30, update_grid=False, progress=False)
    (edge,) = model.layout.edges[0]
    a, b, c, d = model.symbolic[0].affine[edge.i, edge.j].tolist()
    print(f"    after : RMSE {rmse(model, x, y):.1e}; c*sin(a*x + b) + d with "
          f"a={a:.6f} b={b:.1e} c={c:.6f} d={d:.6f}")  # fmt: skip


def splines() -> None:
    x = torch.rand(512, 2, generator=gen, dtype=F64) * 2 - 1
    y = torch.sin(x[:, :1]) + torch.exp(x[:, 1:]) + 0.3 * x[:, :1] ** 2  # 0.3*x**2 is new
    model = kanpiler.compile("sin(x) + exp(y)", dtype=F64, grid=10)
    model.symbolic_to_spline(x=x)  # splines initialised to sin and exp on the data's range
    print(f"(b) formula as splines: RMSE {rmse(model, x, y):.3f} on data with an extra 0.3*x**2")
    model.fit(x, y, steps=20, update_grid=False, progress=False)
    print(f"    after fitting      : RMSE {rmse(model, x, y):.1e}")


if __name__ == "__main__":
    constants()
    splines()
