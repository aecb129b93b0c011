"""sparseopt.dask and dask_ml's Incremental on a LocalCluster of two worker processes.

Skipped without the ``[dask]`` extra (CI installs it). The cluster is started once for the
module; its workers inherit ``NUMBA_CACHE_DIR``, and the kernels are compiled in this
process first so that the workers load them from the cache instead of compiling.
"""

import os
import signal
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import log_loss

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

import sparseopt.dask as sdask  # noqa: E402
from sparseopt import SparseClassifier, SparseRegressor, _engine  # noqa: E402
from sparseopt.datasets import make_sparse_classification  # noqa: E402

# from_array puts the in-memory test matrices in the graph; real data would be read on the
# workers (svmlight_partitions, da.from_delayed).
pytestmark = pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "bench", "data",
                      "pypi_popular_100k.tsv.gz")


@pytest.fixture(scope="module")
def client():
    X, y, _ = make_sparse_classification(n_samples=200, n_features=500, random_state=0)
    for optimizer in ("adagrad", "sgd"):  # compile here; the workers read the cache
        SparseClassifier(optimizer=optimizer).fit(X, y)
    SparseRegressor().fit(X, y.astype(float))
    X64 = sp.csr_matrix((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                        shape=X.shape)  # load_svmlight_file's index type
    SparseClassifier().fit(X64, y)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def pypi():
    from bench.data_io import load_pypi

    return load_pypi(SAMPLE, n_features=2**18)


def as_dask(X, y, n_blocks):
    rows = -(-X.shape[0] // n_blocks)
    return (da.from_array(X, chunks=(rows, -1), asarray=False),
            da.from_array(np.asarray(y), chunks=rows))


def in_process(estimator, X, y, n_blocks, epochs, seed):
    """The same rounds without a cluster: every partition in this one process."""
    shell = sdask._shell(estimator, X.shape[1], np.unique(y), None, None, None)
    settings = shell._settings(0)
    rows = -(-X.shape[0] // n_blocks)
    parts = [sdask._prepare(shell, (X[a:a + rows], y[a:a + rows]))
             for a in range(0, X.shape[0], rows)]
    model = _engine.LazyModel(settings.optimizer, X.shape[1], shell._n_outputs())
    for epoch in range(epochs):
        results = [sdask._train_partition(shell, settings, model, part, (seed, epoch, p), 0,
                                          X.shape[0]) for p, part in enumerate(parts)]
        model = sdask._combine(model, settings, *results)
    return model


def test_fit_is_deterministic_and_independent_of_worker_placement(client):
    X, y, _ = make_sparse_classification(n_samples=3000, n_features=2000, random_state=1)
    dX, dy = as_dask(X, y, 4)
    first = sdask.fit(SparseClassifier(), dX, dy, epochs=2, random_state=7, client=client)
    second = sdask.fit(SparseClassifier(), dX, dy, epochs=2, random_state=7, client=client)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)
    local = in_process(SparseClassifier(), X, y, 4, 2, 7)
    np.testing.assert_array_equal(first.coef_, local.coef.T)
    other_seed = sdask.fit(SparseClassifier(), dX, dy, epochs=2, random_state=8,
                           client=client)
    assert not np.array_equal(first.coef_, other_seed.coef_)
    assert first.t_ == 2 * X.shape[0] and len(first.loss_curve_) == 2


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_pypi_test_loss_within_2_percent_of_one_machine(client, pypi, optimizer):
    X_train, X_test, y_train, y_test = pypi
    one = SparseClassifier(optimizer=optimizer, random_state=0).fit(X_train, y_train)
    dX, dy = as_dask(X_train, y_train, 2)
    dask_fit = sdask.fit(SparseClassifier(optimizer=optimizer, random_state=0), dX, dy,
                         epochs=3, client=client)
    one_loss = log_loss(y_test, one.predict_proba(X_test))
    dask_loss = log_loss(y_test, dask_fit.predict_proba(X_test))
    assert dask_loss <= 1.02 * one_loss, (dask_loss, one_loss)
    assert dask_fit.t_ == one.t_ == 3 * X_train.shape[0]


def test_a_worker_killed_during_a_round_does_not_lose_the_fit(client, pypi):
    X_train, _, y_train, _ = pypi
    dX, dy = as_dask(X_train, y_train, 4)
    dX, dy = dX.persist(), dy.persist()  # data on the workers, recomputable from its graph
    undisturbed = sdask.fit(SparseClassifier(random_state=0), dX, dy, epochs=3, client=client)

    outcome = {}

    def fit_in_background():
        try:
            outcome["fit"] = sdask.fit(SparseClassifier(random_state=0), dX, dy, epochs=3,
                                       client=client)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=fit_in_background)
    thread.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        for address, keys in client.processing().items():
            if any("sparseopt-train" in str(k) and "-0-0-" not in str(k) for k in keys):
                victim = address  # a worker in the middle of a training task, epoch >= 2
                break
        time.sleep(0.005)
    assert victim is not None, "no training task was seen running"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)  # a hard crash; the nanny starts a new worker process
    thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    disturbed = outcome["fit"]
    assert victim not in client.scheduler_info()["workers"]
    np.testing.assert_array_equal(disturbed.coef_, undisturbed.coef_)
    np.testing.assert_array_equal(disturbed.intercept_, undisturbed.intercept_)
    client.wait_for_workers(2)


def test_incremental_wrapper_fits_predicts_and_scores(client):
    from dask_ml.wrappers import Incremental

    X, y, _ = make_sparse_classification(n_samples=2000, n_features=1000, random_state=2)
    dX, dy = as_dask(X, y, 4)
    inc = Incremental(SparseClassifier(random_state=0), shuffle_blocks=False)
    inc.fit(dX, dy, classes=[0, 1])
    proba = inc.predict_proba(dX)
    assert isinstance(proba, da.Array)
    proba = proba.compute()
    assert proba.shape == (2000, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert 0.5 < inc.score(dX, dy) <= 1.0  # accuracy: dask-ml's default scorer
    # Incremental is partial_fit block after block, in order: the same model exactly.
    sequential = SparseClassifier(random_state=0)
    for a in range(0, 2000, 500):
        sequential.partial_fit(X[a:a + 500], y[a:a + 500], classes=[0, 1])
    np.testing.assert_array_equal(inc.estimator_.coef_, sequential.coef_)
    assert log_loss(y, proba) < log_loss(y, np.full(len(y), y.mean()))


def test_svmlight_partitions_train_like_the_same_blocks_of_a_dask_array(client, tmp_path):
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(3)
    X = sp.random(400, 50, density=0.1, format="csr", random_state=3)
    X.data = np.round(X.data * 8) / 8 + 0.125  # exact in text
    y = (X @ rng.normal(size=50) > 0).astype(int)
    paths = []
    for p, a in enumerate(range(0, 400, 200)):
        paths.append(str(tmp_path / f"part{p}.svm"))
        dump_svmlight_file(X[a:a + 200], y[a:a + 200], paths[-1], zero_based=True)
    from_files = sdask.fit(SparseClassifier(), sdask.svmlight_partitions(paths, 50,
                                                                         zero_based=True),
                           epochs=2, random_state=0, client=client)
    dX, dy = as_dask(X, y, 2)
    from_array = sdask.fit(SparseClassifier(), dX, dy, epochs=2, random_state=0,
                           client=client)
    np.testing.assert_array_equal(from_files.coef_, from_array.coef_)


def test_regressor_and_sync_every(client):
    X, y, _ = make_sparse_classification(n_samples=1000, n_features=300, random_state=4)
    target = y + 0.1 * np.arange(1000) % 3
    dX, dy = as_dask(X, target, 2)
    every_100 = sdask.fit(SparseRegressor(random_state=0), dX, dy, epochs=2,
                          sync_every=100, client=client)
    assert every_100.t_ == 2000 and np.all(np.isfinite(every_100.coef_))
    assert every_100.coef_.shape == (300,)
    once = sdask.fit(SparseRegressor(random_state=0), dX, dy, epochs=2, client=client)
    assert not np.array_equal(once.coef_, every_100.coef_)
    # sync_every longer than a partition is once per epoch
    long = sdask.fit(SparseRegressor(random_state=0), dX, dy, epochs=2, sync_every=10**6,
                     client=client)
    np.testing.assert_array_equal(long.coef_, once.coef_)
    every_100.partial_fit(X[:10], target[:10])  # the estimator continues on one machine
    assert every_100.t_ == 2010


def test_bad_inputs_raise_clear_errors(client):
    X, y, _ = make_sparse_classification(n_samples=100, n_features=50, random_state=5)
    dX, dy = as_dask(X, y, 2)
    with pytest.raises(ValueError, match="row chunks"):
        sdask.fit(SparseClassifier(), dX, y, client=client)
    with pytest.raises(ValueError, match="balanced"):
        sdask.fit(SparseClassifier(class_weight="balanced"), dX, dy, client=client)
    with pytest.raises(ValueError, match="rows only"):
        sdask.fit(SparseClassifier(), dX.rechunk((50, 25)), dy, client=client)


def test_bench_dask_scale_reports_one_row_per_way(client):
    from bench.dask_scale import markdown, measure

    X, y, _ = make_sparse_classification(n_samples=1200, n_features=400, random_state=6)
    rows = measure(X[:1000], y[:1000], X[1000:], y[1000:], epochs=1, workers=(1,))
    assert [r["method"] for r in rows] == ["one process", "sparseopt.dask.fit"]
    assert all(r["s_per_epoch"] > 0 and np.isfinite(r["test_log_loss"]) for r in rows)
    assert markdown(rows).count("\n") == 3
