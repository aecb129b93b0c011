"""bench.data_io: the PyPI featurization (words, optional bigrams) and its loader."""

import gzip

import numpy as np
import pytest
from sklearn.datasets import dump_svmlight_file

from bench.data_io import featurize_pypi, load_dataset, pypi_tokens


def test_tokens_words_bigrams_and_month():
    assert pypi_tokens("scikit-learn", "A set of Python modules", "2026-10") == [
        "n:scikit", "n:learn", "set", "of", "python", "modules", "year:2026",
        "month:2026-10"]
    assert pypi_tokens("scikit-learn", "Python modules", "", bigrams=True) == [
        "n:scikit", "n:learn", "python", "modules", "n:scikit learn", "python modules",
        "month:none"]
    # One word: no pair, nothing else added.
    assert pypi_tokens("numpy", "arrays", "", use_month=False, bigrams=True) == [
        "n:numpy", "arrays"]


def test_bigrams_add_one_column_per_pair():
    names, summaries, months = ["ab-cd", "ef"], ["one two three", "four"], ["2020-01", ""]
    words = featurize_pypi(names, summaries, months, n_features=2**20)
    both = featurize_pypi(names, summaries, months, n_features=2**20, bigrams=True)
    # Row 0: 2 name words + 3 summary words + 2 month tokens, then 1 + 2 pairs.
    assert np.diff(words.indptr).tolist() == [7, 3]
    assert np.diff(both.indptr).tolist() == [10, 3]
    np.testing.assert_allclose(np.asarray(both.multiply(both).sum(axis=1)).ravel(), 1.0)


def test_load_dataset_bigrams(tmp_path):
    tsv = tmp_path / "p.tsv.gz"
    lines = ["name\tsummary\tmonth\tpopular"] + [
        f"pkg{i}\tfast sparse thing {i}\t2020-0{1 + i % 9}\t{int(i % 4 == 0)}"
        for i in range(10, 50)]  # two-digit numbers: words of at least two characters
    with gzip.open(tsv, "wt") as f:
        f.write("\n".join(lines) + "\n")
    Xw, _, _, _ = load_dataset(tsv, n_features=2**18, test_size=0.25)
    Xb, _, _, _ = load_dataset(tsv, n_features=2**18, test_size=0.25, bigrams=True)
    assert Xb.nnz == Xw.nnz + 3 * Xw.shape[0]  # "fast sparse", "sparse thing", "thing N"

    svm = tmp_path / "d.svm"
    dump_svmlight_file(np.eye(4), np.array([0, 1, 0, 1]), str(svm))
    with pytest.raises(ValueError, match="bigrams apply to the PyPI TSV only"):
        load_dataset(svm, n_features=None, bigrams=True)
