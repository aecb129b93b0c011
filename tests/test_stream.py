"""Chunk readers and fit_stream: shapes, formats, exactness against fit, bad input."""

import bz2
import gzip
import lzma
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import dump_svmlight_file, load_svmlight_file
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.metrics import log_loss

from sparseopt import SparseClassifier, SparseRegressor
from sparseopt.stream import DataError, fit_stream, svmlight_chunks, text_chunks

N_ROWS, N_FEATURES = 240, 40
COMPRESSORS = {"": None, ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def problem(n=N_ROWS, d=N_FEATURES, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.15, format="csr", random_state=seed)
    X.data = np.round(X.data, 8)  # values that survive the text file exactly
    W = rng.normal(size=(d, n_classes)) * 3
    scores = X @ W
    y_class = np.argmax(scores + 0.3 * rng.normal(size=scores.shape), axis=1)
    return X, y_class, scores[:, 0]


def write_svmlight(path, X, y, zero_based=False, compress=None):
    dump_svmlight_file(X, y, str(path), zero_based=zero_based)
    if compress is not None:
        path.write_bytes(compress(path.read_bytes()))
    return str(path)


@pytest.fixture
def svm_file(tmp_path):
    X, y, _ = problem()
    return write_svmlight(tmp_path / "train.svm", X, y)


def stacked(source):
    chunks = list(source)
    return sp.vstack([X for X, _ in chunks], format="csr"), np.concatenate([y for _, y in chunks])


def assert_same_matrix(A, B):
    assert A.shape == B.shape
    assert (A != B).nnz == 0


# ------------------------------------------------------------------------------ readers


def test_chunks_have_fixed_width_and_at_most_chunk_rows(svm_file):
    source = svmlight_chunks(svm_file, n_features=N_FEATURES + 7, chunk_rows=37)
    chunks = list(source)
    assert [X.shape[0] for X, _ in chunks] == [37] * 6 + [N_ROWS - 6 * 37]
    for X, y in chunks:
        assert sp.isspmatrix_csr(X) and X.dtype == np.float64
        assert X.shape[1] == N_FEATURES + 7 and y.shape == (X.shape[0],)
    X_all, y_all = load_svmlight_file(svm_file, n_features=N_FEATURES + 7)
    X_chunks, y_chunks = stacked(source)
    assert_same_matrix(X_chunks, X_all)
    np.testing.assert_array_equal(y_chunks, y_all)


@pytest.mark.parametrize("suffix", list(COMPRESSORS))
def test_each_compression_reads_the_same_rows(tmp_path, suffix):
    X, y, _ = problem()
    path = write_svmlight(tmp_path / f"data.svm{suffix}", X, y, compress=COMPRESSORS[suffix])
    X_read, y_read = stacked(svmlight_chunks(path, N_FEATURES, chunk_rows=50))
    assert_same_matrix(X_read, X)
    np.testing.assert_array_equal(y_read, y)


def test_source_starts_again_on_every_iteration(svm_file):
    source = svmlight_chunks(svm_file, N_FEATURES, chunk_rows=100)
    first, second = list(source), list(source)
    assert len(first) == len(second) == 3
    for (X1, y1), (X2, y2) in zip(first, second):
        assert_same_matrix(X1, X2)
        np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("zero_based", [True, False])
def test_auto_index_base_matches_scikit_learn(tmp_path, zero_based):
    X, y, _ = problem()
    X = X.tolil()
    X[0, 0] = 5.0  # index 0 in the first chunk, so a zero-based file says so at once
    X = X.tocsr()
    path = write_svmlight(tmp_path / "d.svm", X, y, zero_based=zero_based)
    source = svmlight_chunks(path, N_FEATURES + 1, chunk_rows=30)
    X_read, _ = stacked(source)
    assert source.zero_based_ is zero_based
    X_sklearn, _ = load_svmlight_file(path, n_features=N_FEATURES + 1, zero_based="auto")
    assert_same_matrix(X_read, X_sklearn)


def test_index_zero_after_a_one_based_first_chunk_names_the_line(tmp_path):
    path = tmp_path / "mixed.svm"
    path.write_text("1 1:1 2:1\n0 3:1\n1 2:1\n0 0:1 4:2\n")
    with pytest.raises(DataError, match=r"mixed\.svm, line 4: feature index 0 .*zero_based=True"):
        list(svmlight_chunks(str(path), 10, chunk_rows=2))
    X, _ = stacked(svmlight_chunks(str(path), 10, chunk_rows=2, zero_based=True))
    assert X[3, 0] == 1.0 and X[0, 1] == 1.0


def test_comments_and_blank_lines_keep_line_numbers(tmp_path):
    path = tmp_path / "c.svm"
    path.write_text("# header comment\n1 1:1\n\n0 2:1  # trailing\n# more\n1 3:2\n")
    chunks = list(svmlight_chunks(str(path), 5, chunk_rows=4))
    assert [c.line_of(i) for c in chunks for i in range(c.X.shape[0])] == [2, 4, 6]
    path.write_text("# header comment\n1 1:1\n\n0 2:1  # trailing\n# more\n1 3:nan\n")
    with pytest.raises(DataError, match=r"c\.svm, line 6: feature value is NaN"):
        list(svmlight_chunks(str(path), 5, chunk_rows=100))


@pytest.mark.parametrize("line, message", [
    ("1 2:x", r"line 3: cannot parse b'1 2:x'"),
    ("zz 2:1", r"line 3: cannot parse b'zz 2:1'"),
    ("1 4:1 2:1", r"line 3: cannot parse .*sorted"),
    ("1 2:1 junk", r"line 3: cannot parse"),
    ("1 11:1", r"line 3: feature index 11 is out of range for n_features=10"),
    ("1 2:inf", r"line 3: feature value is NaN or infinite"),
    ("nan 2:1", r"line 3: label is NaN or infinite"),
])
def test_bad_line_error_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.svm"
    path.write_text(f"1 1:1\n0 2:1\n{line}\n1 3:1\n")
    with pytest.raises(DataError, match=r"bad\.svm, " + message) as info:
        list(svmlight_chunks(str(path), 10, chunk_rows=2))
    assert info.value.path == str(path) and info.value.line == 3


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_truncated_compressed_file_raises(tmp_path, suffix):
    X, y, _ = problem(n=2000)
    path = write_svmlight(tmp_path / f"t.svm{suffix}", X, y, compress=COMPRESSORS[suffix])
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"t\.svm.*, line \d+: compressed data ends early"):
        for _ in svmlight_chunks(path, N_FEATURES, chunk_rows=100):
            pass


def test_missing_file_fails_before_reading(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.svm"):
        svmlight_chunks(str(tmp_path / "nope.svm"), 10)


TSV = ("name\tsummary\tpopular\n"
       "numpy\tarray computing\t1\n"
       "tiny\ta \"quoted\" tool\t0\n"
       "\n"
       "scipy\tscientific computing\t1\n")


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_text_chunks_vectorize_text_columns(tmp_path, suffix):
    path = tmp_path / f"p.tsv{suffix}"
    path.write_bytes((gzip.compress if suffix else bytes)(TSV.encode()))
    vectorizer = HashingVectorizer(n_features=64, alternate_sign=False)
    source = text_chunks(str(path), vectorizer, chunk_rows=2, label_column="popular",
                         text_columns=["name", "summary"])
    chunks = list(source)
    assert [c.X.shape for c in chunks] == [(2, 64), (1, 64)]
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), [1.0, 0.0, 1.0])
    expected = vectorizer.transform(["numpy array computing", 'tiny a "quoted" tool',
                                     "scipy scientific computing"])
    assert_same_matrix(sp.vstack([c.X for c in chunks], format="csr"), expected)
    assert chunks[1].line_of(0) == 5  # the blank line 4 makes no row
    assert len(list(source)) == 2  # re-iterable


@pytest.mark.parametrize("line, message", [
    ("bad\tline", r"line 3: expected 3 fields, saw 2"),
    ("x\ty\tmaybe", r"line 3: bad label 'maybe'"),
    ("x\ty\tnan", r"line 3: label 'nan' is NaN"),
])
def test_text_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text(f"a\tb\tlabel\nx\ty\t1\n{line}\n")
    source = text_chunks(str(path), HashingVectorizer(n_features=16), chunk_rows=10)
    with pytest.raises(DataError, match=r"bad\.tsv, " + message):
        list(source)


# ------------------------------------------------------------------------------ fit_stream


def in_memory_and_streamed(estimator, path, n_features, chunk_rows, epochs=3, **kwargs):
    X, y = load_svmlight_file(path, n_features=n_features)
    fitted = estimator.set_params(max_iter=epochs).fit(X, y)
    streamed = fit_stream(estimator.__class__(**estimator.get_params()),
                          svmlight_chunks(path, n_features, chunk_rows=chunk_rows),
                          epochs=epochs, **kwargs)
    return fitted, streamed


def assert_same_coefficients(streamed, fitted):
    """Equal to 1e-12 of the largest weight.

    Relative, not absolute: every partial_fit call ends with the engine's flush, which
    folds the weight-decay scale into the weights (one rounding per weight per call)
    where fit folds once per epoch. Multinomial sgd ("optimal" steps, weights ~20 here)
    then ends 1.2e-12 away in absolute terms, 6e-14 of its largest weight; with
    penalty=None (no scale) it is bit for bit.
    """
    tol = 1e-12 * max(np.abs(fitted.coef_).max(), np.abs(fitted.intercept_).max(), 1.0)
    np.testing.assert_allclose(streamed.coef_, fitted.coef_, rtol=0, atol=tol)
    np.testing.assert_allclose(streamed.intercept_, fitted.intercept_, rtol=0, atol=tol)


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd", "ftrl", "adam"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_chunked_training_equals_fit_on_the_whole_file(tmp_path, optimizer, kind):
    X, y_class, y_real = problem(n_classes=3 if kind == "multiclass" else 2)
    regression = kind == "regression"
    path = write_svmlight(tmp_path / "d.svm", X, y_real if regression else y_class)
    estimator = (SparseRegressor if regression else SparseClassifier)(
        optimizer=optimizer, shuffle=False)
    fitted, streamed = in_memory_and_streamed(estimator, path, N_FEATURES, chunk_rows=53)
    assert_same_coefficients(streamed, fitted)
    assert streamed.t_ == fitted.t_ == 3 * N_ROWS
    assert np.abs(fitted.coef_).max() > 0.1  # something was learned


@settings(max_examples=12, deadline=None)
@given(chunk_rows=st.integers(1, N_ROWS + 5))
def test_any_chunk_size_gives_the_same_coefficients(tmp_path_factory, chunk_rows):
    X, y, _ = problem()
    path = write_svmlight(tmp_path_factory.mktemp("h") / "d.svm", X, y)
    fitted, streamed = in_memory_and_streamed(
        SparseClassifier(optimizer="sgd", shuffle=False), path, N_FEATURES, chunk_rows, epochs=2)
    assert_same_coefficients(streamed, fitted)


def test_train_loss_is_the_progressive_loss_of_fit(svm_file):
    fitted, streamed = in_memory_and_streamed(
        SparseClassifier(shuffle=False, penalty=None), svm_file, N_FEATURES, 50, epochs=2)
    losses = [record.train_loss for record in streamed.stream_history_]
    np.testing.assert_allclose(losses, fitted.loss_curve_, rtol=1e-12)
    # With a penalty, the reported loss leaves the penalty out.
    fitted, streamed = in_memory_and_streamed(
        SparseClassifier(shuffle=False, alpha=1e-3), svm_file, N_FEATURES, N_ROWS, epochs=1)
    w = fitted._model.coef
    penalty = 0.5 * 1e-3 * np.sum(w * w)
    assert streamed.stream_history_[0].train_loss == pytest.approx(
        fitted.loss_curve_[0] - penalty, rel=1e-12)


def test_holdout_chunks_are_scored_progressively_and_never_trained(svm_file):
    chunks = list(svmlight_chunks(svm_file, N_FEATURES, chunk_rows=40))  # 6 chunks
    model = fit_stream(SparseClassifier(shuffle=False), chunks, epochs=2, classes=[0, 1],
                       holdout_every=3)
    record = model.stream_history_[-1]
    assert (record.rows, record.holdout_rows) == (160, 80)
    # Same as training on chunks 0, 1, 3, 4 only, scoring 2 and 5 as they go by.
    reference = SparseClassifier(shuffle=False)
    for _ in range(2):
        held_out = []
        for index, (X, y) in enumerate(chunks):
            if index % 3 == 2:
                held_out.append(log_loss(y, reference.predict_proba(X), labels=[0, 1]))
            else:
                reference.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=0)
    assert record.holdout_loss == pytest.approx(np.mean(held_out), rel=1e-12)


def test_shuffle_buffer_is_deterministic_given_random_state(svm_file):
    source = svmlight_chunks(svm_file, N_FEATURES, chunk_rows=30)

    def coef(seed, buffer=3):
        model = fit_stream(SparseClassifier(shuffle=False), source, epochs=2, classes=[0, 1],
                           shuffle_buffer=buffer, random_state=seed)
        assert model.stream_history_[-1].rows == N_ROWS
        return model.coef_

    np.testing.assert_array_equal(coef(0), coef(0))
    assert not np.allclose(coef(0), coef(1))
    unshuffled = fit_stream(SparseClassifier(shuffle=False), source, epochs=2, classes=[0, 1])
    assert not np.allclose(coef(0), unshuffled.coef_)


def test_label_outside_classes_names_file_and_line(tmp_path):
    path = tmp_path / "labels.svm"
    path.write_text("1 1:1\n0 2:1\n# comment\n1 3:1\n2 1:1\n")
    with pytest.raises(DataError, match=r"labels\.svm, line 5: label 2\.0 is not one of "
                                        r"classes \[0\.0, 1\.0\]"):
        fit_stream(SparseClassifier(), svmlight_chunks(str(path), 5, chunk_rows=2),
                   classes=[0.0, 1.0])


def test_classes_are_found_by_a_first_pass(tmp_path):
    X, y, _ = problem(n_classes=3)
    path = write_svmlight(tmp_path / "d.svm", X, y)
    model = fit_stream(SparseClassifier(), svmlight_chunks(path, N_FEATURES, chunk_rows=50),
                       epochs=1)
    np.testing.assert_array_equal(model.classes_, [0.0, 1.0, 2.0])


def test_bad_line_leaves_the_state_of_the_last_complete_chunk(tmp_path):
    X, y, _ = problem()
    path = write_svmlight(tmp_path / "d.svm", X, y)
    lines = open(path).read().splitlines(keepends=True)
    lines[129] = "1 3:oops\n"  # line 130, in the third chunk of 50 lines
    open(path, "w").writelines(lines)
    model = SparseClassifier(shuffle=False)
    with pytest.raises(DataError, match=r"d\.svm, line 130"):
        fit_stream(model, svmlight_chunks(path, N_FEATURES, chunk_rows=50), epochs=2,
                   classes=[0, 1])
    reference = SparseClassifier(shuffle=False)
    reference.partial_fit(X[:50], y[:50], classes=[0, 1]).partial_fit(X[50:100], y[50:100])
    assert model.t_ == 100
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    np.testing.assert_array_equal(model._model.P, reference._model.P)
    assert model.stream_history_ == []  # no epoch completed


def test_generator_source_is_refused_for_several_epochs(svm_file):
    chunks = iter(list(svmlight_chunks(svm_file, N_FEATURES, chunk_rows=50)))
    with pytest.raises(TypeError, match="re-iterable"):
        fit_stream(SparseClassifier(), chunks, epochs=2, classes=[0, 1])


def test_verbose_table_and_progress_bar(svm_file, capsys):
    source = svmlight_chunks(svm_file, N_FEATURES, chunk_rows=50)
    fit_stream(SparseClassifier(), source, epochs=2, classes=[0, 1], holdout_every=2,
               progress=True, verbose=1)
    out, err = capsys.readouterr()
    table = out.splitlines()
    assert table[0].split() == ["epoch", "rows", "seconds", "rows/s", "train", "loss",
                                "hold-out", "loss"]
    assert [row.split()[0] for row in table[1:]] == ["1", "2"]
    assert all(math.isfinite(float(row.split()[-1])) for row in table[1:])
    assert "rows/s" in err  # tqdm's rate


def test_holdout_with_too_few_chunks_warns(svm_file):
    with pytest.warns(UserWarning, match="nothing was held out"):
        fit_stream(SparseClassifier(), svmlight_chunks(svm_file, N_FEATURES, chunk_rows=100),
                   epochs=1, classes=[0, 1], holdout_every=5)
