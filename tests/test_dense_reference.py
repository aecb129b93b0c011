"""Checks of the test oracle itself (``dense_reference.py``), independent of the engine.

- loss derivatives agree with finite differences of the loss values;
- for plain SGD, the reference reproduces scikit-learn's ``SGDClassifier`` /
  ``SGDRegressor`` (dense data, no shuffling): losses, L2 (coupled = decoupled for SGD),
  the cumulative L1 penalty with ``lam = 0``, and the three schedules;
- a state dict continues a run exactly.
"""

import numpy as np
import pytest
from dense_reference import (
    BINARY_LOSSES,
    REGRESSION_LOSSES,
    STATE_NAMES,
    dense_fit,
    loss_value_and_derivative,
)
from sklearn.linear_model import SGDClassifier, SGDRegressor


@pytest.mark.parametrize("loss", BINARY_LOSSES + REGRESSION_LOSSES + ("multinomial",))
def test_loss_derivative_matches_finite_differences(loss):
    rng = np.random.default_rng(0)
    K = 3 if loss == "multinomial" else 1
    h = 1e-6
    for _ in range(200):
        z = rng.normal(scale=2.0, size=K)
        y = (
            float(rng.integers(K if K > 1 else 2))
            if loss not in REGRESSION_LOSSES
            else float(rng.normal())
        )
        _, dl = loss_value_and_derivative(loss, z, y, 0.3)
        for k in range(K):
            zp = z.copy()
            zm = z.copy()
            zp[k] += h
            zm[k] -= h
            fd = (
                loss_value_and_derivative(loss, zp, y, 0.3)[0]
                - loss_value_and_derivative(loss, zm, y, 0.3)[0]
            ) / (2 * h)
            # Skip the (measure-zero) kinks of the non-smooth losses.
            vp = loss_value_and_derivative(loss, zp, y, 0.3)[1][k]
            vm = loss_value_and_derivative(loss, zm, y, 0.3)[1][k]
            if vp != vm and loss in ("hinge", "epsilon_insensitive"):
                continue
            np.testing.assert_allclose(dl[k], fd, rtol=1e-5, atol=1e-6)


def _sgd_problem(seed, n=40, d=12, regression=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.3)
    if regression:
        y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    else:
        y = (X @ rng.normal(size=d) + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    sw = rng.uniform(0.5, 2.0, size=n)
    return X, y, sw


SKLEARN_CASES = [
    # (loss, penalty, alpha, learning_rate, eta0)
    ("log_loss", None, 0.0, "constant", 0.1),
    ("hinge", "l2", 0.01, "constant", 0.1),
    ("modified_huber", "l2", 0.01, "invscaling", 0.2),
    ("log_loss", "l1", 0.01, "constant", 0.2),
    ("log_loss", "l1", 0.005, "invscaling", 0.3),
    ("hinge", "l2", 0.01, "optimal", 0.0),
    ("modified_huber", "l2", 0.05, "optimal", 0.0),
    ("log_loss", "l1", 0.05, "optimal", 0.0),
    ("squared_error", "l2", 0.01, "constant", 0.02),
    ("huber", "l1", 0.01, "invscaling", 0.05),
    ("epsilon_insensitive", None, 0.0, "constant", 0.05),
    ("squared_error", "l2", 0.1, "optimal", 0.0),
]


@pytest.mark.parametrize("loss, penalty, alpha, learning_rate, eta0", SKLEARN_CASES)
def test_reference_sgd_matches_scikit_learn(loss, penalty, alpha, learning_rate, eta0):
    regression = loss in REGRESSION_LOSSES
    seed = [c[:4] for c in SKLEARN_CASES].index((loss, penalty, alpha, learning_rate))
    X, y, sw = _sgd_problem(seed, regression=regression)
    n_epochs = 3
    common = dict(
        penalty=penalty,
        alpha=alpha if penalty else 1e-4,
        learning_rate=learning_rate,
        eta0=eta0 or 0.01,
        power_t=0.5,
        max_iter=n_epochs,
        tol=None,
        shuffle=False,
        fit_intercept=True,
        average=False,
    )
    if regression:
        est = SGDRegressor(loss=loss, epsilon=0.1, **common)
    else:
        est = SGDClassifier(loss=loss, **common)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_weight=sw)
    lam = alpha if penalty == "l2" else 0.0
    lam1 = alpha if penalty == "l1" else 0.0
    ref = dense_fit(
        X,
        y,
        sw,
        [np.arange(len(y))] * n_epochs,
        "sgd",
        loss,
        1,
        eta0=eta0,
        lam=lam,
        lam1=lam1,
        learning_rate=learning_rate,
        power_t=0.5,
        epsilon_loss=0.1,
    )
    np.testing.assert_allclose(ref["coef"][:, 0], np.ravel(est.coef_), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ref["intercept"], np.ravel(est.intercept_), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimizer", sorted(STATE_NAMES))
def test_reference_state_continues(optimizer):
    X, y, sw = _sgd_problem(3)
    rng = np.random.default_rng(1)
    orders = [rng.permutation(len(y)) for _ in range(3)]
    kw = dict(
        eta0=1.0 if optimizer == "adadelta" else 0.05,
        lam=0.01,
        lam1=0.01 if optimizer in ("sgd", "adagrad", "ftrl") else 0.0,
    )
    whole = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, **kw)
    first = dense_fit(X, y, sw, orders[:1], optimizer, "log_loss", 1, **kw)
    rest = dense_fit(X, y, sw, orders[1:], optimizer, "log_loss", 1, state=first, **kw)
    assert rest["t"] == whole["t"] == 3 * len(y)
    for key in ("coef", "intercept") + STATE_NAMES[optimizer]:
        np.testing.assert_array_equal(rest[key], whole[key])
