"""A conserved quantity learned from trajectories, then read back as a formula.

Trajectories of the oscillator q' = p, p' = -2 q are integrated (RK4) from a few starting
points; velocities come from central differences along each trajectory. A KAN H(q, p) is
trained so that it is constant along the flow, dH/dt = H_q q' + H_p p' = 0 at every sample,
with H(0, 0) = 0 and H(0.5, 0) = 0.25 (inside the data) fixing the trivial freedom (constants and scale). The
splines are then fitted by library functions: H = q^2 + p^2 / 2, the energy (divided by
the spring constant).

    python examples/physics_conserved.py [--plot conserved.png]
"""

from __future__ import annotations

import argparse

import torch

import kanpiler
from kanpiler.physics import Box, Condition, Stage, solve
from kanpiler.runtime import MultKAN

F64 = torch.float64


def flow(z: torch.Tensor) -> torch.Tensor:
    return torch.stack([z[:, 1], -2.0 * z[:, 0]], dim=1)


def trajectories(
    n_start: int = 8, n_steps: int = 60, dt: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples (q, p) and their time derivatives, estimated by central differences."""
    gen = torch.Generator().manual_seed(0)
    z = (torch.rand(n_start, 2, generator=gen, dtype=F64) * 2 - 1) * torch.tensor(
        [0.6, 0.5], dtype=F64
    )  # energy <= 0.49: |p| < 1
    path = [z]
    for _ in range(n_steps):
        k1 = flow(z)
        k2 = flow(z + dt / 2 * k1)
        k3 = flow(z + dt / 2 * k2)
        k4 = flow(z + dt * k3)
        z = z + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(z)
    traj = torch.stack(path)  # (T, n_start, 2)
    velocity = (traj[2:] - traj[:-2]) / (2 * dt)
    return traj[1:-1].reshape(-1, 2), velocity.reshape(-1, 2)


def learn(steps: int = 20, grid: int = 5):
    points, velocity = trajectories()
    box = Box([-1, -1], [1, 1], names=("q", "p"))
    anchors = Condition(torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=F64),
                        value=torch.tensor([[0.0], [0.25]], dtype=F64), weight=10.0, name="anchors")  # fmt: skip
    model = MultKAN([2, 1], grid=grid, k=3, dtype=F64, seed=0, variables=["q", "p"])

    def conservation(d):  # dH/dt along the measured flow
        return d("q") * velocity[:, :1] + d("p") * velocity[:, 1:]

    res = solve(model, conservation, box, [anchors], points=points, stages=[Stage("lbfgs", steps)])
    kanpiler.auto_symbolic(
        res.model, ["x", "x^2", "x^3", "sin", "cos", "exp"], x=points, progress=False
    )
    (formula,) = kanpiler.formula(res.model)
    return res, formula, points


def plot(model, points: torch.Tensor, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, p = torch.meshgrid(
        torch.linspace(-1, 1, 81, dtype=F64), torch.linspace(-1, 1, 81, dtype=F64), indexing="ij"
    )
    with torch.no_grad():
        h = model(torch.stack([q.flatten(), p.flatten()], 1)).reshape(q.shape)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.contour(q, p, h, levels=12)
    ax.plot(points[:, 0], points[:, 1], ".", ms=1.5, color="k")
    ax.set_xlabel("q")
    ax.set_ylabel("p")
    ax.set_title("learned H(q, p): level sets and trajectories")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    result, formula, pts = learn()
    print(f"loss {result.history[-1]['loss']:.2e}; H(q, p) = {formula}")
    if args.plot:
        plot(result.model, pts, args.plot)
