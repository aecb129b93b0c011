"""The ``sparseopt`` command line, run as a subprocess: outputs, exit codes, errors."""

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_svmlight_file
from sklearn.metrics import log_loss, roc_auc_score

import sparseopt
from sparseopt import SparseClassifier
from sparseopt.cli import n_features_type

N_FEATURES = 64


def run(*args, check_status=0):
    """Run ``python -m sparseopt args``; subprocesses share this NUMBA_CACHE_DIR."""
    proc = subprocess.run([sys.executable, "-m", "sparseopt", *map(str, args)],
                          capture_output=True, text=True, env=dict(os.environ))
    if check_status is not None:
        assert proc.returncode == check_status, proc.stderr
    return proc


def assert_one_line_error(proc, *fragments, status=1):
    assert proc.returncode == status
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_problem(path, n=300, n_classes=2, regression=False, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, N_FEATURES, density=0.1, format="csr", random_state=seed)
    X.data = np.round(X.data, 8)
    scores = X @ rng.normal(size=(N_FEATURES, n_classes)) * 3
    y = scores[:, 0] if regression else np.argmax(scores, axis=1)
    dump_svmlight_file(X, y, str(path), zero_based=False)
    return str(path)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A binary model fitted by the command line, in file order, with a hold-out."""
    folder = tmp_path_factory.mktemp("cli")
    data = write_problem(folder / "train.svm")
    model = folder / "model.npz"
    proc = run("fit", data, "-o", model, "--n-features", N_FEATURES, "--chunk-rows", 50,
               "--holdout-every", 3, "--no-shuffle", "--classes", "0,1")
    return data, str(model), proc


def test_fit_prints_an_epoch_table_and_writes_a_loadable_model(fitted):
    data, model_path, proc = fitted
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["epoch", "rows", "seconds", "rows/s"]
    rows = [line.split() for line in lines[1:4]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(r[1] == "200" for r in rows)  # 300 rows, every third chunk of 50 held out
    train_loss, holdout_loss = float(rows[-1][-2]), float(rows[-1][-1])
    assert 0 < train_loss < np.log(2) and 0 < holdout_loss < np.log(2)
    assert lines[-1] == f"model written to {model_path}"
    model = sparseopt.load(model_path)
    # The same as fit_stream in file order on the training chunks: 600 steps.
    assert model.t_ == 600 and model.coef_.shape == (1, N_FEATURES)


def test_predict_writes_probabilities_one_per_line(fitted, tmp_path):
    data, model_path, _ = fitted
    out = tmp_path / "p.txt"
    run("predict", model_path, data, "-o", out)
    predicted = np.loadtxt(out)
    X, _ = load_svmlight_file(data, n_features=N_FEATURES)
    expected = sparseopt.load(model_path).predict_proba(X)[:, 1]
    assert predicted.shape == (300,)
    np.testing.assert_allclose(predicted, expected, rtol=1e-9)


def test_evaluate_prints_log_loss_auc_accuracy(fitted):
    data, model_path, _ = fitted
    proc = run("evaluate", model_path, data)
    metrics = dict(line.split() for line in proc.stdout.splitlines())
    X, y = load_svmlight_file(data, n_features=N_FEATURES)
    model = sparseopt.load(model_path)
    proba = model.predict_proba(X)
    assert int(metrics["rows"]) == 300
    assert float(metrics["log_loss"]) == pytest.approx(log_loss(y, proba), rel=1e-5)
    assert float(metrics["auc"]) == pytest.approx(roc_auc_score(y, proba[:, 1]), rel=1e-5)
    assert float(metrics["accuracy"]) == pytest.approx(model.score(X, y), rel=1e-5)
    assert float(metrics["auc"]) > 0.8


def test_file_order_fit_equals_in_memory_fit(tmp_path):
    data = write_problem(tmp_path / "d.svm")
    gz = tmp_path / "d.svm.gz"
    gz.write_bytes(gzip.compress(open(data, "rb").read()))
    model_path = tmp_path / "m.npz"
    run("fit", gz, "-o", model_path, "--n-features", "2**6", "--chunk-rows", 70,
        "--no-shuffle", "--optimizer", "sgd", "--epochs", 2, "-q")
    X, y = load_svmlight_file(data, n_features=N_FEATURES)
    reference = SparseClassifier(optimizer="sgd", shuffle=False, max_iter=2).fit(X, y)
    model = sparseopt.load(model_path)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-12)


def test_regression_round_trip_reports_rmse(tmp_path):
    data = write_problem(tmp_path / "r.svm", regression=True)
    model_path = tmp_path / "r.npz"
    proc = run("fit", data, "-o", model_path, "--loss", "squared_error", "--n-features",
               N_FEATURES, "--epochs", 2)
    assert proc.stdout.splitlines()[-1] == f"model written to {model_path}"
    metrics = dict(line.split() for line in run("evaluate", model_path, data).stdout.splitlines())
    X, y = load_svmlight_file(data, n_features=N_FEATURES)
    model = sparseopt.load(model_path)
    rmse = np.sqrt(np.mean((model.predict(X) - y) ** 2))
    assert float(metrics["rmse"]) == pytest.approx(rmse, rel=1e-5)
    assert rmse < np.std(y)  # better than the mean


def test_multiclass_text_round_trip(tmp_path):
    words = ["red apple", "green leaf", "blue sky", "red cherry", "green grass", "blue sea"]
    lines = ["name\ttext\tlabel"] + [
        f"item{i}\t{words[i % 6]} {i}\t{(i % 6) // 2}" for i in range(120)]
    data = tmp_path / "t.tsv.gz"
    data.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    model_path = tmp_path / "t.npz"
    proc = run("fit", data, "-o", model_path, "--label-column", "label", "--text-columns",
               "text", "--n-features", "2**10", "--chunk-rows", 25, "--epochs", 5)
    assert proc.stderr == ""
    np.testing.assert_array_equal(sparseopt.load(model_path).classes_, [0.0, 1.0, 2.0])
    out = tmp_path / "p.txt"
    run("predict", model_path, data, "-o", out, "--label-column", "label", "--text-columns",
        "text")
    proba = np.loadtxt(out)
    assert proba.shape == (120, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert np.mean(np.argmax(proba, axis=1) == [(i % 6) // 2 for i in range(120)]) > 0.9


@pytest.mark.parametrize("command", ["fit", "predict", "evaluate"])
def test_help_is_complete(command):
    proc = run(command, "--help")
    for option in ["--format", "--chunk-rows", "--zero-based", "--label-column"]:
        assert option in proc.stdout
    if command == "fit":
        for option in ["--loss", "--optimizer", "--epochs", "--eta0", "--alpha",
                       "--n-features", "--holdout-every", "--classes", "--shuffle-buffer",
                       "--progress", "-o MODEL"]:
            assert option in proc.stdout


def test_errors_are_one_line_with_non_zero_status(tmp_path, fitted):
    data, model_path, _ = fitted
    assert_one_line_error(run("fit", tmp_path / "none.svm", "-o", tmp_path / "m.npz",
                              check_status=None), "none.svm: no such file")
    assert_one_line_error(run("fit", data, "-o", tmp_path / "m.npz", "--epochs", "many",
                              check_status=None), "--epochs", status=2)
    assert_one_line_error(run("fit", data, "-o", tmp_path / "m.npz", "--n-features", "2**x",
                              check_status=None), "--n-features", status=2)
    assert_one_line_error(run("fit", data, "-o", tmp_path / "m.npz", "--optimizer", "adam",
                              "--penalty", "l1", check_status=None), "penalty='l1'")
    assert_one_line_error(run(check_status=None), "required", status=2)
    assert_one_line_error(run("predict", tmp_path / "none.npz", data, check_status=None),
                          "none.npz")
    assert_one_line_error(run("evaluate", data, data, check_status=None),
                          "not a sparseopt model file")
    bad = tmp_path / "bad.svm"
    bad.write_text("1 1:1\n0 2:1\n1 3:x\n")
    assert_one_line_error(run("fit", bad, "-o", tmp_path / "m.npz", "--classes", "0,1",
                              check_status=None), "bad.svm, line 3: cannot parse")
    assert not (tmp_path / "m.npz").exists()
    labels = tmp_path / "labels.svm"
    labels.write_text("1 1:1\n0 2:1\n2 3:1\n")
    assert_one_line_error(run("evaluate", model_path, labels, check_status=None),
                          "labels.svm, line 3: label 2.0 is not one of classes")


def test_n_features_accepts_powers():
    assert n_features_type("2**20") == 2**20
    assert n_features_type("2^10") == 1024
    assert n_features_type("5000") == 5000
