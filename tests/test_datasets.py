"""Tests of the synthetic sparse data generators in ``sparseopt.datasets``."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from sparseopt import datasets
from sparseopt.datasets import make_sparse_classification, make_sparse_regression


def assert_canonical_unit_rows(X, n_samples, n_features):
    assert sp.isspmatrix_csr(X)
    assert X.shape == (n_samples, n_features)
    assert X.dtype == np.float64
    assert X.indices.dtype == np.int32 and X.indptr.dtype == np.int32
    row_nnz = np.diff(X.indptr)
    assert row_nnz.min() >= 1
    # Canonical: strictly increasing column indices within every row.
    inner = np.ones(X.nnz, dtype=bool)
    inner[X.indptr[1:-1]] = False  # first entry of each row after the first
    assert np.all(np.diff(X.indices)[inner[1:]] > 0)
    assert X.has_canonical_format
    # Binary rows of unit l2 norm.
    np.testing.assert_allclose(X.data, np.repeat(1.0 / np.sqrt(row_nnz), row_nnz))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_classification_shapes_dtypes_and_canonical_csr(n_classes):
    X, y, coef = make_sparse_classification(
        n_samples=3000, n_features=2**12, n_classes=n_classes, random_state=0
    )
    assert_canonical_unit_rows(X, 3000, 2**12)
    assert y.shape == (3000,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(n_classes))
    expected_coef_shape = (2**12,) if n_classes == 2 else (n_classes, 2**12)
    assert coef.shape == expected_coef_shape and coef.dtype == np.float64


def test_regression_shapes_dtypes_and_canonical_csr():
    X, y, coef = make_sparse_regression(n_samples=2000, n_features=500, random_state=0)
    assert_canonical_unit_rows(X, 2000, 500)
    assert y.shape == (2000,) and y.dtype == np.float64
    assert coef.shape == (500,)


def test_mean_row_nnz_is_nnz_per_row_with_varied_lengths():
    X, _, _ = make_sparse_classification(n_samples=20000, nnz_per_row=30, random_state=1)
    row_nnz = np.diff(X.indptr)
    assert abs(row_nnz.mean() - 30) < 0.5
    assert row_nnz.std() > 5  # lengths vary like document lengths, not all equal


def test_nnz_per_row_one_gives_single_column_rows_drawn_from_zipf_law():
    n, n_features, s = 40000, 8, 1.2
    X, _, _ = make_sparse_classification(
        n_samples=n, n_features=n_features, nnz_per_row=1, zipf_exponent=s, random_state=2
    )
    assert np.all(np.diff(X.indptr) == 1) and np.all(X.data == 1.0)
    p = np.arange(1, n_features + 1) ** -s
    p /= p.sum()
    freq = np.bincount(X.indices, minlength=n_features) / n
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p.max() / n))


@pytest.mark.parametrize("clocks", [False, True], ids=["rejection", "exponential-clocks"])
def test_rows_are_successive_samples_without_replacement(clocks):
    # Two distinct columns out of four: P({a, b}) = p_a p_b / (1 - p_a) + p_b p_a / (1 - p_b).
    n_rows, n_features = 40000, 4
    rng = np.random.default_rng(3)
    sampler = datasets._ZipfSampler(n_features, 1.5)
    if clocks:
        rows = np.arange(n_rows)
        keys = datasets._exponential_clocks(
            rng, sampler.log_p, np.empty(0, dtype=np.int64), rows, np.full(n_rows, 2)
        )
        cols = keys % n_features
    else:
        cols = datasets._sample_rows(rng, sampler, np.full(n_rows, 2))
    pairs = cols.reshape(n_rows, 2)
    assert np.all(pairs[:, 0] < pairs[:, 1])
    p = sampler.p
    for a, b in itertools.combinations(range(n_features), 2):
        expected = p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b])
        observed = np.mean((pairs[:, 0] == a) & (pairs[:, 1] == b))
        assert abs(observed - expected) < 4 * np.sqrt(expected / n_rows), (a, b)


def test_rows_asking_for_almost_every_column_are_complete_and_canonical():
    # The rejection rounds cannot fill such rows: the exponential clocks finish them.
    X, _, _ = make_sparse_classification(
        n_samples=300, n_features=60, nnz_per_row=60, zipf_exponent=3.0, random_state=4
    )
    assert_canonical_unit_rows(X, 300, 60)
    assert np.diff(X.indptr).max() == 60


@pytest.mark.parametrize("exponent", [0.8, 1.1, 1.5])
def test_column_frequencies_follow_zipf_law(exponent):
    X, _, _ = make_sparse_classification(
        n_samples=20000, n_features=2**14, zipf_exponent=exponent, random_state=5
    )
    df = np.bincount(X.indices, minlength=X.shape[1])
    assert np.all(np.diff(df[:10]) < 0)  # column 0 first, then decreasing
    # Past the first columns (which saturate: at most once per row), the document
    # frequency of column j is ~ n * nnz * p_j, so log df ~ -exponent * log(j + 1).
    ranks = np.arange(10, 1000)
    slope = np.polyfit(np.log(ranks + 1), np.log(df[ranks]), 1)[0]
    assert abs(slope + exponent) < 0.1


def test_zipf_exponent_zero_gives_uniform_columns_and_equal_weight_scales():
    X, _, coef = make_sparse_classification(
        n_samples=5000, n_features=100, zipf_exponent=0.0, random_state=6
    )
    df = np.bincount(X.indices, minlength=100)
    assert df.max() / df.min() < 1.5
    _, _, coef = make_sparse_classification(
        n_samples=10, n_features=4000, zipf_exponent=0.0, random_state=6
    )
    # No column is rarer than another: every weight has standard deviation 1.
    assert abs(coef[:2000].std() - 1) < 0.1 and abs(coef[2000:].std() - 1) < 0.1


def test_rare_columns_get_larger_weights():
    _, _, coef = make_sparse_classification(n_samples=10, n_features=2**14, random_state=7)
    # Standard deviation 1 + 4 * log(j + 1) / log(n_features): ~1.8 for j < 10, ~5 at the end.
    assert coef[:10].std() < 3
    assert 4 < coef[-2000:].std() < 6
    _, _, flat = make_sparse_classification(
        n_samples=10, n_features=2**14, rare_weight_scale=0.0, random_state=7
    )
    assert 0.9 < flat[-2000:].std() < 1.1


def test_n_informative_keeps_that_many_nonzero_weights():
    _, _, coef = make_sparse_classification(
        n_samples=10, n_features=1000, n_informative=37, random_state=8
    )
    assert np.count_nonzero(coef) == 37
    _, _, coef = make_sparse_classification(
        n_samples=10, n_features=1000, n_informative=5, n_classes=3, random_state=8
    )
    assert np.all(np.count_nonzero(coef, axis=0) <= 3)
    assert np.count_nonzero(np.any(coef != 0, axis=0)) == 5


def test_same_random_state_gives_same_data():
    def same(a, b):
        return (
            (a[0] != b[0]).nnz == 0 and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        )

    kw = dict(n_samples=500, n_features=300, random_state=None)
    first = make_sparse_classification(**{**kw, "random_state": 42})
    assert same(first, make_sparse_classification(**{**kw, "random_state": 42}))
    # An int seed and a RandomState with that seed agree, as in scikit-learn.
    assert same(
        first, make_sparse_classification(**{**kw, "random_state": np.random.RandomState(42)})
    )
    g1 = make_sparse_classification(**{**kw, "random_state": np.random.default_rng(42)})
    g2 = make_sparse_classification(**{**kw, "random_state": np.random.default_rng(42)})
    assert same(g1, g2)
    assert not same(first, make_sparse_classification(**{**kw, "random_state": 43}))
    r1 = make_sparse_regression(**{**kw, "random_state": 42})
    assert same(r1, make_sparse_regression(**{**kw, "random_state": 42}))


def test_regression_and_classification_share_the_design():
    Xc, _, coef_c = make_sparse_classification(n_samples=500, n_features=300, random_state=9)
    Xr, _, coef_r = make_sparse_regression(n_samples=500, n_features=300, random_state=9)
    assert (Xc != Xr).nnz == 0
    np.testing.assert_array_equal(coef_c, coef_r)


@pytest.mark.parametrize("pos_rate", [0.02, 0.1, 0.5])
def test_positive_rate_matches_weights(pos_rate):
    _, y, _ = make_sparse_classification(
        n_samples=20000, weights=pos_rate, label_noise=0.0, random_state=10
    )
    assert abs(y.mean() - pos_rate) < 4 * np.sqrt(pos_rate * (1 - pos_rate) / 20000) + 0.005


def test_default_positive_rate_after_flips():
    _, y, _ = make_sparse_classification(n_samples=20000, random_state=11)
    # 0.1 before flipping 5% of the labels.
    assert abs(y.mean() - (0.1 * 0.95 + 0.9 * 0.05)) < 0.01


def test_multiclass_proportions_match_weights():
    weights = [0.6, 0.25, 0.1, 0.05]
    _, y, _ = make_sparse_classification(
        n_samples=20000, n_classes=4, weights=weights, label_noise=0.0, random_state=12
    )
    np.testing.assert_allclose(np.bincount(y, minlength=4) / y.size, weights, atol=0.015)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_label_noise_changes_exactly_that_fraction_and_nothing_else(n_classes):
    kw = dict(n_samples=10000, n_features=2**12, n_classes=n_classes, random_state=13)
    X0, y0, coef0 = make_sparse_classification(label_noise=0.0, **kw)
    X1, y1, coef1 = make_sparse_classification(label_noise=0.2, **kw)
    assert (X0 != X1).nnz == 0
    np.testing.assert_array_equal(coef0, coef1)
    assert np.count_nonzero(y0 != y1) == 2000
    if n_classes == 2:
        margin = X0 @ coef0
        clean_auc, noisy_auc = roc_auc_score(y0, margin), roc_auc_score(y1, margin)
        assert clean_auc > 0.85 and noisy_auc < clean_auc - 0.1


def test_labels_follow_the_true_weights():
    X, y, coef = make_sparse_classification(
        n_samples=20000, weights=0.3, label_noise=0.0, random_state=14
    )
    assert roc_auc_score(y, X @ coef) > 0.85
    X, y, coef = make_sparse_classification(
        n_samples=20000, n_classes=3, label_noise=0.0, random_state=14
    )
    assert np.mean(np.argmax(X @ coef.T, axis=1) == y) > 0.6


@pytest.mark.parametrize("noise", [0.0, 0.1, 1.0])
def test_regression_noise_is_the_residual_standard_deviation(noise):
    X, y, coef = make_sparse_regression(
        n_samples=20000, n_features=1000, noise=noise, random_state=15
    )
    residual = y - X @ coef
    if noise == 0.0:
        assert np.abs(residual).max() < 1e-12
    else:
        assert abs(residual.std() / noise - 1) < 0.03
        assert abs(residual.mean()) < 4 * noise / np.sqrt(20000)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=10.0), "n_samples must be an integer"),
        (dict(n_samples=True), "n_samples must be an integer"),
        (dict(n_features=0), "n_features"),
        (dict(n_features=2**31), "n_features"),
        (dict(nnz_per_row=0.5), "nnz_per_row"),
        (dict(n_features=10, nnz_per_row=11), "nnz_per_row"),
        (dict(nnz_per_row=float("nan")), "nnz_per_row"),
        (dict(zipf_exponent=-0.1), "zipf_exponent"),
        (dict(zipf_exponent="1"), "zipf_exponent must be a real"),
        (dict(n_informative=-1), "n_informative"),
        (dict(n_features=10, nnz_per_row=5, n_informative=11), "n_informative"),
        (dict(rare_weight_scale=-1.0), "rare_weight_scale"),
        (dict(label_noise=1.5), "label_noise"),
        (dict(label_noise=-0.1), "label_noise"),
        (dict(n_classes=1), "n_classes"),
        (dict(weights=0.0), "weights"),
        (dict(weights=1.0), "weights"),
        (dict(weights=0.2, n_classes=3), "n_classes=2"),
        (dict(weights=[0.5, 0.3, 0.2]), "n_classes=2 entries"),
        (dict(weights=[1.0, 0.0]), "> 0"),
        (dict(weights="abc"), "weights"),
        (dict(random_state="seed"), "seed"),
    ],
)
def test_classification_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sparse_classification(**{"n_samples": 10, **kwargs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(noise=-1.0), "noise"),
        (dict(noise=float("inf")), "noise"),
        (dict(n_samples=-5), "n_samples"),
        (dict(nnz_per_row=0), "nnz_per_row"),
    ],
)
def test_regression_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sparse_regression(**{"n_samples": 10, **kwargs})


@settings(max_examples=30, deadline=None)
@given(
    n_samples=st.integers(1, 200),
    n_features=st.integers(1, 300),
    nnz_fraction=st.floats(0.0, 1.0),
    zipf_exponent=st.floats(0.0, 3.0),
    n_classes=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_valid_arguments_give_canonical_unit_rows(
    n_samples, n_features, nnz_fraction, zipf_exponent, n_classes, seed
):
    nnz_per_row = 1 + nnz_fraction * (n_features - 1)
    X, y, _ = make_sparse_classification(
        n_samples=n_samples,
        n_features=n_features,
        nnz_per_row=nnz_per_row,
        zipf_exponent=zipf_exponent,
        n_classes=n_classes,
        random_state=seed,
    )
    assert_canonical_unit_rows(X, n_samples, n_features)
    assert np.diff(X.indptr).max() <= n_features
    assert y.min() >= 0 and y.max() < n_classes
