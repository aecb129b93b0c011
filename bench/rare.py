"""The rare-feature view: features and rows bucketed by training frequency.

A feature's frequency is its document frequency in the training rows (the number of
training rows where it is nonzero). Bucket ``k >= 0`` holds the features seen
``2**k .. 2**(k+1) - 1`` times; features never seen in training are bucket ``-1``.

* Weights (synthetic data, where the true coefficients are known): per bucket, the mean
  absolute error ``|learned - true|`` over the features of the bucket, also split into
  features whose ``|true weight|`` is above / below the median ``|true weight|`` of the
  seen features.
* Rows (any data), two ways, each the same rows for every method: a test row is put in
  the bucket of its *rarest* feature (smallest training frequency among its nonzero
  features; model-independent), or of its *strongest* feature (largest
  ``|w_j * x_j|`` with ``w`` the weights of the exact L2 optimum, ``LogisticRegression``:
  the feature that drives the reference prediction). Per bucket, the mean test log loss
  of those rows. On hashed text nearly every row holds some token never seen in
  training, so the rarest-feature view piles most rows into "unseen"; the
  strongest-feature view spreads them out.
"""

import numpy as np

from .methods import row_log_loss

UNSEEN = -1


def document_frequency(X):
    """Training rows in which each column is nonzero (CSR in, int array out)."""
    X = X.tocsr()
    X.sum_duplicates()
    nz = X.data != 0
    return np.bincount(X.indices[nz], minlength=X.shape[1])


def bucket_of(counts):
    """log2 bucket of each count; ``UNSEEN`` (-1) for zero."""
    counts = np.asarray(counts)
    out = np.full(counts.shape, UNSEEN, dtype=np.int64)
    seen = counts > 0
    out[seen] = np.floor(np.log2(counts[seen])).astype(np.int64)
    return out


def bucket_label(k):
    if k == UNSEEN:
        return "unseen"
    lo, hi = 2**k, 2 ** (k + 1) - 1
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def coef_error_by_bucket(counts, coef_true, coefs, min_features=5):
    """Mean |learned - true| per frequency bucket (seen features only)."""
    coef_true = np.asarray(coef_true, dtype=float).ravel()
    bucket = bucket_of(counts)
    seen = bucket != UNSEEN
    threshold = float(np.median(np.abs(coef_true[seen]))) if seen.any() else 0.0
    large = np.abs(coef_true) >= threshold
    keys = [k for k in np.unique(bucket[seen]) if np.sum(bucket == k) >= min_features]
    out = {
        "buckets": [int(k) for k in keys],
        "labels": [bucket_label(k) for k in keys],
        "n_features": [int(np.sum(bucket == k)) for k in keys],
        "n_features_large": [int(np.sum((bucket == k) & large)) for k in keys],
        "large_threshold": threshold,
        "mae": {}, "mae_large": {}, "mae_small": {},
    }
    for name, coef in coefs.items():
        err = np.abs(np.asarray(coef, dtype=float).ravel() - coef_true)
        for key, mask in (("mae", None), ("mae_large", large), ("mae_small", ~large)):
            values = []
            for k in keys:
                sel = bucket == k
                if mask is not None:
                    sel &= mask
                values.append(float(np.mean(err[sel])) if sel.any() else None)
            out[key][name] = values
    return out


def rarest_feature_bucket(counts, X):
    """Bucket of each row's rarest feature; rows without a nonzero get ``-2``."""
    X = X.tocsr()
    lengths = np.diff(X.indptr)
    row_min = np.full(X.shape[0], -1, dtype=np.int64)
    nonempty = lengths > 0
    if X.nnz:
        mins = np.minimum.reduceat(counts[X.indices], X.indptr[:-1][nonempty])
        row_min[nonempty] = mins
    out = bucket_of(np.maximum(row_min, 0))
    out[~nonempty] = -2
    return out


def strongest_feature_bucket(counts, X, w):
    """Bucket of each row's strongest feature (largest ``|w_j * x_j|``); ``-2`` if none."""
    X = X.tocsr()
    w = np.asarray(w, dtype=float).ravel()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    strength = np.abs(w[X.indices] * X.data)
    out = np.full(X.shape[0], -2, dtype=np.int64)
    if X.nnz == 0:
        return out
    order = np.lexsort((strength, rows))  # by row, then strength: last of a row is max
    last = np.r_[rows[order][1:] != rows[order][:-1], True]
    top = order[last]
    ok = strength[top] > 0
    out[rows[top][ok]] = bucket_of(counts[X.indices[top][ok]])
    return out


def loss_by_bucket(bucket, y_test, probas, classes, min_rows=30):
    """Mean test log loss per row bucket, for each method (buckets with enough rows)."""
    keys = [k for k in np.unique(bucket) if k != -2 and np.sum(bucket == k) >= min_rows]
    out = {
        "buckets": [int(k) for k in keys],
        "labels": [bucket_label(k) for k in keys],
        "n_rows": [int(np.sum(bucket == k)) for k in keys],
        "n_rows_total": int(np.sum(bucket != -2)),
        "positive_rate": [],
        "loss": {},
    }
    if len(classes) == 2:
        out["positive_rate"] = [float(np.mean(y_test[bucket == k] == classes[1]))
                                for k in keys]
    for name, proba in probas.items():
        losses = row_log_loss(y_test, proba, classes)
        out["loss"][name] = [float(np.mean(losses[bucket == k])) for k in keys]
    return out
