"""Every check that must happen before a kernel runs: Numba does not bounds-check.

``as_training_csr`` turns any accepted input into a CSR matrix the kernels can walk
safely: structure checked (indptr monotone and consistent, indices in range, no duplicate
column within a row), values finite, float32/float64 data kept as is (no copy unless the
input is not CSR, has another dtype, or has duplicates to sum).
"""

import math
import numbers

import numpy as np
import scipy.sparse as sp
from numba import njit

_OK, _BAD_INDEX, _DUPLICATE = 0, 1, 2


@njit(cache=True, error_model="numpy")
def _scan_rows(indptr, indices, n_features, seen):
    """Return (code, row): the first row with an out-of-range or repeated column."""
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j < 0 or j >= n_features:
                return _BAD_INDEX, i
            if seen[j] == i + 1:
                return _DUPLICATE, i
            seen[j] = i + 1
    return _OK, -1


def check_csr_structure(X):
    """Raise ``ValueError`` unless CSR ``X`` is safe for the kernels.

    Returns ``True`` when some row repeats a column (the caller sums duplicates).
    """
    n_rows, n_features = X.shape
    indptr, indices = X.indptr, X.indices
    if indptr.ndim != 1 or indptr.shape[0] != n_rows + 1:
        raise ValueError(
            f"malformed CSR matrix: indptr has {indptr.shape[0]} entries for {n_rows} rows "
            f"(expected {n_rows + 1})"
        )
    if indices.shape[0] != X.data.shape[0]:
        raise ValueError(
            f"malformed CSR matrix: {indices.shape[0]} indices but {X.data.shape[0]} values"
        )
    if n_rows and (indptr[0] != 0 or indptr[-1] != indices.shape[0]):
        raise ValueError(
            f"malformed CSR matrix: indptr must start at 0 and end at nnz={indices.shape[0]}, "
            f"got {indptr[0]} and {indptr[-1]}"
        )
    if n_rows and np.any(np.diff(indptr) < 0):
        row = int(np.argmax(np.diff(indptr) < 0))
        raise ValueError(f"malformed CSR matrix: indptr decreases at row {row}")
    if not np.all(np.isfinite(X.data)):
        raise ValueError("Input X contains NaN or infinity.")
    code, row = _scan_rows(indptr, indices, n_features, np.zeros(n_features, dtype=np.int64))
    if code == _BAD_INDEX:
        raise ValueError(
            f"malformed CSR matrix: row {row} has a column index outside [0, {n_features})"
        )
    return code == _DUPLICATE


def as_kernel_csr(X):
    """Accepted input -> canonical-enough CSR (float32/float64 data, int32/int64 indices)."""
    if sp.issparse(X):
        if X.format != "csr":
            X = X.tocsr()
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if X.indices.dtype != X.indptr.dtype:
            X = sp.csr_matrix(
                (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape
            )
    else:
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead.")
        if not np.all(np.isfinite(X)):
            raise ValueError("Input X contains NaN or infinity.")
        X = sp.csr_matrix(X)
    if check_csr_structure(X):
        X = X.copy()
        X.sum_duplicates()
    return X


def check_sample_weight(sample_weight, n_samples):
    """Float64 weights, one per row, finite and non-negative."""
    if sample_weight is None:
        return np.ones(n_samples)
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n_samples, float(sw))
    if sw.shape != (n_samples,):
        raise ValueError(
            f"sample_weight.shape == {sw.shape}, expected {(n_samples,)}!"
        )
    if not np.all(np.isfinite(sw)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(sw < 0):
        raise ValueError("Negative values in data passed to sample_weight")
    if n_samples and not np.any(sw > 0):
        raise ValueError("All sample weights are zero: there is nothing to learn from")
    return sw


def check_number(name, value, low=None, high=None, integer=False, low_open=False,
                 allow_none=False):
    """Raise a ValueError naming ``name`` unless ``value`` is a finite number (an int with
    ``integer``) within the bounds; None passes with ``allow_none``."""
    if value is None and allow_none:
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
