"""Load the benchmark's real data: the PyPI TSV (hashed text) or any svmlight file.

All loaders return ``X_train, X_test, y_train, y_test`` with ``X`` a CSR float64 matrix
with int32 indices in canonical format (sorted indices, no duplicates). They live in
``bench`` rather than in the library so that importing ``sparseopt`` never depends on a
data file.

The PyPI TSV (``bench/data/pypi_popular_100k.tsv.gz``, or the full
``/work/shared/data/pypi_popular.tsv.gz``) has a header ``name, summary, month,
popular``, tab-separated fields and *no quoting*: quote characters are literal text
(``"AGENT" K is a ...``), so it is read by the csv module with quoting turned off, and
every line must have as many fields as the header. Featurization, one
hashed bag of tokens per package (:func:`pypi_tokens`):

* the words of the name, prefixed ``n:`` (``scikit-learn`` gives ``n:scikit`` and
  ``n:learn``), so that ``django`` in a name and in a summary are distinct features;
* the words of the summary;
* with ``bigrams=True``, the pairs of consecutive words of the name (``n:scikit learn``)
  and of the summary (``python modules``);
* ``year:2017`` and ``month:2017-08`` from the month column (``month:none`` when empty).
  In the source, the month looks like that of the latest release (``numpy`` has the
  newest one), which is strongly linked to popularity: leave it out with
  ``use_month=False`` for a text-only problem.

Words are lowercased runs of two or more word characters (scikit-learn's default token
pattern). Counts are hashed into ``n_features`` columns with
``HashingVectorizer(alternate_sign=False, norm="l2")``: nonnegative, unit-norm rows.

The split is stratified for classification targets, so train and test keep the same
positive rate (1.75 % on the PyPI data).
"""

import bz2
import csv
import gzip
import io
import os
import re

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_svmlight_file
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

PYPI_COLUMNS = ("name", "summary", "month", "popular")
SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")
COMPRESSION_SUFFIXES = (".gz", ".bz2")
_WORD = re.compile(r"(?u)\b\w\w+\b")
# A svmlight data line: a target, then optional qid and index:value pairs.
_SVMLIGHT_LINE = re.compile(rb"^\s*[-+]?[\d.]+(?:[eE][-+]?\d+)?(?:\s+qid:\d+)?(?:\s+\d+:\S+)*\s*$")


# --------------------------------------------------------------------------- files


def _open_binary(path):
    """Open ``path`` for reading bytes, decompressing gzip or bzip2 (by magic number)."""
    with open(path, "rb") as f:
        magic = f.read(3)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == b"BZh":
        return bz2.open(path, "rb")
    return open(path, "rb")


def _open_text(path):
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", newline="")


def _first_line(path, max_bytes=1 << 16):
    with _open_binary(path) as f:
        return f.readline(max_bytes)


def _check_columns(path, header):
    missing = [c for c in PYPI_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: columns {missing} missing from header {header}")


# --------------------------------------------------------------------------- PyPI TSV


def read_pypi(path):
    """Read the PyPI TSV into four columns.

    Parameters
    ----------
    path : str or path-like
        Tab-separated file, plain, gzip or bzip2, with a header naming at least the
        columns ``name, summary, month, popular`` (in any order). Fields are not quoted.

    Returns
    -------
    name, summary, month : list of str
        The text columns; missing values are empty strings (``"NA"`` or ``"null"`` are
        package names, not missing values).
    popular : ndarray of shape (n_rows,), dtype int64
        The 0/1 target.

    Raises
    ------
    ValueError
        If a column is missing, a line has the wrong number of fields or ``popular`` is
        not 0 or 1.
    """
    # The csv module rather than pandas: it checks the field count of every line, where
    # pandas pads short lines and turns a first extra field into an index, silently.
    with _open_text(path) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, [])
        _check_columns(path, header)
        rows = list(reader)
    width = len(header)
    for line, row in enumerate(rows, start=2):
        if len(row) != width:
            raise ValueError(f"{path}, line {line}: expected {width} fields, saw {len(row)}")
    table = list(zip(*rows)) if rows else [()] * width
    columns = [list(table[header.index(c)]) for c in PYPI_COLUMNS]
    *text, popular = columns
    bad = set(popular) - {"0", "1"}
    if bad:
        raise ValueError(f"{path}: popular must be 0 or 1, found {sorted(bad)[:5]}")
    return (*text, np.array(popular, dtype=np.int64) if popular else np.empty(0, np.int64))


def pypi_tokens(name, summary, month, use_month=True, bigrams=False):
    """The tokens of one package (see the module docstring).

    Examples
    --------
    >>> pypi_tokens("scikit-learn", "A set of Python modules", "2026-10")
    ['n:scikit', 'n:learn', 'set', 'of', 'python', 'modules', 'year:2026', 'month:2026-10']
    >>> pypi_tokens("scikit-learn", "Python modules", "", bigrams=True)
    ['n:scikit', 'n:learn', 'python', 'modules', 'n:scikit learn', 'python modules', \
'month:none']
    """
    name_words = _WORD.findall(name.lower())
    summary_words = _WORD.findall(summary.lower())
    tokens = ["n:" + w for w in name_words] + summary_words
    if bigrams:
        tokens += [f"n:{a} {b}" for a, b in zip(name_words, name_words[1:])]
        tokens += [f"{a} {b}" for a, b in zip(summary_words, summary_words[1:])]
    if use_month:
        tokens += [f"year:{month[:4]}", f"month:{month}"] if month else ["month:none"]
    return tokens


def featurize_pypi(name, summary, month, n_features=2**20, use_month=True, bigrams=False):
    """Hash the packages' tokens into a CSR matrix with unit-norm rows.

    Parameters
    ----------
    name, summary, month : sequence of str
        Columns as returned by :func:`read_pypi`.
    n_features : int, default=2**20
        Number of hashed columns.
    use_month : bool, default=True
        Add the year and month tokens.
    bigrams : bool, default=False
        Add the pairs of consecutive words of the name and of the summary.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_rows, n_features)
        float64 values, int32 indices, canonical format.
    """
    docs = zip(name, summary, month)
    vectorizer = HashingVectorizer(
        n_features=n_features,
        analyzer=lambda doc: pypi_tokens(*doc, use_month=use_month, bigrams=bigrams),
        alternate_sign=False,
        norm="l2",
        dtype=np.float64,
    )
    return _canonical_csr(vectorizer.transform(docs))


def load_pypi(path, n_features=2**20, test_size=0.2, random_state=0, use_month=True,
              bigrams=False):
    """Load the PyPI TSV as a hashed-text binary problem (target ``popular``).

    Parameters
    ----------
    path : str or path-like
        The TSV, plain, gzip or bzip2 (see :func:`read_pypi`).
    n_features : int, default=2**20
        Number of hashed columns.
    test_size : float or int, default=0.2
        Passed to :func:`sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seed of the (stratified, shuffled) split.
    use_month : bool, default=True
        Add the year and month tokens (see the module docstring).
    bigrams : bool, default=False
        Add the pairs of consecutive words (``bench.speed`` does: 13.7M nonzeros in the
        full file's train split, against 8.1M without).

    Returns
    -------
    X_train, X_test : scipy.sparse.csr_matrix
        float64, int32 indices, canonical, unit-norm rows.
    y_train, y_test : ndarray of int64
        0/1 targets.
    """
    name, summary, month, y = read_pypi(path)
    X = featurize_pypi(name, summary, month, n_features=n_features, use_month=use_month,
                       bigrams=bigrams)
    return _split(X, y, test_size, random_state)


# --------------------------------------------------------------------------- svmlight


def load_svmlight(path, n_features=None):
    """Read a svmlight / libsvm file with :func:`sklearn.datasets.load_svmlight_file`.

    Parameters
    ----------
    path : str or path-like
        The file, plain, gzip or bzip2 (detected from its first bytes, whatever its
        name).
    n_features : int or None, default=None
        Number of columns; None infers it from the largest index in the file. As in
        scikit-learn, a file with more columns raises a ValueError.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        float64, int32 indices (when they fit), canonical format.
    y : ndarray of shape (n_samples,)
        The targets as stored (float64; binary files often use -1 and +1).
    """
    with _open_binary(path) as f:
        X, y = load_svmlight_file(f, n_features=n_features, dtype=np.float64)
    return _canonical_csr(X), y


def _is_svmlight(path):
    with _open_binary(path) as f:
        for line in f:
            line = line.split(b"#", 1)[0]
            if line.strip():
                return bool(_SVMLIGHT_LINE.match(line))
    return False


def detect_format(path):
    """``"svmlight"`` or ``"pypi"``, from the name of ``path`` or else its content.

    A name ending in .svm, .svmlight or .libsvm (optionally then .gz or .bz2) is
    svmlight; otherwise a tab-separated first line naming a ``popular`` column is the
    PyPI TSV; otherwise a first data line shaped like ``<target> <index>:<value> ...``
    is svmlight.

    Raises
    ------
    ValueError
        If the format is neither.
    """
    stem = os.fspath(path).lower()
    for suffix in COMPRESSION_SUFFIXES:
        stem = stem.removesuffix(suffix)
    if stem.endswith(SVMLIGHT_SUFFIXES):
        return "svmlight"
    header = _first_line(path).decode("utf-8", errors="replace").rstrip("\r\n").split("\t")
    if "popular" in header:
        return "pypi"
    if _is_svmlight(path):
        return "svmlight"
    raise ValueError(
        f"{path}: unknown format. Expected svmlight (.svm, .svmlight, .libsvm, or lines "
        "'<target> <index>:<value> ...') or a TSV whose header has a 'popular' column."
    )


def load_dataset(path, n_features=2**20, test_size=0.2, random_state=0, bigrams=False):
    """Load ``path`` in whichever supported format it is and split it.

    Parameters
    ----------
    path : str or path-like
        A PyPI TSV or a svmlight file (see :func:`detect_format`).
    n_features : int or None, default=2**20
        PyPI TSV: number of hashed columns (None: 2**20). svmlight: a minimum number of
        columns; a file with more keeps all of its own.
    test_size : float or int, default=0.2
        Passed to :func:`sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seed of the split (stratified for classification targets).
    bigrams : bool, default=False
        PyPI TSV: add the pairs of consecutive words (:func:`load_pypi`). An error for a
        svmlight file, whose features are given.

    Returns
    -------
    X_train, X_test, y_train, y_test
        As :func:`load_pypi`; svmlight targets are returned as stored.
    """
    if detect_format(path) == "pypi":
        return load_pypi(path, n_features or 2**20, test_size, random_state, bigrams=bigrams)
    if bigrams:
        raise ValueError(f"{path}: bigrams apply to the PyPI TSV only, not to svmlight")
    X, y = load_svmlight(path)
    if n_features is not None and X.shape[1] < n_features:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    return _split(X, y, test_size, random_state)


# --------------------------------------------------------------------------- shared


def _canonical_csr(X):
    """CSR float64, sorted indices without duplicates, int32 indices when they fit."""
    X = sp.csr_matrix(X, dtype=np.float64)
    X.sum_duplicates()  # also sorts the indices
    if max(X.nnz, X.shape[1]) <= np.iinfo(np.int32).max:
        X.indices = X.indices.astype(np.int32, copy=False)
        X.indptr = X.indptr.astype(np.int32, copy=False)
    return X


def _split(X, y, test_size, random_state):
    stratify = None
    if type_of_target(y) in ("binary", "multiclass"):
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=stratify
    )
    return _canonical_csr(X_train), _canonical_csr(X_test), y_train, y_test
