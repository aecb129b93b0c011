"""Polyak averaging of SGD (``average``): lazy, and exact against a dense average."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import SGDClassifier

from sparseopt import SparseClassifier, _engine, _spec


def dense_averaged_sgd(X, y, sw, orders, settings, start):
    """Plain SGD with decoupled L2 on every coordinate, and the mean of w over steps."""
    hp = settings.hp
    w = np.zeros(X.shape[1])
    b = 0.0
    total, total_b, n, t = np.zeros_like(w), 0.0, 0, 0
    for order in orders:
        for i in order:
            t += 1
            if settings.sched_id == _spec.CONSTANT:
                eta = hp[_spec.ETA0]
            elif settings.sched_id == _spec.INVSCALING:
                eta = hp[_spec.ETA0] / t ** hp[_spec.POWER_T]
            else:
                eta = 1.0 / (hp[_spec.OPTIMAL_ALPHA] * (hp[_spec.OPTIMAL_INIT] + t - 1))
            z = X[i] @ w + b
            g = sw[i] * (1.0 / (1.0 + np.exp(-z)) - y[i])
            w = (1.0 - eta * hp[_spec.LAM]) * w - eta * g * X[i]
            b -= eta * g
            if t >= start:
                total += w
                total_b += b
                n += 1
    return total / n, total_b / n


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "optimal"])
@pytest.mark.parametrize("start", [1, 70])
@pytest.mark.parametrize("lam", [0.01, 0.6])  # 0.6 folds the global scale every few steps
def test_lazy_average_equals_dense_average(schedule, start, lam):
    rng = np.random.default_rng(0)
    X = sp.random(60, 40, density=0.1, format="csr", random_state=1)
    y = (rng.random(60) < 0.5).astype(float)
    sw = rng.random(60) + 0.5
    eta0 = 0.3
    settings = _engine.make_settings("sgd", "log_loss", eta0=eta0, lam=lam,
                                     learning_rate=schedule, average=start)
    model = _engine.LazyModel("sgd", 40, 1)
    orders = [rng.permutation(60) for _ in range(3)]
    for order in orders:
        model.run_epoch(X, y, sw, order, settings)
    w_bar, b_bar = dense_averaged_sgd(X.toarray(), y, sw, orders, settings, start)
    np.testing.assert_allclose(model.averaged_coef()[:, 0], w_bar, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.averaged_intercept()[0], b_bar, rtol=1e-9, atol=1e-12)


def test_average_is_rejected_where_it_cannot_be_exact():
    X = sp.random(30, 10, density=0.3, format="csr", random_state=0)
    y = np.arange(30) % 2
    for params in (dict(optimizer="adam", average=True),
                   dict(optimizer="sgd", penalty="l1", average=True)):
        with pytest.raises(ValueError, match="average is available"):
            SparseClassifier(**params).fit(X, y)


def test_averaged_sgd_is_close_to_scikit_learn_asgd():
    rng = np.random.default_rng(0)
    X = sp.random(2000, 200, density=0.05, format="csr", random_state=2)
    y = (X @ rng.normal(size=200) > 0).astype(int)
    ours = SparseClassifier(optimizer="sgd", average=True, max_iter=5, alpha=1e-4,
                            random_state=0).fit(X, y)
    theirs = SGDClassifier(loss="log_loss", average=True, max_iter=5, tol=None, alpha=1e-4,
                           random_state=0).fit(X, y)
    assert abs(ours.score(X, y) - theirs.score(X, y)) < 0.03
