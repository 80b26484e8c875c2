"""A Lagrangian learned from pendulum trajectories, then read back as a formula.

Trajectories of q'' = -sin(q) give samples (q, v = q') and accelerations a = q''. A KAN
L(q, v) is trained so that the Euler-Lagrange equation holds at every sample,

    d/dt (dL/dv) - dL/dq = L_vv a + L_vq v - L_q = 0,

which needs second and mixed derivatives of the network (Taylor mode). Conditions fix what
the data cannot: L(0, 0) = 0, L_v(0, 0) = 0 (no gauge term c v) and L_vv(0, 0) = 1 (the
mass). The splines are then fitted by library functions: L = v^2 / 2 + cos(q) - 1.

    python examples/physics_lagrangian.py [--plot lagrangian.png]
"""

from __future__ import annotations

import argparse

import torch

import kanpiler
from kanpiler.physics import Box, Condition, Stage, solve
from kanpiler.runtime import MultKAN

F64 = torch.float64


def pendulum(z: torch.Tensor) -> torch.Tensor:
    return torch.stack([z[:, 1], -torch.sin(z[:, 0])], dim=1)


def trajectories(n_start: int = 6, n_steps: int = 80, dt: float = 0.05) -> torch.Tensor:
    """Samples ``(q, v, a)`` along RK4 trajectories started at rest, |q0| <= 1."""
    z = torch.stack([torch.linspace(-1, 1, n_start, dtype=F64), torch.zeros(n_start, dtype=F64)], 1)
    path = [z]
    for _ in range(n_steps):
        k1 = pendulum(z)
        k2 = pendulum(z + dt / 2 * k1)
        k3 = pendulum(z + dt / 2 * k2)
        k4 = pendulum(z + dt * k3)
        z = z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(z)
    traj = torch.stack(path).reshape(-1, 2)
    return torch.cat([traj, -torch.sin(traj[:, :1])], dim=1)


def learn(steps: int = 30, grid: int = 7):
    samples = trajectories()
    points, accel = samples[:, :2], samples[:, 2:]
    box = Box([-1, -1], [1, 1], names=("q", "v"))
    # at the origin: L = 0, L_v = 0 (no gauge term) and L_vv = 1 (the mass), one residual each
    gauge = Condition(
        torch.zeros(1, 2, dtype=F64),
        residual=lambda d: torch.cat([d.u, d("v"), d("v", "v") - 1.0], dim=1),
        weight=10.0,
        name="gauge",
    )
    model = MultKAN([2, 1], grid=grid, k=3, dtype=F64, seed=0, variables=["q", "v"])

    def euler_lagrange(d):
        return d("v", "v") * accel + d("v", "q") * d.input("v") - d("q")

    res = solve(model, euler_lagrange, box, [gauge], points=points, stages=[Stage("lbfgs", steps)])
    kanpiler.auto_symbolic(res.model, ["x", "x^2", "cos", "sin", "exp"], x=points, progress=False)
    (formula,) = kanpiler.formula(res.model)
    return res, formula, points


def plot(model, points: torch.Tensor, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q = torch.linspace(-1, 1, 101, dtype=F64).reshape(-1, 1)
    zero = torch.zeros_like(q)
    with torch.no_grad():
        potential = model(torch.cat([q, zero], 1))
        kinetic = model(torch.cat([zero, q], 1))
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot(q, potential, label="L(q, 0)")
    ax.plot(q, torch.cos(q) - 1, "k:", label="cos q - 1")
    ax.plot(q, kinetic, label="L(0, v)")
    ax.plot(q, q**2 / 2, "k--", label="v^2 / 2")
    ax.set_xlabel("q or v")
    ax.legend(fontsize=7)
    ax.set_title("learned Lagrangian of the pendulum")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    result, formula, pts = learn()
    print(f"loss {result.history[-1]['loss']:.2e}; L(q, v) = {formula}")
    if args.plot:
        plot(result.model, pts, args.plot)
