"""Users who switch from SGDClassifier lose nothing: same algorithm, same result."""

import os

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

from sparseopt import SparseClassifier

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "bench", "data",
                      "pypi_popular_100k.tsv.gz")


@pytest.fixture(scope="module")
def pypi_sample():
    if not os.path.exists(SAMPLE):
        pytest.fail(f"the shipped sample {SAMPLE} is missing")
    from bench.data_io import load_pypi

    return load_pypi(SAMPLE, n_features=2**18)


@pytest.mark.parametrize("alpha", [1e-4, 1e-5, 1e-6, 1e-7])
def test_sgd_optimal_matches_sgdclassifier_on_pypi_sample(pypi_sample, alpha):
    X_train, X_test, y_train, y_test = pypi_sample
    ours = SparseClassifier(optimizer="sgd", learning_rate="optimal", penalty="l2",
                            alpha=alpha, max_iter=3, random_state=0).fit(X_train, y_train)
    theirs = SGDClassifier(loss="log_loss", alpha=alpha, max_iter=3, tol=None,
                           random_state=0).fit(X_train, y_train)
    ours_loss = log_loss(y_test, ours.predict_proba(X_test))
    theirs_loss = log_loss(y_test, theirs.predict_proba(X_test))
    assert ours_loss <= 1.02 * theirs_loss, (ours_loss, theirs_loss)
    assert np.isfinite(ours_loss)
