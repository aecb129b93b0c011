"""Training, timing and evaluation of one method on one data set.

Every iterative method is trained epoch by epoch with ``partial_fit`` (one call = one pass
over the training rows) and the wall time of each call is recorded; the test metrics are
computed after each epoch, outside the timed region. For ``SparseClassifier`` three
``partial_fit`` epochs are bit for bit the same computation as ``fit(max_iter=3)`` (the
package guarantees it), so the last point of the curve is the fitted model.
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from sparseopt import DivergenceError

PROBA_FLOOR = 1e-15


@dataclass
class Run:
    """What one method produced on one data set."""

    name: str
    kind: str  # "sparseopt", "sklearn-sgd", "exact"
    params: dict = field(default_factory=dict)
    epoch_seconds: list = field(default_factory=list)  # every timed epoch (all repeats)
    curve_loss: list = field(default_factory=list)  # test loss after each epoch (1st run)
    curve_seconds: list = field(default_factory=list)  # cumulative train s (1st run)
    metrics: dict = field(default_factory=dict)  # final test metrics
    fit_seconds: float = float("nan")
    n_iter: int = 0
    prediction: object = None  # test probabilities (classification) or predictions
    coef: object = None
    diverged: bool = False
    error: str = ""
    note: str = ""

    @property
    def seconds_per_epoch(self):
        if self.epoch_seconds:
            return float(np.median(self.epoch_seconds))
        return float("nan")


def quiet():
    """Silence the expected "max_iter reached" warnings of fixed-epoch sklearn fits."""
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message=".*max_iter.*")


def classification_metrics(y_true, proba, classes):
    proba = np.clip(proba, PROBA_FLOOR, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    out = {"test_log_loss": float(log_loss(y_true, proba, labels=classes))}
    if len(classes) == 2:
        out["auc"] = float(roc_auc_score(y_true, proba[:, 1]))
    else:
        out["accuracy"] = float(accuracy_score(y_true, classes[np.argmax(proba, axis=1)]))
    return out


def regression_metrics(y_true, pred):
    return {"test_rmse": float(np.sqrt(np.mean((np.asarray(pred) - y_true) ** 2)))}


def row_log_loss(y_true, proba, classes):
    """Per-row log loss (natural log), rows in the order of ``y_true``."""
    idx = np.searchsorted(classes, y_true)
    p = np.clip(proba[np.arange(len(y_true)), idx], PROBA_FLOOR, 1.0)
    return -np.log(p)


def evaluate(est, X_test, y_test, task, classes):
    if task == "regression":
        pred = est.predict(X_test)
        return regression_metrics(y_test, pred), pred
    proba = est.predict_proba(X_test)
    return classification_metrics(y_test, proba, classes), proba


def main_metric(task):
    return "test_rmse" if task == "regression" else "test_log_loss"


def epoch_run(run, make, data, epochs, *, repeat_budget=0.0, max_repeats=1):
    """Train ``make()`` for ``epochs`` partial_fit epochs, timing each, evaluating after each.

    If the first run took less than ``repeat_budget`` seconds of training, up to
    ``max_repeats - 1`` more runs (not evaluated) add their epoch times, so the median
    is over more measurements where that is cheap. Returns the estimator of the first run.
    """
    X, y, X_test, y_test = data["X_train"], data["y_train"], data["X_test"], data["y_test"]
    task, classes = data["task"], data.get("classes")
    pf_kwargs = {} if task == "regression" else {"classes": classes}
    est = make()
    total = 0.0
    try:
        for _ in range(epochs):
            start = time.perf_counter()
            est.partial_fit(X, y, **pf_kwargs)
            seconds = time.perf_counter() - start
            total += seconds
            run.epoch_seconds.append(seconds)
            run.curve_seconds.append(total)
            metrics, prediction = evaluate(est, X_test, y_test, task, classes)
            run.curve_loss.append(metrics[main_metric(task)])
    except DivergenceError as exc:
        run.diverged = True
        run.note = str(exc)
        return None
    except Exception as exc:  # a broken method must not stop the study: report it
        run.error = f"{type(exc).__name__}: {exc}"
        run.note = f"FAILED: {run.error}"
        run.epoch_seconds, run.curve_loss, run.curve_seconds = [], [], []
        return None
    run.metrics, run.prediction = metrics, prediction
    run.n_iter = epochs
    run.fit_seconds = total
    run.coef = np.asarray(est.coef_, dtype=float).copy()
    repeats = 1
    while repeats < max_repeats and total < repeat_budget:
        est2 = make()
        for _ in range(epochs):
            start = time.perf_counter()
            est2.partial_fit(X, y, **pf_kwargs)
            run.epoch_seconds.append(time.perf_counter() - start)
        repeats += 1
    return est


def timed_fit(est, X, y):
    start = time.perf_counter()
    est.fit(X, y)
    return est, time.perf_counter() - start


def final_from_fit(run, est, data):
    """Replace a Run's final metrics by those of ``est`` fitted on the training rows."""
    est, seconds = timed_fit(est, data["X_train"], data["y_train"])
    run.metrics, run.prediction = evaluate(est, data["X_test"], data["y_test"], data["task"],
                                           data.get("classes"))
    run.fit_seconds = seconds
    run.coef = np.asarray(est.coef_, dtype=float).copy()
    run.n_iter = int(np.max(getattr(est, "n_iter_", 0) or 0))
    return est


def select_on_validation(make, grid, data, param):
    """The grid value whose model, fitted on ``X_fit``, has the best validation loss."""
    task, classes = data["task"], data.get("classes")
    scores = {}
    for value in grid:
        est = make(value)
        try:
            est.fit(data["X_fit"], data["y_fit"])
        except DivergenceError:
            scores[value] = float("inf")
            continue
        metrics, _ = evaluate(est, data["X_val"], data["y_val"], task, classes)
        scores[value] = metrics[main_metric(task)]
    best = min(grid, key=lambda v: scores[v])
    return best, {f"{param}={v:g}": s for v, s in scores.items()}
