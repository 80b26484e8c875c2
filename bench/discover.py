"""Benchmark: formula discovery on the Feynman bonus equations and the classic suites.

Samples ``--points`` noise-free points per formula in its box (optionally with Gaussian noise
of ``--noise`` * std(y)), runs each system on the same data, and scores on fresh points:

- numeric recovery: max relative error < 1e-6 (denominator ``max(|y|, 1e-3 * rms(y))``);
- exact recovery: numeric recovery, and SymPy proves found - truth == 0 (constants of the
  truth given as decimals count as matched when the found float agrees to 1e-9);
- time per equation: wall seconds and CPU seconds of the process (``time.process_time``;
  on a shared machine the wall time is inflated by the other jobs, the CPU time is not).

Systems, side by side in one run: ``kanpiler`` (``kanpiler.discover``), ``pykan`` (pykan 0.2.8,
its automatic pipeline: [n, 2n+1, 1] KAN, LBFGS with sparsity, prune, refine to G=20,
auto_symbolic), ``operon`` (``pyoperon``'s SymbolicRegressor). Missing anchors are skipped.
Rows whose reference is not finite and real on their box are skipped and counted.

    python bench/discover.py --set bonus --limit 5 --systems kanpiler,operon
    python bench/discover.py --set classic --suites Nguyen,Keijzer --systems kanpiler
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import sympy
import torch

import kanpiler
from kanpiler.discovery.expr import evaluate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "formulas"
LOCAL = ROOT / "tests" / "data"
CLASSIC_SUITES = ("Nguyen", "Keijzer", "Korns", "Koza", "Jin", "Vladislavleva", "strogatz",
                  "Livermore", "Constant", "Neat", "Poly", "R1", "R2", "R3", "Meier", "Pagie",
                  "Nonic", "Sine", "GrammarVAE", "Livermore2")  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def load(which: str, suites: list[str] | None) -> list[dict[str, Any]]:
    base = SHARED if SHARED.exists() else LOCAL
    rows = []
    if which in ("bonus", "all"):
        for r in _read(base / "feynman_bonus.csv"):
            rows.append({"set": "bonus", "name": r["name"], "formula": r["formula"],
                         "vars": json.loads(r["variables"])})  # fmt: skip
    if which in ("classic", "all"):
        for r in _read(base / "classic.csv"):
            suite = r["name"].split("-")[0].split("_")[0]
            if suites and suite not in suites:
                continue
            rows.append({"set": suite, "name": r["name"], "formula": r["formula"],
                         "vars": json.loads(r["variables"])})  # fmt: skip
    return rows


def truth_of(row: dict[str, Any]) -> sympy.Expr:
    names = [v["name"] for v in row["vars"]]
    return kanpiler.to_sympy(row["formula"], names)


def sample(row: dict[str, Any], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(float(v["low"]), float(v["high"]), n) for v in row["vars"]], 1)


def values(expr: sympy.Expr, names: list[str], X: np.ndarray) -> np.ndarray:
    cols = {n: torch.from_numpy(np.ascontiguousarray(X[:, i])) for i, n in enumerate(names)}
    if not expr.free_symbols:
        return np.full(X.shape[0], float(expr))
    with torch.no_grad():
        return evaluate(expr, cols).numpy()


def max_rel_err(pred: np.ndarray, ref: np.ndarray) -> float:
    if not np.all(np.isfinite(pred)):
        return math.inf
    rms = float(np.sqrt(np.mean(ref**2)))
    return float(np.max(np.abs(pred - ref) / np.maximum(np.abs(ref), 1e-3 * rms + 1e-300)))


def _rationalise(e: sympy.Expr, like: sympy.Expr | None = None) -> sympy.Expr:
    targets = [f for f in (like.atoms(sympy.Float) if like is not None else [])]
    m = {}
    for f in e.atoms(sympy.Float):
        v = float(f)
        for t in targets:
            if abs(float(t) - v) <= 1e-9 * max(abs(v), 1e-12):
                m[f] = sympy.Rational(repr(float(t)))
                break
        else:
            if like is None:
                m[f] = sympy.Rational(repr(v))
    return e.xreplace(m)


def exact(found: sympy.Expr, truth: sympy.Expr, positive: set[str] = frozenset()) -> bool:
    """Guarded SymPy equality (only called after numeric recovery); variables whose box is
    positive are declared positive."""
    t = _rationalise(truth)
    f = _rationalise(found, truth)

    def sym(s: sympy.Symbol) -> sympy.Symbol:
        return sympy.Symbol(s.name, positive=True) if s.name in positive else sympy.Symbol(s.name, real=True)

    f = f.xreplace({s: sym(s) for s in f.free_symbols})
    t = t.xreplace({s: sym(s) for s in t.free_symbols})
    if f.atoms(sympy.Float):
        return False
    try:
        if sympy.simplify(f - t) == 0:
            return True
        return bool(t != 0 and sympy.simplify(f / t) == 1)
    except Exception:  # noqa: BLE001 - a rewrite that fails proves nothing
        return False


# ---- systems ------------------------------------------------------------------------------
def run_kanpiler(X: np.ndarray, y: np.ndarray, names: list[str], args: argparse.Namespace) -> sympy.Expr:
    d = kanpiler.discover(X, y, names, time_limit=args.time_limit, seed=args.seed,
                           progress=args.progress)
    return d.formula


def run_operon(X: np.ndarray, y: np.ndarray, names: list[str], args: argparse.Namespace) -> sympy.Expr:
    from pyoperon.sklearn import SymbolicRegressor

    reg = SymbolicRegressor(max_time=int(args.operon_time), random_state=args.seed + 1,
                            n_threads=1, max_length=50, optimizer_iterations=10,
                            allowed_symbols="add,sub,mul,div,constant,variable,sin,cos,exp,log,sqrt,square")  # fmt: skip
    reg.fit(X, y)
    text = reg.get_model_string(reg.model_, 12, names)
    return kanpiler.to_sympy(text.replace("^", "**"), names)


def run_pykan(X: np.ndarray, y: np.ndarray, names: list[str], args: argparse.Namespace) -> sympy.Expr:
    """pykan writes its training history under ./model: it runs in a temporary folder."""
    import os
    import tempfile

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            return _pykan(X, y, names, args)
        finally:
            os.chdir(here)


def _pykan(X: np.ndarray, y: np.ndarray, names: list[str], args: argparse.Namespace) -> sympy.Expr:
    from kan import KAN

    n = X.shape[1]
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)[:, None]
    cut = int(0.8 * len(X))
    data = {"train_input": Xt[:cut], "train_label": yt[:cut], "test_input": Xt[cut:], "test_label": yt[cut:]}
    model = KAN(width=[n, 2 * n + 1, 1], grid=5, k=3, seed=args.seed, auto_save=False)
    model.fit(data, opt="LBFGS", steps=args.pykan_steps, lamb=0.001, log=10**9)
    model = model.prune()
    model = model.refine(20)
    model.fit(data, opt="LBFGS", steps=args.pykan_steps, log=10**9)
    model.auto_symbolic(verbose=0)
    model.fit(data, opt="LBFGS", steps=args.pykan_steps, log=10**9)
    expr = model.symbolic_formula(var=names)[0][0]
    return sympy.sympify(expr) if not isinstance(expr, sympy.Basic) else expr


SYSTEMS = {"kanpiler": run_kanpiler, "pykan": run_pykan, "operon": run_operon}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="bonus", choices=["bonus", "classic", "all"])
    ap.add_argument("--suites", default="", help="comma-separated classic suites (default: all)")
    ap.add_argument("--rows", default="", help="comma-separated row names")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--stride", type=int, default=1, help="every n-th row (a deterministic sample)")
    ap.add_argument("--systems", default="kanpiler,operon,pykan")
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.0, help="Gaussian noise, fraction of std(y)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--operon-time", type=float, default=30.0)
    ap.add_argument("--pykan-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--progress", action="store_true", help="print kanpiler's search steps to stderr")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = load(args.set, [s for s in args.suites.split(",") if s] or None)
    if args.rows:
        wanted = set(args.rows.split(","))
        rows = [r for r in rows if r["name"] in wanted]
    rows = rows[args.offset::args.stride]
    systems = [s for s in args.systems.split(",") if s]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    skipped = []
    for row in rows:
        if args.limit and sum(1 for _ in results[systems[0]]) >= args.limit:
            break
        names = [v["name"] for v in row["vars"]]
        try:
            truth = truth_of(row)
            X = sample(row, args.points, args.seed)
            Xf = sample(row, args.points, args.seed + 12345)
            y, yf = values(truth, names, X), values(truth, names, Xf)
        except Exception as err:  # noqa: BLE001
            skipped.append((row["name"], f"reference: {err}"))
            continue
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(yf))):
            skipped.append((row["name"], "reference not finite and real on its box"))
            continue
        if args.noise:
            rng = np.random.default_rng(args.seed + 7)
            y = y + args.noise * float(np.std(y)) * rng.standard_normal(len(y))
        for s in systems:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                found = SYSTEMS[s](X, y, names, args)
                err = max_rel_err(values(found, names, Xf), yf)
                num = err < 1e-6
                pos = {v["name"] for v in row["vars"] if float(v["low"]) > 0}
                ex = num and exact(found, truth, pos)
                text = str(found)
            except ImportError as e:
                err, num, ex, text = math.inf, False, False, f"unavailable: {e}"
            except Exception as e:  # noqa: BLE001 - a failing system scores a miss
                err, num, ex, text = math.inf, False, False, f"error: {type(e).__name__}: {e}"[:200]
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[s].append({"set": row["set"], "name": row["name"], "exact": ex, "numeric": num,
                               "err": err, "seconds": dt, "cpu": cpu, "found": text})  # fmt: skip
            print(f"{row['name']:<24} {s:<9} exact={int(ex)} numeric={int(num)} err={err:.1e} "
                  f"{dt:6.1f}s cpu {cpu:6.1f}s  {text[:100]}", flush=True)  # fmt: skip
    print()
    print(f"noise {args.noise:g} * std(y), {args.points} points, seed {args.seed}")
    print("| set | system | exact | numeric | median s | max s | median CPU s | max CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    sets = sorted({r["set"] for rs in results.values() for r in rs})
    for st in sets + ["all"]:
        for s in systems:
            rs = [r for r in results[s] if st == "all" or r["set"] == st]
            if not rs:
                continue
            secs = [r["seconds"] for r in rs]
            cpus = [r["cpu"] for r in rs]
            print(f"| {st} | {s} | {sum(r['exact'] for r in rs)}/{len(rs)} | "
                  f"{sum(r['numeric'] for r in rs)}/{len(rs)} | {statistics.median(secs):.1f} | {max(secs):.1f} | "
                  f"{statistics.median(cpus):.1f} | {max(cpus):.1f} |")  # fmt: skip
    if skipped:
        print(f"skipped {len(skipped)} rows: " + "; ".join(f"{n} ({why})" for n, why in skipped[:8])
              + (" ..." if len(skipped) > 8 else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
