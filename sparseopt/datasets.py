"""Synthetic sparse data shaped like hashed text: Zipf column frequencies, rare features
that carry the signal.

The generators here are what the tests and benchmarks use when a real data set is not
wanted. They depend on no data file. The design matrix of both generators is built by the
same private function, so a classification and a regression problem drawn with the same
``random_state`` and design arguments have the same ``X``.

Design
------
Columns are ranked by frequency: column ``j`` is drawn with probability
``p_j = (j + 1) ** -zipf_exponent / sum_k (k + 1) ** -zipf_exponent``, so column 0 is the
most frequent and high columns are rare, like the words of a text (or their hashes, once
sorted by frequency).

A row first gets a length ``L``: ``1 + NegativeBinomial`` with mean ``nnz_per_row - 1``
and shape 4 (a Gamma-Poisson mixture: over-dispersed like the lengths of short
documents), capped at ``n_features``. It then receives ``L`` *distinct* columns: columns
are drawn independently from ``p`` and the first ``L`` distinct ones are kept (successive
sampling without replacement). Every stored value of the row is ``1 / sqrt(L)``, so each
row is a binary indicator vector of unit l2 norm, as ``HashingVectorizer(binary=True)``
would give. Because frequent columns saturate (column 0 cannot appear more than once per
row), the share of rows containing column ``j`` follows ``p_j`` closely only outside the
first few columns.

Weights
-------
The rarity of column ``j`` is ``r_j = log(j + 1) / log(n_features)``: 0 for column 0,
close to 1 for the rarest column (0 everywhere when ``zipf_exponent == 0``: no column is
rarer than another). The true weight of column ``j`` is Gaussian with standard deviation
``1 + rare_weight_scale * r_j``, so frequent columns are weak and rare ones strongly
informative. With ``n_informative`` set, only that many columns, drawn uniformly at random
(hence mostly rare ones, since most columns are rare), keep a nonzero weight. With unit
rows, the margin ``x . w`` has a scale of order one whatever ``nnz_per_row``.
"""

import numbers

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logsumexp, softmax
from sklearn.utils import check_random_state

__all__ = ["make_sparse_classification", "make_sparse_regression"]

# Shape of the Gamma mixing the Poisson row lengths: the coefficient of variation of the
# length tends to 1/sqrt(4) = 0.5 for long rows.
_LENGTH_SHAPE = 4.0
# Cap on the rounds that top up rows to their length with distinct columns. Only rows
# asking for almost every column (a coupon collector on the rarest ones) can hit it.
_MAX_TOP_UP_ROUNDS = 64
# Intercepts are calibrated on at most this many rows.
_N_CALIBRATION = 100_000
_DEFAULT_POS_RATE = 0.1


# --------------------------------------------------------------------------- checks


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    return int(value)


def _check_real(name, value, low, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{low}, {'inf)' if high is None else f'{high}{right}'}"
        raise ValueError(f"{name} must be finite and in {bounds}, got {value}.")
    return value


def _check_design(n_samples, n_features, nnz_per_row, zipf_exponent):
    n_samples = _check_int("n_samples", n_samples, 1)
    # int32 column indices.
    n_features = _check_int("n_features", n_features, 1, np.iinfo(np.int32).max)
    nnz_per_row = _check_real("nnz_per_row", nnz_per_row, 1.0, n_features)
    zipf_exponent = _check_real("zipf_exponent", zipf_exponent, 0.0)
    return n_samples, n_features, nnz_per_row, zipf_exponent


def _check_weights_args(n_features, n_informative, rare_weight_scale):
    if n_informative is None:
        n_informative = n_features
    n_informative = _check_int("n_informative", n_informative, 0, n_features)
    rare_weight_scale = _check_real("rare_weight_scale", rare_weight_scale, 0.0)
    return n_informative, rare_weight_scale


def _check_class_weights(weights, n_classes):
    if weights is None:
        if n_classes == 2:
            return np.array([1.0 - _DEFAULT_POS_RATE, _DEFAULT_POS_RATE])
        return np.full(n_classes, 1.0 / n_classes)
    if isinstance(weights, numbers.Real) and not isinstance(weights, bool):
        if n_classes != 2:
            raise ValueError(
                "A single number for weights (the positive rate) needs n_classes=2; "
                f"give {n_classes} class proportions instead."
            )
        pos = _check_real("weights", weights, 0.0, 1.0, low_open=True, high_open=True)
        return np.array([1.0 - pos, pos])
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"weights must be a number or a sequence, got {weights!r}.")
    if w.shape != (n_classes,):
        raise ValueError(f"weights must have n_classes={n_classes} entries, got shape {w.shape}.")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be finite and > 0, got {w.tolist()}.")
    return w / w.sum()


def _as_generator(random_state):
    """A NumPy Generator from anything :func:`sklearn.utils.check_random_state` takes.

    ints, None and RandomState go through ``check_random_state`` (so ``0`` and
    ``RandomState(0)`` give the same data, and None follows ``np.random.seed``), which
    then seeds a Generator; a Generator is used as it is.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(0, 2**32, size=4, dtype=np.uint64))


def _streams(random_state, n):
    """``n`` independent generators: changing how one is used leaves the others alone."""
    rng = _as_generator(random_state)
    seeds = rng.integers(0, np.iinfo(np.int64).max, size=n)
    return [np.random.default_rng(s) for s in seeds]


# --------------------------------------------------------------------------- design


class _ZipfSampler:
    """Draws column indices with ``P(j) = p_j`` by inversion with a guide table.

    ``guide[b]`` is the first column whose cumulative probability exceeds ``b / m``, so
    the answer for ``u`` in bucket ``b`` is ``guide[b]`` or a few columns after it: one
    lookup and a short vectorized walk instead of a binary search per draw.
    """

    def __init__(self, n_features, zipf_exponent):
        w = np.arange(1, n_features + 1, dtype=np.float64) ** -zipf_exponent
        cdf = np.cumsum(w)
        cdf /= cdf[-1]
        cdf[-1] = 1.0  # every u < 1 lands on a column
        self.cdf = cdf
        self.m = int(min(8 * n_features, 2**24))
        buckets = np.arange(self.m, dtype=np.float64) / self.m
        self.guide = np.searchsorted(cdf, buckets, side="right").astype(np.int32)

    def columns(self, u):
        """Column of each uniform ``u`` in [0, 1) (monotone: sorted ``u``, sorted columns)."""
        j = self.guide[(u * self.m).astype(np.intp)].astype(np.int64)
        todo = np.flatnonzero(self.cdf[j] <= u)
        while todo.size:
            j[todo] += 1
            todo = todo[self.cdf[j[todo]] <= u[todo]]
        return j


def _row_lengths(rng, n_samples, nnz_per_row, n_features):
    extra = nnz_per_row - 1.0
    if extra <= 0.0:
        lengths = np.ones(n_samples, dtype=np.int64)
    else:
        lam = rng.gamma(_LENGTH_SHAPE, extra / _LENGTH_SHAPE, size=n_samples)
        lengths = 1 + rng.poisson(lam).astype(np.int64)
    return np.minimum(lengths, n_features)


def _sorted_uniforms(rng, lengths):
    """For each row, ``lengths[i]`` sorted uniforms on [0, 1), rows one after the other.

    Uses exponential spacings (``E_1 + ... + E_k`` over ``E_1 + ... + E_{L+1}``), so the
    columns drawn by inversion come out sorted within each row and no sort is needed.
    """
    n = lengths.size
    seg_end = np.cumsum(lengths + 1) - 1  # position of each row's (L+1)-th spacing
    c = np.cumsum(rng.standard_exponential(int(seg_end[-1]) + 1))
    base = np.empty(n)
    base[0] = 0.0
    base[1:] = c[seg_end[:-1]]
    total = c[seg_end] - base
    keep = np.ones(c.size, dtype=bool)
    keep[seg_end] = False
    u = (c[keep] - np.repeat(base, lengths)) / np.repeat(total, lengths)
    return np.minimum(u, np.nextafter(1.0, 0.0), out=u)


def _sample_design(rng, n_samples, n_features, nnz_per_row, zipf_exponent):
    """CSR matrix with ~``nnz_per_row`` distinct Zipf columns per row, unit-norm rows."""
    sampler = _ZipfSampler(n_features, zipf_exponent)
    lengths = _row_lengths(rng, n_samples, nnz_per_row, n_features)
    rows = np.repeat(np.arange(n_samples, dtype=np.int64), lengths)
    cols = sampler.columns(_sorted_uniforms(rng, lengths))
    # Sorted within rows already: a repeat is the same value as its left neighbour.
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (cols[1:] != cols[:-1]) | (rows[1:] != rows[:-1])
    keys = rows[first] * n_features + cols[first]
    del rows, cols, first
    deficit = lengths - np.bincount(keys // n_features, minlength=n_samples)

    # Top up the short rows: draw columns, keep in draw order the new distinct ones, up to
    # the deficit. The result is the first L distinct columns of an i.i.d. sequence of
    # draws (successive sampling without replacement). Batches grow when rows keep
    # missing, as for rows asking for nearly every column.
    added = np.empty(0, dtype=np.int64)
    for round_ in range(_MAX_TOP_UP_ROUNDS):
        short = np.flatnonzero(deficit > 0)
        if short.size == 0:
            break
        need = deficit[short]
        batch = need * min(2**round_, 1024)
        owner = np.repeat(short, batch)
        drawn = owner * n_features + sampler.columns(rng.random(owner.size))
        fresh = _first_occurrences(drawn) & ~_isin_sorted(drawn, keys) & ~_isin_sorted(drawn, added)
        # Rank of each fresh draw within its row, in draw order.
        rank = np.cumsum(fresh)
        starts = np.cumsum(batch) - batch
        rank -= np.repeat(rank[starts] - fresh[starts], batch)
        new = np.sort(drawn[fresh & (rank <= np.repeat(need, batch))])
        added = np.sort(np.concatenate([added, new]), kind="stable")
        deficit -= np.bincount(new // n_features, minlength=n_samples)
    if added.size:
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        keys = np.sort(np.concatenate([keys, added]), kind="stable")

    counts = lengths - deficit
    nnz = int(counts.sum())
    index_dtype = np.int32 if max(nnz, n_features) <= np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n_samples + 1, dtype=index_dtype)
    np.cumsum(counts, out=indptr[1:])
    indices = (keys % n_features).astype(index_dtype)
    data = np.repeat(1.0 / np.sqrt(counts), counts)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_samples, n_features), copy=False)
    X.has_sorted_indices = True  # rows are sorted and duplicate-free by construction
    return X


def _first_occurrences(values):
    """Mask of the entries whose value does not appear earlier in ``values``."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    first_sorted = np.ones(values.size, dtype=bool)
    first_sorted[1:] = sorted_values[1:] != sorted_values[:-1]
    mask = np.zeros(values.size, dtype=bool)
    mask[order[first_sorted]] = True
    return mask


def _isin_sorted(values, sorted_ref):
    """``np.isin`` for a sorted reference array, by binary search."""
    if sorted_ref.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(sorted_ref, values)
    np.minimum(pos, sorted_ref.size - 1, out=pos)
    return sorted_ref[pos] == values


def _make_coef(rng, n_outputs, n_features, zipf_exponent, n_informative, rare_weight_scale):
    """True weights, shape (n_outputs, n_features): spread grows with column rarity."""
    if zipf_exponent > 0 and n_features > 1:
        rarity = np.log1p(np.arange(n_features)) / np.log(n_features)
    else:
        rarity = np.zeros(n_features)
    coef = rng.standard_normal((n_outputs, n_features)) * (1.0 + rare_weight_scale * rarity)
    if n_informative < n_features:
        silent = np.ones(n_features, dtype=bool)
        silent[rng.choice(n_features, size=n_informative, replace=False)] = False
        coef[:, silent] = 0.0
    return coef


# --------------------------------------------------------------------------- labels


def _calibration_rows(rng, n_samples):
    if n_samples <= _N_CALIBRATION:
        return slice(None)
    return rng.choice(n_samples, size=_N_CALIBRATION, replace=False)


def _binary_intercept(margin, pos_rate):
    """``b`` with ``mean(sigmoid(margin + b)) = pos_rate`` (bisection: the mean is monotone)."""
    lo = np.log(pos_rate / (1 - pos_rate)) - np.max(np.abs(margin)) - 1.0
    hi = np.log(pos_rate / (1 - pos_rate)) + np.max(np.abs(margin)) + 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.mean(expit(margin + mid)) < pos_rate:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


def _multiclass_intercept(margins, priors):
    """``b`` with the mean softmax probabilities equal to ``priors``.

    Fixed point ``b += log(priors) - log(mean softmax(margins + b))``: the gradient step
    of the convex ``mean logsumexp(margins + b) - priors . b`` in log space, as in
    iterative proportional fitting.
    """
    log_priors = np.log(priors)
    b = log_priors.copy()
    for _ in range(500):
        z = margins + b
        log_mean = logsumexp(z - logsumexp(z, axis=1, keepdims=True), axis=0) - np.log(len(z))
        step = log_priors - log_mean
        b += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return b - b.mean()


def _flip(rng, y, label_noise, n_classes):
    n_flip = int(round(label_noise * y.size))
    if n_flip:
        idx = rng.choice(y.size, size=n_flip, replace=False)
        # Move to one of the other classes, uniformly (for two classes: the other one).
        y[idx] = (y[idx] + rng.integers(1, n_classes, size=n_flip)) % n_classes
    return y


# --------------------------------------------------------------------------- public


def make_sparse_classification(
    n_samples=10000,
    n_features=2**14,
    nnz_per_row=20,
    zipf_exponent=1.1,
    n_informative=None,
    rare_weight_scale=4.0,
    label_noise=0.05,
    n_classes=2,
    weights=None,
    random_state=None,
):
    """Generate a sparse classification problem shaped like hashed text.

    Rows are unit-norm binary vectors over columns of Zipf frequencies (see the module
    docstring for the exact design); rare columns carry larger true weights than
    frequent ones. Labels follow the logistic (two classes) or multinomial (more classes)
    model, with intercepts chosen so that the class proportions match ``weights``, then a
    fraction ``label_noise`` of them is flipped.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows, >= 1.
    n_features : int, default=2**14
        Number of columns, in [1, 2**31 - 1].
    nnz_per_row : float, default=20
        Mean number of distinct nonzero columns per row, in [1, n_features]. Row lengths
        are ``1 + NegativeBinomial(mean=nnz_per_row - 1, shape=4)``, capped at
        ``n_features``.
    zipf_exponent : float, default=1.1
        Exponent ``s >= 0`` of the column probabilities ``p_j ∝ 1 / (j + 1) ** s``;
        0 gives uniform columns.
    n_informative : int or None, default=None
        Number of columns with a nonzero true weight, drawn uniformly at random (hence
        mostly rare columns). None: all columns.
    rare_weight_scale : float, default=4.0
        The true weight of column ``j`` has standard deviation
        ``1 + rare_weight_scale * log(j + 1) / log(n_features)``: from 1 for the most
        frequent column to ``1 + rare_weight_scale`` for the rarest. 0 makes all
        columns equally informative.
    label_noise : float, default=0.05
        Fraction of labels, in [0, 1], moved to another class drawn uniformly (for two
        classes: flipped). Exactly ``round(label_noise * n_samples)`` labels change.
    n_classes : int, default=2
        Number of classes, >= 2.
    weights : float, sequence of float or None, default=None
        Class proportions of the noiseless labels (the intercepts are calibrated to give
        them). A number is the positive rate (two classes only); a sequence has one
        positive entry per class and is normalized to sum to one. None: a positive rate
        of 0.1 for two classes, equal proportions otherwise. After flipping, the positive
        rate becomes ``pos * (1 - label_noise) + (1 - pos) * label_noise``.
    random_state : int, RandomState instance, Generator or None, default=None
        Seed or generator. ints, None and RandomState are handled as by
        :func:`sklearn.utils.check_random_state`. ``X`` and ``coef`` depend only on
        ``random_state`` and the design and weight arguments; ``label_noise`` only
        chooses which labels flip.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        float64 values, int32 indices (int64 only beyond 2**31 - 1 nonzeros), canonical
        format: sorted column indices, no duplicates. Every row has unit l2 norm.
    y : ndarray of shape (n_samples,), dtype int64
        Class indices in ``0 .. n_classes - 1``.
    coef : ndarray of shape (n_features,) or (n_classes, n_features)
        True weights: one vector for two classes (the logit of class 1), one row per
        class otherwise. The calibrated intercepts are not returned.

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range.

    See Also
    --------
    make_sparse_regression : The same design with a real target.

    Examples
    --------
    >>> from sparseopt.datasets import make_sparse_classification
    >>> X, y, coef = make_sparse_classification(n_samples=1000, random_state=0)
    >>> X.shape, y.shape, coef.shape
    ((1000, 16384), (1000,), (16384,))
    """
    n_samples, n_features, nnz_per_row, zipf_exponent = _check_design(
        n_samples, n_features, nnz_per_row, zipf_exponent
    )
    n_informative, rare_weight_scale = _check_weights_args(
        n_features, n_informative, rare_weight_scale
    )
    label_noise = _check_real("label_noise", label_noise, 0.0, 1.0)
    n_classes = _check_int("n_classes", n_classes, 2)
    priors = _check_class_weights(weights, n_classes)

    design_rng, coef_rng, label_rng, noise_rng = _streams(random_state, 4)
    X = _sample_design(design_rng, n_samples, n_features, nnz_per_row, zipf_exponent)
    n_outputs = 1 if n_classes == 2 else n_classes
    coef = _make_coef(
        coef_rng, n_outputs, n_features, zipf_exponent, n_informative, rare_weight_scale
    )

    margins = np.asarray(X @ coef.T)  # (n_samples, n_outputs)
    calib = _calibration_rows(label_rng, n_samples)
    u = label_rng.random(n_samples)
    if n_classes == 2:
        margin = margins[:, 0]
        b = _binary_intercept(margin[calib], priors[1])
        y = (u < expit(margin + b)).astype(np.int64)
        coef = coef[0]
    else:
        b = _multiclass_intercept(margins[calib], priors)
        cum = np.cumsum(softmax(margins + b, axis=1), axis=1)
        y = np.minimum((u[:, None] >= cum).sum(axis=1), n_classes - 1).astype(np.int64)
    y = _flip(noise_rng, y, label_noise, n_classes)
    return X, y, coef


def make_sparse_regression(
    n_samples=10000,
    n_features=2**14,
    nnz_per_row=20,
    zipf_exponent=1.1,
    noise=0.1,
    n_informative=None,
    rare_weight_scale=4.0,
    random_state=None,
):
    """Generate a sparse regression problem shaped like hashed text.

    ``X`` and ``coef`` are drawn exactly as by :func:`make_sparse_classification` (same
    ``X`` for the same ``random_state`` and design arguments); the target is
    ``y = X @ coef + noise * N(0, 1)``, without intercept.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows, >= 1.
    n_features : int, default=2**14
        Number of columns, in [1, 2**31 - 1].
    nnz_per_row : float, default=20
        Mean number of distinct nonzero columns per row, in [1, n_features].
    zipf_exponent : float, default=1.1
        Exponent ``s >= 0`` of the column probabilities ``p_j ∝ 1 / (j + 1) ** s``.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to the target, >= 0.
    n_informative : int or None, default=None
        Number of columns with a nonzero true weight, drawn uniformly at random.
        None: all columns.
    rare_weight_scale : float, default=4.0
        Column ``j``'s weight has standard deviation
        ``1 + rare_weight_scale * log(j + 1) / log(n_features)``.
    random_state : int, RandomState instance, Generator or None, default=None
        Seed or generator, as in :func:`make_sparse_classification`.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        float64 values, int32 indices, canonical format, unit-norm rows.
    y : ndarray of shape (n_samples,), dtype float64
        The noisy target.
    coef : ndarray of shape (n_features,)
        The true weights.

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range.

    Examples
    --------
    >>> from sparseopt.datasets import make_sparse_regression
    >>> X, y, coef = make_sparse_regression(n_samples=1000, noise=0.0, random_state=0)
    >>> bool(abs(y - X @ coef).max() < 1e-12)
    True
    """
    n_samples, n_features, nnz_per_row, zipf_exponent = _check_design(
        n_samples, n_features, nnz_per_row, zipf_exponent
    )
    n_informative, rare_weight_scale = _check_weights_args(
        n_features, n_informative, rare_weight_scale
    )
    noise = _check_real("noise", noise, 0.0)

    design_rng, coef_rng, _, noise_rng = _streams(random_state, 4)
    X = _sample_design(design_rng, n_samples, n_features, nnz_per_row, zipf_exponent)
    coef = _make_coef(coef_rng, 1, n_features, zipf_exponent, n_informative, rare_weight_scale)[0]
    y = X @ coef
    if noise > 0:
        y = y + noise * noise_rng.standard_normal(n_samples)
    return X, y, coef
