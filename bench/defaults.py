"""The evidence behind the estimators' defaults: ``python -m bench.defaults``.

For each data set: the exact L2 optimum (``LogisticRegression``, C on a grid, the best
test loss taken as the floor), ``SGDClassifier`` with its defaults and with its best
``alpha``, and a grid of ``SparseClassifier`` settings, each scored by test log loss after
1, 2 and 3 epochs. The defaults are the settings chosen on ``pypi_popular``; the other
data sets check them on data they were not chosen on.

Data sets: the full ``pypi_popular`` when ``--pypi`` points at it (default: the shared
copy, if present), the 100k-row sample shipped in ``bench/data``, and a synthetic
rare-feature problem from ``sparseopt.datasets``. Prints the results as it goes;
``--out`` also writes them to ``defaults.json``; ``--optimizers`` runs the grids of
some optimizers only (the optimum and ``SGDClassifier`` rows are always run).
"""

import argparse
import itertools
import json
import os
import sys
import time
from functools import partial

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import log_loss

from sparseopt import SparseClassifier
from sparseopt.rules import RULES

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "pypi_popular.tsv.gz")
SAMPLE = os.path.join(HERE, "data", "pypi_popular_100k.tsv.gz")

# Around each optimizer's default, plus the textbook damping (epsilon=1e-8).
GRIDS = {
    "adagrad": dict(eta0=[0.1, 0.3, 1.0, 3.0], epsilon=[1e-8, 0.1, 0.3, 1.0], alpha=[1e-7]),
    "ftrl": dict(eta0=[0.3, 1.0, 3.0], epsilon=[1e-8], alpha=[1e-7]),
    "rmsprop": dict(eta0=[1e-2, 3e-2, 1e-1], epsilon=[1e-8, 0.1, 0.3], alpha=[1e-7],
                    rho=[0.9, 0.999]),
    "adam": dict(eta0=[1e-3, 1e-2, 1e-1], epsilon=[1e-8, 1e-2, 0.3], alpha=[1e-7]),
    "adadelta": dict(eta0=[0.1, 0.3, 1.0], epsilon=[1e-6, 1e-3], alpha=[1e-7],
                     rho=[0.9, 0.999]),
}
QUICK_GRIDS = {
    "adagrad": dict(eta0=[0.1, 1.0], epsilon=[1e-8, 0.3], alpha=[1e-7]),
}


def curve(make, X_train, y_train, X_test, y_test, epochs=3):
    """Test log loss after each of ``epochs`` partial_fit passes."""
    clf = make()
    losses = []
    for _ in range(epochs):
        clf.partial_fit(X_train, y_train, classes=np.unique(y_train))
        losses.append(log_loss(y_test, clf.predict_proba(X_test)[:, 1]))
    return losses


def sgdclassifier_curve(alpha, X_train, y_train, X_test, y_test, epochs=3):
    return [
        log_loss(y_test, SGDClassifier(loss="log_loss", alpha=alpha, max_iter=e, tol=None,
                                       random_state=0).fit(X_train, y_train)
                 .predict_proba(X_test)[:, 1])
        for e in range(1, epochs + 1)
    ]


def optimum(X_train, y_train, X_test, y_test, Cs):
    """Best test log loss of the exact L2 solution over ``Cs``."""
    rows = []
    # Increasing C with warm starts: each solve starts from the previous solution.
    lr = LogisticRegression(max_iter=2000, tol=1e-6, warm_start=True)
    for C in sorted(Cs):
        start = time.perf_counter()
        lr.set_params(C=C).fit(X_train, y_train)
        rows.append((C, log_loss(y_test, lr.predict_proba(X_test)[:, 1]),
                     time.perf_counter() - start))
        print(f"  LogisticRegression C={C:g}: test log loss {rows[-1][1]:.5f} "
              f"({rows[-1][2]:.0f} s)", flush=True)
    return rows


def study(name, X_train, X_test, y_train, y_test, grids, Cs):
    print(f"\n## {name}: {X_train.shape[0]} training rows, {X_train.shape[1]} columns, "
          f"{X_train.nnz} nonzeros", flush=True)
    result = {"data": name, "n_train": X_train.shape[0], "rows": []}
    lr = optimum(X_train, y_train, X_test, y_test, Cs)
    floor = min(loss for _, loss, _ in lr)
    result["optimum"] = {"C": [c for c, _, _ in lr], "test_log_loss": [v for _, v, _ in lr],
                         "floor": floor}

    def add(method, settings, losses):
        row = {"method": method, "settings": settings, "test_log_loss": losses,
               "gap_to_optimum": [v / floor - 1.0 for v in losses]}
        result["rows"].append(row)
        print(f"  {method:<14} {settings:<40} " + "  ".join(
            f"{v:.5f} ({100 * (v / floor - 1):+.1f}%)" for v in losses), flush=True)

    add("SparseClassifier", "defaults", curve(lambda: SparseClassifier(random_state=0),
                                               X_train, y_train, X_test, y_test))
    for alpha in (1e-4, 1e-5, 1e-6, 1e-7):
        label = "defaults" if alpha == 1e-4 else f"alpha={alpha:g}"
        add("SGDClassifier", label,
            sgdclassifier_curve(alpha, X_train, y_train, X_test, y_test))
    for optimizer, grid in grids.items():
        for values in itertools.product(*grid.values()):
            settings = dict(zip(grid, values))
            add(optimizer, " ".join(f"{k}={v:g}" for k, v in settings.items()),
                curve(partial(SparseClassifier, optimizer=optimizer, random_state=0,
                              **settings), X_train, y_train, X_test, y_test))
    return result


def main(argv=None):
    from sparseopt.datasets import make_sparse_classification

    from .data_io import load_pypi

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pypi", default=SHARED, help="full pypi_popular TSV (optional)")
    parser.add_argument("--quick", action="store_true", help="small grids, sample only")
    parser.add_argument("--out", default=None, help="folder for defaults.json")
    parser.add_argument("--optimizers", default=None,
                        help="comma-separated optimizers whose grids to run (default: all)")
    args = parser.parse_args(argv)

    print("# Defaults study (test log loss after 1, 2, 3 epochs; gap to the exact optimum)")
    print("current defaults: " + ", ".join(
        f"{n}: eta0={r.default_eta0:g} epsilon={r.default_epsilon:g} alpha={r.default_alpha:g}"
        + (f" rho={r.default_rho:g}" if r.default_rho else "")
        for n, r in RULES.items()))
    grids = QUICK_GRIDS if args.quick else GRIDS
    if args.optimizers:
        unknown = set(args.optimizers.split(",")) - set(grids)
        if unknown:
            parser.error(f"no grid for {', '.join(sorted(unknown))}; grids: {', '.join(grids)}")
        grids = {k: v for k, v in grids.items() if k in args.optimizers.split(",")}
    results = []
    if not args.quick and args.pypi and os.path.exists(args.pypi):
        data = load_pypi(args.pypi, n_features=2**20)
        results.append(study("pypi_popular (full)", *data, grids, Cs=[1.0, 3.0, 10.0]))
    data = load_pypi(SAMPLE, n_features=2**18)
    results.append(study("pypi_popular 100k sample", *data, grids,
                         Cs=[0.3, 1.0, 3.0] if not args.quick else [1.0]))
    X, y, _ = make_sparse_classification(n_samples=60000 if not args.quick else 10000,
                                         n_features=2**18, random_state=0)
    n = int(0.8 * X.shape[0])
    results.append(study("synthetic rare-feature", X[:n], X[n:], y[:n], y[n:], grids,
                         Cs=[0.3, 1.0, 3.0] if not args.quick else [1.0]))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "defaults.json"), "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
