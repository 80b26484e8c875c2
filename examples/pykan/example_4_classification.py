"""pykan's tutorial Example_4 (classification), line by line: the two-moons data set learned
first as a regression (a [2, 1] KAN, squared error, output rounded to the class) and then as a
classification (a [2, 2] KAN, cross-entropy on integer labels, argmax of two logits), each
turned into a formula whose accuracy is measured on the data.

Prints what the notebook shows: train and test accuracy of the network, the function
``auto_symbolic`` puts on each edge, the formulas and their accuracy, and at the end pykan's
notebook numbers beside these. The notebook draws its moons with ``random_state=None``; here
they are drawn with fixed seeds so the run is repeatable. ``--small`` runs a smaller version
(as the tests do); ``--plots DIR`` saves the data and the trained networks.

    python examples/pykan/example_4_classification.py [--small] [--plots DIR]
"""

from __future__ import annotations

import torch
from _notebook import compare, options, save
from sklearn.datasets import make_moons

import kanpiler
from kanpiler import MultKAN

# pykan 0.2.8's Example_4_classfication.ipynb (float32, random moons)
PYKAN = {
    "regression, train / test acc": "1.000 / 0.998",
    "regression formula, train / test acc": "0.998 / 0.997",
    "regression formula": "-0.853*x_2 - 0.3885*sin(3.1242*x_1 - 1.5464) + 0.7063",
    "classification, train / test acc": "(not printed; train loss 0.00e+00)",
    "classification formula, train / test acc": "0.887 / 0.881",
    "classification logits": "-15.03*x_1 + 177.93*x_2 - 63.07 ; 60.47*x_1 - 156.03*x_2 + 16.9",
}
LIB = ["x", "x^2", "x^3", "x^4", "exp", "log", "sqrt", "tanh", "sin", "tan", "abs"]


def moons(n: int, labels: torch.dtype) -> dict[str, torch.Tensor]:
    """The notebook's data set: ``make_moons(n, noise=0.1)`` for training and for testing."""
    data = {}
    for split, seed in (("train", 0), ("test", 1)):
        x, y = make_moons(n_samples=n, shuffle=True, noise=0.1, random_state=seed)
        data[f"{split}_input"] = torch.from_numpy(x).to(torch.float64)
        y = torch.from_numpy(y).to(labels)
        data[f"{split}_label"] = y[:, None] if labels.is_floating_point else y
    return data


def scatter(data: dict[str, torch.Tensor]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    x, y = data["train_input"], data["train_label"].reshape(-1)
    ax.scatter(x[:, 0], x[:, 1], c=y, s=4)
    return fig


def formula_outputs(formulas, model: MultKAN, x: torch.Tensor) -> torch.Tensor:
    """The formulas' values on ``x``: compiled back into an exact network and evaluated."""
    exact = kanpiler.compile(formulas, variables=model.variables, dtype=torch.float64)
    return exact.evaluate(x)


def regression(n: int, steps: int, plots) -> dict[str, str]:
    dataset = moons(n, torch.float64)
    save(lambda: scatter(dataset), plots, "example_4_moons")
    model = MultKAN([2, 1], grid=3, k=3, seed=1, dtype=torch.float64)

    def acc(pred: torch.Tensor, label: torch.Tensor) -> float:
        return float(torch.mean((torch.round(pred[:, 0]) == label[:, 0]).double()))

    hist = model.fit(dataset, opt="LBFGS", steps=steps, metrics={"test_acc": acc}, progress=False)
    train_acc = acc(model(dataset["train_input"]), dataset["train_label"])
    print(f"regression: train acc {train_acc:.3f}, test acc {hist['test_acc'][-1]:.3f}, "
          f"train RMSE {hist['train_rmse'][-1]:.2e}")  # fmt: skip
    save(lambda: model.plot(dataset["train_input"]), plots, "example_4_regression")

    report = kanpiler.auto_symbolic(model, LIB, x=dataset["train_input"], progress=False)
    for e in report.edges:
        print(f"fixing ({e.layer},{e.i},{e.j}): {e.fn}, r2={e.r2:.4f}")
    (formula,) = kanpiler.formula(model)
    shown = kanpiler.round_constants(formula, 4)
    print(f"regression formula: {shown}")
    accs = [acc(formula_outputs([formula], model, dataset[f"{s}_input"]), dataset[f"{s}_label"])
            for s in ("train", "test")]  # fmt: skip
    print(f"regression formula acc: train {accs[0]:.3f}, test {accs[1]:.3f}")
    return {
        "regression, train / test acc": f"{train_acc:.3f} / {hist['test_acc'][-1]:.3f}",
        "regression formula, train / test acc": f"{accs[0]:.3f} / {accs[1]:.3f}",
        "regression formula": str(shown),
        "_regression": (formula, dataset),
    }


def classification(n: int, steps: int, plots) -> dict[str, str]:
    dataset = moons(n, torch.long)
    model = MultKAN([2, 2], grid=3, k=3, seed=2024, dtype=torch.float64)

    def acc(logits: torch.Tensor, label: torch.Tensor) -> float:
        return float(torch.mean((torch.argmax(logits, dim=1) == label).double()))

    hist = model.fit(dataset, opt="LBFGS", steps=steps, metrics={"test_acc": acc},
                     loss_fn=torch.nn.CrossEntropyLoss(), progress=False)  # fmt: skip
    train_acc = acc(model(dataset["train_input"]), dataset["train_label"])
    print(f"classification: train acc {train_acc:.3f}, test acc {hist['test_acc'][-1]:.3f}, "
          f"train loss {hist['train_loss'][-1]:.2e}")  # fmt: skip
    save(lambda: model.plot(dataset["train_input"]), plots, "example_4_classification")

    # the notebook's second library has no tan; pykan fixes every edge whatever its r2
    # (its r2_threshold is 0), kanpiler keeps edges below 0.9 as splines unless told so
    report = kanpiler.auto_symbolic(
        model, LIB[:-2] + ["abs"], x=dataset["train_input"], r2_threshold=0.0, progress=False
    )
    for e in report.edges:
        print(f"fixing ({e.layer},{e.i},{e.j}): {e.fn}, r2={e.r2:.4f}")
    formulas = kanpiler.formula(model)
    shown = [kanpiler.round_constants(f, 4) for f in formulas]
    print(f"logit 1: {shown[0]}")
    print(f"logit 2: {shown[1]}")
    accs = [acc(formula_outputs(formulas, model, dataset[f"{s}_input"]), dataset[f"{s}_label"])
            for s in ("train", "test")]  # fmt: skip
    print(f"classification formula acc: train {accs[0]:.3f}, test {accs[1]:.3f}")
    return {
        "classification, train / test acc": f"{train_acc:.3f} / {hist['test_acc'][-1]:.3f}",
        "classification formula, train / test acc": f"{accs[0]:.3f} / {accs[1]:.3f}",
        "classification logits": f"{shown[0]} ; {shown[1]}",
        "_classification": (formulas, dataset),
    }


def main(small: bool = False, plots=None) -> dict:
    n, steps = (300, 10) if small else (1000, 20)
    ours = regression(n, steps, plots) | classification(n, steps, plots)
    compare("accuracy and formulas", [(k, v, ours[k]) for k, v in PYKAN.items()], small)
    return ours


if __name__ == "__main__":
    main(**options())
