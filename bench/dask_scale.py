"""Dask with 1 and 2 workers against one process: ``python -m bench.dask_scale``.

:func:`measure` fits the same estimator three ways on the same split and returns one row
per way: one process (``SparseClassifier.fit``), then ``sparseopt.dask.fit`` on a
``LocalCluster`` of 1 and of 2 worker processes (one thread each), the training rows cut
into as many partitions as the largest cluster has workers. With the same partitions the
Dask model is the same whatever the number of workers (the combination is in partition
order), so the two Dask rows differ in time only; the gap to one process is the price of
parameter mixing.

Timed: seconds per epoch, the fit's wall time divided by ``epochs``. Not timed: starting
the cluster, sending the partitions to the workers (persisted before), and a first
1-epoch fit that loads the compiled kernels in every worker. Command-line options:
``--data`` (a PyPI TSV or svmlight file, default the shipped 100k-row sample hashed to
2^18 columns), ``--epochs``, ``--optimizer``. ``bench.scale`` calls :func:`measure`.
"""

import argparse
import os
import platform
import time

import numpy as np
from sklearn.metrics import log_loss

SAMPLE = os.path.join(os.path.dirname(__file__), "data", "pypi_popular_100k.tsv.gz")


def measure(X_train, y_train, X_test, y_test, epochs=3, optimizer="adagrad",
            workers=(1, 2), random_state=0):
    """Seconds per epoch and test log loss: one process, then Dask with each worker count.

    Parameters
    ----------
    X_train, X_test : scipy.sparse.csr_matrix
    y_train, y_test : ndarray
        A binary or multiclass problem.
    epochs : int, default=3
    optimizer : str, default="adagrad"
    workers : sequence of int, default=(1, 2)
        Worker processes of each ``LocalCluster``.
    random_state : int, default=0

    Returns
    -------
    list of dict
        Keys ``method``, ``workers``, ``partitions``, ``s_per_epoch``, ``test_log_loss``,
        ``vs_one_process`` (relative difference of the test loss).
    """
    import dask.array as da
    from distributed import Client, LocalCluster

    import sparseopt.dask as sdask
    from sparseopt import SparseClassifier

    def estimator():
        return SparseClassifier(optimizer=optimizer, max_iter=epochs,
                                random_state=random_state)

    estimator().fit(X_train[:1000], y_train[:1000])  # compile (or load) the kernel here
    start = time.perf_counter()
    one = estimator().fit(X_train, y_train)
    seconds = (time.perf_counter() - start) / epochs
    base = log_loss(y_test, one.predict_proba(X_test))
    rows = [_row("one process", 0, 1, seconds, base, base)]

    n_parts = max(workers)
    chunk = -(-X_train.shape[0] // n_parts)
    classes = np.unique(y_train)
    for n_workers in workers:
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(n_workers)
            dX = da.from_array(X_train, chunks=(chunk, -1), asarray=False).persist()
            dy = da.from_array(np.asarray(y_train), chunks=chunk).persist()
            sdask.fit(estimator(), dX, dy, epochs=1, classes=classes)  # warm the workers
            start = time.perf_counter()
            fitted = sdask.fit(estimator(), dX, dy, epochs=epochs, classes=classes)
            seconds = (time.perf_counter() - start) / epochs
        loss = log_loss(y_test, fitted.predict_proba(X_test))
        rows.append(_row("sparseopt.dask.fit", n_workers, n_parts, seconds, loss, base))
    return rows


def _row(method, workers, partitions, seconds, loss, base):
    return {"method": method, "workers": workers, "partitions": partitions,
            "s_per_epoch": seconds, "test_log_loss": loss,
            "vs_one_process": loss / base - 1.0}


def markdown(rows):
    """The rows of :func:`measure` as a Markdown table."""
    lines = ["| method | workers | partitions | s/epoch | test log loss | vs one process |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['workers'] or '-'} | {r['partitions']} | "
                     f"{r['s_per_epoch']:.3f} | {r['test_log_loss']:.5f} | "
                     f"{100 * r['vs_one_process']:+.2f}% |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.dask_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=SAMPLE, help="PyPI TSV or svmlight file")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="adagrad")
    args = parser.parse_args(argv)

    from .data_io import load_dataset

    X_train, X_test, y_train, y_test = load_dataset(args.data, n_features=2**18)
    rows = measure(X_train, y_train, X_test, y_test, epochs=args.epochs,
                   optimizer=args.optimizer)
    print(f"{os.path.basename(args.data)}: {X_train.shape[0]:,} train x {X_train.shape[1]:,} "
          f"columns, {X_test.shape[0]:,} test; {args.optimizer}, {args.epochs} epochs; "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load "
          f"average {os.getloadavg()[0]:.1f}")
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
