"""Losses are numerically safe: finite values and derivatives at extreme margins."""

import warnings

import numpy as np
import pytest

from sparseopt import _spec
from sparseopt.losses import row_loss_grad


@pytest.mark.parametrize("loss", sorted(_spec.LOSSES))
@pytest.mark.parametrize("margin", [-1e4, -745.0, -30.0, 0.0, 30.0, 745.0, 1e4])
def test_extreme_margins_give_finite_loss_and_derivative(loss, margin):
    n_out = 3 if loss == "multinomial" else 1
    for target in range(n_out if loss == "multinomial" else 2):
        z = np.full(n_out, margin)
        if loss == "multinomial":
            z[target] = -margin  # the true class far from the others
        dl = np.empty(n_out)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = row_loss_grad(_spec.LOSSES[loss], z, float(target), 0.1, dl)
        assert np.isfinite(value) and value >= 0.0
        assert np.all(np.isfinite(dl))


def test_log_loss_is_exact_in_the_tails():
    dl = np.empty(1)
    # log(1 + exp(-1e4)) underflows to 0 and the loss of the wrong side is the margin.
    assert row_loss_grad(_spec.LOG_LOSS, np.array([1e4]), 1.0, 0.1, dl) == 0.0
    assert dl[0] == 0.0
    assert row_loss_grad(_spec.LOG_LOSS, np.array([1e4]), 0.0, 0.1, dl) == 1e4
    assert dl[0] == 1.0
    value = row_loss_grad(_spec.MULTINOMIAL, np.array([1e4, -1e4, 0.0]), 1.0, 0.1,
                          np.empty(3))
    assert value == 2e4
