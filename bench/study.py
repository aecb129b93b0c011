"""The benchmark study: data sets, methods, timings, figures and tables.

``run(config)`` does everything ``python -m bench`` does; see ``bench/__main__.py`` for
the command line and ``README`` of the ``bench`` results (``results.md``) for what each
number means.
"""

import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier, SGDRegressor
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

import sparseopt
from sparseopt import SparseClassifier, SparseRegressor
from sparseopt.datasets import make_sparse_classification, make_sparse_regression
from sparseopt.rules import RULES

from . import figures, rare, report, trajectory
from .methods import Run, epoch_run, final_from_fit, quiet, select_on_validation

OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "ftrl")
SAMPLE = Path(__file__).resolve().parent / "data" / "pypi_popular_100k.tsv.gz"
ETA_FACTORS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)

FULL = dict(
    synth_n=100_000, synth_features=2**18, synth_nnz=20, zipf=1.1,
    real_rows=None, real_features=2**18,
    mc_n=24_000, mc_features=2**15, mc_classes=5,
    reg_n=40_000, reg_features=2**16,
    eta_factors=ETA_FACTORS, sweep_rows=12_000,
    alpha_grid=(1e-4, 1e-5, 1e-6, 1e-7), c_fits=3,
    ridge_grid=(1e-3, 1e-2, 1e-1),
    timing_repeats=3, repeat_budget=1.0, matvec_repeats=20, trajectory_steps=300,
)
QUICK = dict(
    FULL,
    synth_n=10_000, synth_features=2**14,
    real_rows=15_000, real_features=2**18,
    mc_n=5_000, mc_features=2**13,
    reg_n=5_000, reg_features=2**13,
    eta_factors=(0.1, 1.0, 10.0), sweep_rows=4_000,
    alpha_grid=(1e-4, 1e-6), c_fits=2, ridge_grid=(0.1, 1.0),
    timing_repeats=1, trajectory_steps=200,
)


@dataclass
class Config:
    out: str = "bench/results"
    data: str = None
    epochs: int = 3
    optimizers: tuple = OPTIMIZERS
    quick: bool = False
    seed: int = 0
    sizes: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.sizes:
            self.sizes = dict(QUICK if self.quick else FULL)


class Log:
    """Progress lines with the elapsed time."""

    def __init__(self):
        self.start = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def __call__(self, message):
        print(f"[{self.elapsed():6.1f}s] {message}", flush=True)


# --------------------------------------------------------------------------- data


def prepare(name, X_train, X_test, y_train, y_test, *, seed, task=None, coef=None,
            source="", matvec_repeats=20):
    """Everything the studies need about one train/test split."""
    X_train = sp.csr_matrix(X_train, dtype=np.float64)
    X_test = sp.csr_matrix(X_test, dtype=np.float64)
    for X in (X_train, X_test):
        X.sum_duplicates()
        X.sort_indices()
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if task is None:
        kind = type_of_target(y_train)
        task = {"binary": "binary", "multiclass": "multiclass"}.get(kind, "regression")
    data = {
        "name": name, "task": task, "source": source,
        "X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test,
        "coef": coef,
    }
    stratify = None
    if task != "regression":
        data["classes"] = np.unique(y_train)
        stratify = y_train
    (data["X_fit"], data["X_val"], data["y_fit"], data["y_val"]) = train_test_split(
        X_train, y_train, test_size=0.2, random_state=seed, stratify=stratify
    )
    data["counts"] = rare.document_frequency(X_train)
    data["matvec_seconds"] = matvec_seconds(X_train, matvec_repeats, seed)
    data["info"] = {
        "source": source, "task": task,
        "n_train": int(X_train.shape[0]), "n_test": int(X_test.shape[0]),
        "n_features": int(X_train.shape[1]), "nnz_train": int(X_train.nnz),
        "nnz_per_row": float(X_train.nnz / max(X_train.shape[0], 1)),
        "features_seen_in_train": int(np.sum(data["counts"] > 0)),
        "matvec_seconds": data["matvec_seconds"],
    }
    if task == "binary":
        pos = float(np.mean(y_train == data["classes"][1]))
        p = min(max(pos, 1e-15), 1 - 1e-15)
        yt = np.mean(y_test == data["classes"][1])
        data["info"]["positive_rate_train"] = pos
        data["info"]["constant_log_loss"] = float(-(yt * math.log(p) + (1 - yt) * math.log(1 - p)))
    elif task == "multiclass":
        prior = np.array([np.mean(y_train == c) for c in data["classes"]])
        freq = np.array([np.mean(y_test == c) for c in data["classes"]])
        data["info"]["constant_log_loss"] = float(-np.sum(freq * np.log(np.maximum(prior, 1e-15))))
    else:
        data["info"]["constant_rmse"] = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    return data


def matvec_seconds(X, repeats, seed):
    """Median wall time of one scipy CSR mat-vec ``X @ w`` (dense float64 ``w``)."""
    w = np.random.default_rng(seed).standard_normal(X.shape[1])
    X @ w
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        X @ w
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def synthetic_binary(cfg):
    s = cfg.sizes
    X, y, coef = make_sparse_classification(
        n_samples=s["synth_n"], n_features=s["synth_features"], nnz_per_row=s["synth_nnz"],
        zipf_exponent=s["zipf"], random_state=cfg.seed,
    )
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=cfg.seed,
                                          stratify=y)
    source = (f"make_sparse_classification(n_samples={s['synth_n']}, "
              f"n_features=2**{int(math.log2(s['synth_features']))}, "
              f"nnz_per_row={s['synth_nnz']}, zipf_exponent={s['zipf']}, "
              f"random_state={cfg.seed}); 80/20 split")
    return prepare("synthetic", Xtr, Xte, ytr, yte, seed=cfg.seed, task="binary",
                   coef=coef, source=source, matvec_repeats=s["matvec_repeats"])


def real_data(cfg):
    from . import data_io

    s = cfg.sizes
    if cfg.data:
        path = Path(cfg.data)
        Xtr, Xte, ytr, yte = data_io.load_dataset(
            str(path), n_features=s["real_features"], test_size=0.2, random_state=cfg.seed)
        name = path.name.split(".")[0]
        source = f"{path} via load_dataset (hashed to {s['real_features']} features); 80/20"
    else:
        Xtr, Xte, ytr, yte = data_io.load_pypi(
            str(SAMPLE), n_features=s["real_features"], test_size=0.2, random_state=cfg.seed)
        name = "pypi_sample"
        source = (f"{SAMPLE.relative_to(SAMPLE.parents[2])} via load_pypi "
                  f"(hashed to 2**{int(math.log2(s['real_features']))} features); 80/20")
    if s["real_rows"]:
        n_train = int(s["real_rows"] * 0.8)
        n_test = s["real_rows"] - n_train
        Xtr, ytr = Xtr[:n_train], np.asarray(ytr)[:n_train]
        Xte, yte = Xte[:n_test], np.asarray(yte)[:n_test]
        source += f"; first {n_train} train / {n_test} test rows (--quick)"
    return prepare(name, Xtr, Xte, ytr, yte, seed=cfg.seed, source=source,
                   matvec_repeats=s["matvec_repeats"])


def synthetic_multiclass(cfg):
    s = cfg.sizes
    X, y, coef = make_sparse_classification(
        n_samples=s["mc_n"], n_features=s["mc_features"], nnz_per_row=s["synth_nnz"],
        zipf_exponent=s["zipf"], n_classes=s["mc_classes"], random_state=cfg.seed + 1,
    )
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=cfg.seed,
                                          stratify=y)
    source = (f"make_sparse_classification(n_samples={s['mc_n']}, "
              f"n_features=2**{int(math.log2(s['mc_features']))}, n_classes={s['mc_classes']}, "
              f"nnz_per_row={s['synth_nnz']}, zipf_exponent={s['zipf']}); 80/20 split")
    return prepare("synthetic_multiclass", Xtr, Xte, ytr, yte, seed=cfg.seed,
                   task="multiclass", coef=coef, source=source,
                   matvec_repeats=s["matvec_repeats"])


def synthetic_regression(cfg):
    s = cfg.sizes
    X, y, coef = make_sparse_regression(
        n_samples=s["reg_n"], n_features=s["reg_features"], nnz_per_row=s["synth_nnz"],
        zipf_exponent=s["zipf"], noise=0.1, random_state=cfg.seed + 2,
    )
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=cfg.seed)
    source = (f"make_sparse_regression(n_samples={s['reg_n']}, "
              f"n_features=2**{int(math.log2(s['reg_features']))}, noise=0.1, "
              f"nnz_per_row={s['synth_nnz']}, zipf_exponent={s['zipf']}); 80/20 split")
    return prepare("synthetic_regression", Xtr, Xte, ytr, yte, seed=cfg.seed,
                   task="regression", coef=coef, source=source,
                   matvec_repeats=s["matvec_repeats"])


# --------------------------------------------------------------------------- warm-up


def _kernel_of(opt):
    return "adam" if opt == "adamw" else opt


def _tiny_fits(opt):
    """One tiny fit per loss family (binary, multinomial, regression) with ``opt``."""
    X, y, _ = make_sparse_classification(200, 64, 5, random_state=0)
    Xm, ym, _ = make_sparse_classification(200, 64, 5, n_classes=3, random_state=0)
    Xr, yr, _ = make_sparse_regression(200, 64, 5, random_state=0)
    start = time.perf_counter()
    SparseClassifier(optimizer=opt, max_iter=1, random_state=0).fit(X, y)
    SparseClassifier(optimizer=opt, max_iter=1, random_state=0).fit(Xm, ym)
    SparseRegressor(optimizer=opt, max_iter=1, random_state=0).fit(Xr, yr)
    return time.perf_counter() - start


def compile_kernels(optimizers):
    """Tiny fits of each optimizer in this process: {optimizer: seconds}."""
    return {opt: _tiny_fits(opt) for opt in optimizers}


def warm_up(optimizers, log, parallel=True):
    """Compile (or load from Numba's cache) every kernel before anything is timed.

    With an empty cache compiling is the slowest part of a quick run. The first kernel
    is done here; if it was not a cache hit (over 1 s) and there are two or more CPUs,
    half of the remaining kernels are compiled in a second process (spawned; it writes
    Numba's on-disk cache) while this process compiles the others, and this process then
    loads that half from the cache. Returns ``(first, here)``: the seconds of each
    optimizer's first tiny fits (compile or cache load, in whichever process did them)
    and the seconds of the tiny fits in this process once everything is compiled.
    """
    kernels = list(dict.fromkeys(_kernel_of(o) for o in optimizers))
    # adam (the slowest to compile) goes last: it then lands on this process's side.
    kernels.sort(key=lambda k: k == "adam")
    first = {kernels[0]: _tiny_fits(kernels[0])}
    log(f"warm-up {kernels[0]}: {first[kernels[0]]:.2f} s (compile or cache load)")
    rest = kernels[1:]
    pool = future = None
    if parallel and first[kernels[0]] > 1.0 and len(rest) > 1 and (os.cpu_count() or 1) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        theirs, rest = rest[0::2], rest[1::2]
        try:
            pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
            future = pool.submit(compile_kernels, theirs)
            log(f"warm-up: compiling {', '.join(theirs)} in a worker process meanwhile")
        except Exception as exc:  # no second process: compile everything here
            log(f"warm-up: no worker process ({exc}); compiling here")
            pool, rest = None, kernels[1:]
    for k in rest:
        first[k] = _tiny_fits(k)
        log(f"warm-up {k}: {first[k]:.2f} s (compile or cache load)")
    if pool is not None:
        try:
            for k, v in future.result(timeout=900).items():
                first[k] = v
                log(f"warm-up {k}: {v:.2f} s (compile or cache load, worker process)")
        except Exception as exc:
            log(f"warm-up worker failed ({exc}); compiling here")
        pool.shutdown()
    here = {opt: _tiny_fits(opt) for opt in optimizers}
    first = {o: first.get(_kernel_of(o), here[o]) for o in optimizers}
    SGDClassifier(loss="log_loss", max_iter=1, tol=None).fit(
        *make_sparse_classification(200, 64, 5, random_state=0)[:2])
    log("warm-up done; tiny fits now take " +
        ", ".join(f"{o} {here[o] * 1e3:.0f} ms" for o in optimizers))
    return first, here


# --------------------------------------------------------------------------- studies


def _sparse_classifier(opt, cfg, **kw):
    return lambda: SparseClassifier(optimizer=opt, max_iter=cfg.epochs,
                                    random_state=cfg.seed, **kw)


def _sgd_classifier(cfg, **kw):
    return lambda: SGDClassifier(loss="log_loss", max_iter=cfg.epochs, tol=None,
                                 random_state=cfg.seed, **kw)


def _timing_kw(cfg):
    s = cfg.sizes
    return {"repeat_budget": s["repeat_budget"], "max_repeats": s["timing_repeats"]}


C_LADDER = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def _logistic_floor(data, cfg, log):
    """Exact L2 optimum: ``LogisticRegression(solver="lbfgs")``, C chosen on validation.

    C walks a half-decade ladder (``C_LADDER``): fits at C=1 and C=3 on the fitting part
    of the training rows (``tol=1e-4``), then further steps in the direction where the
    validation log loss falls, until it rises again (at most ``c_fits`` fits). The
    chosen C is refitted on all training rows with ``tol=1e-5``, warm-started from its
    validation fit.
    """
    max_fits = cfg.sizes["c_fits"]
    ladder = C_LADDER
    scores, models = {}, {}

    def score(i):
        if i not in scores:
            est = LogisticRegression(C=ladder[i], solver="lbfgs", max_iter=1000, tol=1e-4)
            est.fit(data["X_fit"], data["y_fit"])
            from .methods import evaluate

            scores[i] = evaluate(est, data["X_val"], data["y_val"], data["task"],
                                 data["classes"])[0]["test_log_loss"]
            models[i] = est
        return scores[i]

    i = ladder.index(1.0)
    best = i + 1 if score(i + 1) < score(i) else i
    step = 1 if best == i + 1 else -1
    while len(scores) < max_fits and 0 <= best + step < len(ladder):
        if score(best + step) < scores[best]:
            best += step
        else:
            break
    C = ladder[best]
    est = LogisticRegression(C=C, solver="lbfgs", max_iter=1000, tol=1e-5, warm_start=True)
    est.coef_ = models[best].coef_.copy()
    est.intercept_ = models[best].intercept_.copy()
    tried = {f"C={ladder[k]:g}": v for k, v in sorted(scores.items())}
    run = Run(f"LogisticRegression(C={C:g})", "exact",
              params={"C": C, "solver": "lbfgs", "validation": tried})
    final_from_fit(run, est, data)
    run.n_iter = int(np.max(est.n_iter_))
    # One L-BFGS iteration evaluates the loss and gradient over all rows: one pass.
    run.epoch_seconds = [run.fit_seconds / max(run.n_iter, 1)]
    run.note = (f"exact L2 optimum (lbfgs, tol 1e-5); C={C:g} chosen on validation among "
                f"{', '.join(tried)}; refit warm-started from the validation fit: "
                f"{run.n_iter} L-BFGS iterations, {run.fit_seconds:.2f} s")
    log(f"  {run.name}: {_fmt(run)}; validation: "
        + ", ".join(f"{k} {v:.4f}" for k, v in tried.items()))
    return run


def classification_study(data, cfg, log):
    """Every optimizer at its defaults, SGDClassifier (default and best alpha), the floor."""
    runs = []
    for opt in cfg.optimizers:
        run = Run(opt, "sparseopt", params={
            "optimizer": opt, "eta0": RULES["adam" if opt == "adamw" else opt].default_eta0,
            "epochs": cfg.epochs})
        epoch_run(run, _sparse_classifier(opt, cfg), data, cfg.epochs, **_timing_kw(cfg))
        log(f"  {opt}: {_fmt(run)}")
        runs.append(run)

    run = Run("SGDClassifier", "sklearn-sgd", params={"alpha": 1e-4, "loss": "log_loss"})
    epoch_run(run, _sgd_classifier(cfg), data, cfg.epochs, **_timing_kw(cfg))
    final_from_fit(run, _sgd_classifier(cfg)(), data)
    run.note = "metrics from fit(max_iter=epochs, tol=None); curve and timing from partial_fit"
    log(f"  SGDClassifier: {_fmt(run)}")
    runs.append(run)

    grid = cfg.sizes["alpha_grid"]
    best, scores = select_on_validation(lambda a: _sgd_classifier(cfg, alpha=a)(), grid,
                                        data, "alpha")
    run = Run(f"SGDClassifier(alpha={best:g})", "sklearn-sgd",
              params={"alpha": best, "loss": "log_loss", "validation": scores})
    epoch_run(run, _sgd_classifier(cfg, alpha=best), data, cfg.epochs, **_timing_kw(cfg))
    final_from_fit(run, _sgd_classifier(cfg, alpha=best)(), data)
    run.note = (f"alpha from {list(grid)} on validation; metrics from "
                "fit(max_iter=epochs, tol=None)")
    log(f"  {run.name}: {_fmt(run)}")
    runs.append(run)

    runs.append(_logistic_floor(data, cfg, log))
    return runs


def multiclass_study(data, cfg, log):
    """Multinomial vs one-vs-rest SparseClassifier vs SGDClassifier (OvR) vs the floor."""
    opts = [o for o in ("adagrad", "sgd") if o in cfg.optimizers] or list(cfg.optimizers[:1])
    runs = []
    for opt in opts:
        for mc in ("multinomial", "ovr"):
            run = Run(f"{opt} ({mc})", "sparseopt", params={"optimizer": opt, "multi_class": mc})
            epoch_run(run, _sparse_classifier(opt, cfg, multi_class=mc), data, cfg.epochs,
                      **_timing_kw(cfg))
            log(f"  {run.name}: {_fmt(run)}")
            runs.append(run)
    run = Run("SGDClassifier (ovr)", "sklearn-sgd", params={"alpha": 1e-4})
    epoch_run(run, _sgd_classifier(cfg), data, cfg.epochs, **_timing_kw(cfg))
    final_from_fit(run, _sgd_classifier(cfg)(), data)
    log(f"  {run.name}: {_fmt(run)}")
    runs.append(run)
    runs.append(_logistic_floor(data, cfg, log))
    return runs


def regression_study(data, cfg, log):
    """SparseRegressor per optimizer vs SGDRegressor (defaults) vs Ridge (alpha on val)."""
    runs = []
    for opt in cfg.optimizers:
        run = Run(opt, "sparseopt", params={"optimizer": opt})
        epoch_run(run, lambda o=opt: SparseRegressor(optimizer=o, max_iter=cfg.epochs,
                                                     random_state=cfg.seed),
                  data, cfg.epochs, **_timing_kw(cfg))
        log(f"  {opt}: {_fmt(run)}")
        runs.append(run)

    def sgd_reg():
        return SGDRegressor(max_iter=cfg.epochs, tol=None, random_state=cfg.seed)

    run = Run("SGDRegressor", "sklearn-sgd", params={"alpha": 1e-4})
    epoch_run(run, sgd_reg, data, cfg.epochs, **_timing_kw(cfg))
    final_from_fit(run, sgd_reg(), data)
    log(f"  SGDRegressor: {_fmt(run)}")
    runs.append(run)

    grid = cfg.sizes["ridge_grid"]
    def ridge(a):
        return Ridge(alpha=a, solver="lsqr", tol=1e-6)

    best, scores = select_on_validation(ridge, grid, data, "alpha")
    run = Run(f"Ridge(alpha={best:g})", "exact", params={"alpha": best, "validation": scores})
    est = final_from_fit(run, ridge(best), data)
    n_iter = getattr(est, "n_iter_", None)
    run.n_iter = int(np.max(n_iter)) if n_iter is not None else 1
    # One LSQR iteration is one pass over the rows (X @ v and X.T @ u).
    run.epoch_seconds = [run.fit_seconds / max(run.n_iter, 1)]
    run.note = (f"ridge solution by LSQR (tol 1e-6); alpha from {list(grid)} on "
                f"validation; {run.n_iter} iterations, {run.fit_seconds:.2f} s in all")
    log(f"  {run.name}: {run.metrics} ({run.fit_seconds:.2f} s)")
    runs.append(run)
    return runs


def eta_sweep(data, cfg, log, alias_adamw):
    """Test loss against eta0 = default * factor, on a subsample of the training rows.

    sgd is swept with the constant schedule (its default, scikit-learn's "optimal"
    schedule, has no eta0). Divergence gives None.
    """
    n = min(cfg.sizes["sweep_rows"], data["X_train"].shape[0])
    X, y = data["X_train"][:n], data["y_train"][:n]
    classes = data["classes"]
    factors = cfg.sizes["eta_factors"]
    out = {"n_train_rows": int(n), "epochs": cfg.epochs, "factors": list(factors),
           "losses": {}, "defaults": {}, "notes": []}
    from .methods import classification_metrics

    for opt in cfg.optimizers:
        if opt == "adamw" and alias_adamw and "adam" in out["losses"]:
            out["losses"]["adamw"] = list(out["losses"]["adam"])
            out["defaults"]["adamw"] = out["defaults"]["adam"]
            out["notes"].append("adamw: same computation as adam in sparseopt (weights "
                                "verified bit-identical on the main run), values reused")
            continue
        default = RULES["adam" if opt == "adamw" else opt].default_eta0
        out["defaults"][opt] = default
        kw = {"learning_rate": "constant"} if opt == "sgd" else {}
        losses = []
        for f in factors:
            est = SparseClassifier(optimizer=opt, eta0=default * f, max_iter=cfg.epochs,
                                   random_state=cfg.seed, **kw)
            try:
                est.fit(X, y)
                proba = est.predict_proba(data["X_test"])
                losses.append(classification_metrics(data["y_test"], proba, classes)
                              ["test_log_loss"])
            except Exception as exc:  # diverged (DivergenceError) or rejected
                losses.append(None)
                out["notes"].append(f"{opt} eta0={default * f:g}: {str(exc)[:80]}")
        out["losses"][opt] = losses
        log(f"  eta sweep {opt}: " + ", ".join(
            "div" if v is None else f"{v:.3f}" for v in losses))
    # Reference: SparseClassifier(sgd) at its default ('optimal' schedule), same rows.
    if "sgd" in cfg.optimizers:
        est = SparseClassifier(optimizer="sgd", max_iter=cfg.epochs, random_state=cfg.seed)
        est.fit(X, y)
        out["sgd_optimal_default"] = classification_metrics(
            data["y_test"], est.predict_proba(data["X_test"]), classes)["test_log_loss"]
    return out


def _fmt(run):
    if run.error:
        return f"FAILED ({run.error[:100]})"
    if run.diverged:
        return f"DIVERGED ({run.note[:60]})"
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in run.metrics.items())
    return (f"{metrics}, {run.seconds_per_epoch * 1e3:.1f} ms/epoch "
            f"(median of {len(run.epoch_seconds)})")


# --------------------------------------------------------------------------- rows


def rows_of(runs, data):
    """Table rows (dicts of finite numbers and strings) of one data set."""
    task = data["task"]
    ref_name = "SGDRegressor" if task == "regression" else "SGDClassifier"
    ref = next((r for r in runs if r.name.split(" ")[0] == ref_name), None)
    ref_seconds = ref.seconds_per_epoch if ref else float("nan")
    ratio_key = "ratio_to_sgdregressor" if task == "regression" else "ratio_to_sgdclassifier"
    rows = []
    for r in runs:
        spe = r.seconds_per_epoch
        row = {"method": r.name, "kind": r.kind}
        row.update(r.metrics)
        row.update({
            "seconds_per_epoch": spe,
            ratio_key: spe / ref_seconds,
            "ratio_to_matvec": spe / data["matvec_seconds"],
            "fit_seconds": r.fit_seconds,
            "epochs_or_iterations": r.n_iter,
            "epoch_seconds_all": list(r.epoch_seconds),
        })
        if r.diverged:
            row["diverged"] = True
        if r.error:
            row["error"] = r.error
        if r.note:
            row["note"] = r.note
        params = {k: v for k, v in r.params.items() if k != "validation"}
        if params:
            row["params"] = params
        if "validation" in r.params:
            row["validation_scores"] = r.params["validation"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- main


def run(cfg):
    """The whole study; single-threaded BLAS/OpenMP (the machine may be shared: threads
    oversubscribe, and every method then runs on one core, as sparseopt's kernels do)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run(cfg)


def _run(cfg):
    log = Log()
    quiet()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    bad = [o for o in cfg.optimizers if o not in OPTIMIZERS]
    if bad:
        raise SystemExit(f"unknown optimizers {bad}; choose from {list(OPTIMIZERS)}")
    log(f"sparseopt benchmark: {'quick' if cfg.quick else 'full'} run, epochs={cfg.epochs}, "
        f"seed={cfg.seed}, optimizers={','.join(cfg.optimizers)}, out={out}")
    results = {
        "config": {k: v for k, v in asdict(cfg).items() if k != "sizes"},
        "sizes": cfg.sizes,
        "environment": environment(),
        "datasets": {},
        "figures": {},
    }

    log("warm-up: one tiny fit per optimizer (compile time, excluded from all timings)")
    first, here = warm_up(cfg.optimizers, log)
    results["warmup_seconds"] = first
    results["warmup_seconds_after_compile"] = here

    log("trajectory picture (2-D logistic regression, numpy optimizers)")
    traj = trajectory.compute(n_steps=cfg.sizes["trajectory_steps"], seed=cfg.seed)
    results["figures"]["trajectories"] = figures.trajectory_figure(
        traj, out / "d_trajectories.png")
    results["trajectory"] = {
        "n_points": int(len(traj["y"])), "n_steps": traj["n_steps"], "batch": traj["batch"],
        "lam": traj["lam"], "start": traj["start"].tolist(), "w_star": traj["w_star"].tolist(),
        "f_star": traj["f_star"], "step_sizes": traj["step_sizes"],
        "final_objective": traj["final_objective"],
    }

    sweeps = {}
    for loader in (synthetic_binary, real_data):
        label = "synthetic binary" if loader is synthetic_binary else "real data"
        log(f"{label}: loading")
        data = loader(cfg)
        name = data["name"]
        log(f"{label}: {name}: {data['info']['n_train']} train / {data['info']['n_test']} "
            f"test rows, {data['info']['n_features']} features, "
            f"{data['info']['nnz_per_row']:.1f} nnz/row, task {data['task']}, "
            f"mat-vec {data['matvec_seconds'] * 1e3:.2f} ms")
        study = regression_study if data["task"] == "regression" else classification_study
        runs = study(data, cfg, log)
        entry = {**data["info"], "rows": rows_of(runs, data)}
        by_name = {r.name: r for r in runs}
        alias = ("adam" in by_name and "adamw" in by_name and by_name["adam"].coef is not None
                 and by_name["adamw"].coef is not None
                 and np.array_equal(by_name["adam"].coef, by_name["adamw"].coef))
        entry["adam_adamw_identical"] = bool(alias)
        results["figures"][f"curves_{name}"] = figures.curves_figure(
            name, runs, data, out / f"a_curves_{name}.png")
        if data["task"] != "regression":
            log(f"{name}: rare-feature view")
            entry["rare"] = rare_view(data, runs)
            results["figures"][f"rare_{name}"] = figures.rare_figure(
                name, entry["rare"], data, out / f"c_rare_{name}.png")
            log(f"{name}: eta0 sweep on {min(cfg.sizes['sweep_rows'], data['info']['n_train'])}"
                f" training rows")
            sweeps[name] = eta_sweep(data, cfg, log, alias)
            sweeps[name]["floor"] = runs[-1].metrics.get("test_log_loss")
            sweeps[name]["constant_log_loss"] = data["info"].get("constant_log_loss")
            entry["eta_sweep"] = sweeps[name]
        entry["curves"] = {r.name: {"epochs": list(range(1, len(r.curve_loss) + 1)),
                                    "test_loss": r.curve_loss, "seconds": r.curve_seconds}
                           for r in runs if r.curve_loss}
        results["datasets"][name] = entry
        del data, runs

    if sweeps:
        results["figures"]["eta_sweep"] = figures.eta_sweep_figure(sweeps, out / "b_eta_sweep.png")

    log("multiclass study")
    data = synthetic_multiclass(cfg)
    runs = multiclass_study(data, cfg, log)
    results["datasets"][data["name"]] = {**data["info"], "rows": rows_of(runs, data)}

    log("regression study")
    data = synthetic_regression(cfg)
    runs = regression_study(data, cfg, log)
    results["datasets"][data["name"]] = {**data["info"], "rows": rows_of(runs, data)}
    results["figures"]["regression_curves"] = figures.curves_figure(
        data["name"], runs, data, out / "e_curves_regression.png")

    results["wall_seconds"] = log.elapsed()
    report.write(results, out)
    print()
    print(report.text_tables(results))
    log(f"done: results.md, results.json and {len(results['figures'])} figures in {out}")
    return results


def rare_view(data, runs):
    view = {}
    ok = [r for r in runs if not r.diverged and r.prediction is not None]
    counts = data["counts"]
    view["feature_buckets"] = {
        "buckets": sorted(int(k) for k in np.unique(rare.bucket_of(counts))),
    }
    view["feature_buckets"]["n_features"] = [
        int(np.sum(rare.bucket_of(counts) == k)) for k in view["feature_buckets"]["buckets"]]
    view["feature_buckets"]["labels"] = [
        rare.bucket_label(k) for k in view["feature_buckets"]["buckets"]]
    if data.get("coef") is not None and data["task"] == "binary":
        view["coef_error"] = rare.coef_error_by_bucket(
            counts, data["coef"], {r.name: r.coef for r in ok})
    probas = {r.name: r.prediction for r in ok}
    view["rows_rarest"] = rare.loss_by_bucket(
        rare.rarest_feature_bucket(counts, data["X_test"]), data["y_test"], probas,
        data["classes"])
    floor = next((r for r in ok if r.kind == "exact"), None)
    if floor is not None and floor.coef is not None and floor.coef.shape[0] == 1:
        view["rows_strongest"] = rare.loss_by_bucket(
            rare.strongest_feature_bucket(counts, data["X_test"], floor.coef[0]),
            data["y_test"], probas, data["classes"])
        view["rows_strongest"]["reference"] = floor.name
    return view


def environment():
    import numba
    import sklearn

    return {
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "numpy": np.__version__, "sklearn": sklearn.__version__,
        "numba": numba.__version__, "sparseopt": sparseopt.__version__,
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR", ""),
    }
