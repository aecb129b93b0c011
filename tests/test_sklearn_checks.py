"""scikit-learn's own estimator checks, for both estimators, defaults and every optimizer."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseopt import SparseClassifier, SparseRegressor

_OPTIMIZERS = ["sgd", "rmsprop", "adadelta", "adam", "ftrl"]

# The defaults are chosen for real data (3 epochs over many rows); the checks' data sets
# have a few dozen rows, so the per-optimizer instances get more epochs. Adadelta's first
# steps are about sqrt(epsilon) while check_regressors_train sets alpha=0.01 (a 1% decay
# per step with Adadelta's eta0=1): a larger epsilon lets it move. Plain SGD on the
# squared error needs a step small enough for check_n_features_in's unscaled X ~ N(100, 1).
_REGRESSOR_PARAMS = {"sgd": dict(eta0=1e-5), "adadelta": dict(max_iter=100, epsilon=1e-4)}
ESTIMATORS = (
    [SparseClassifier(), SparseRegressor()]
    + [SparseClassifier(optimizer=o, max_iter=20) for o in _OPTIMIZERS]
    + [SparseRegressor(**{"optimizer": o, "max_iter": 20, **_REGRESSOR_PARAMS.get(o, {})})
       for o in _OPTIMIZERS]
)

# Checks that cannot hold for any stochastic method that takes a step per row, each with
# its reason (scikit-learn marks the same ones for its own SGD estimators).
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "a row of weight zero is still a step: it advances the step counter, the weight "
        "decay and the schedule, so it is not the same as removing the row"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "a row of weight zero is still a step (see the dense variant)"
    ),
}


def _expected_failed(estimator):
    if isinstance(estimator, SparseRegressor) and estimator.optimizer == "sgd":
        return {
            **EXPECTED_FAILED,
            "check_regressors_train": (
                "plain SGD with the step that check_n_features_in's unscaled data needs "
                "(eta0=1e-5) underfits this check's scaled data in 20 epochs; the default "
                "SparseRegressor() passes it"
            ),
        }
    return EXPECTED_FAILED


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    check(estimator)
