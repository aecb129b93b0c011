"""``python -m bench.floors``: its loops compute what they claim, and a small run reports
every part. Nothing here asserts how fast anything is."""

import math

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from bench.floors import _passes, _passes_threads, measure, report
from bench.speed import generate_matrix


def _reference(X, order, P, mask, with_sqrt):
    P = P.copy()
    total = 0.0
    for i in order:
        row = X.getrow(i)
        cols, vals = row.indices.astype(np.int64) & mask, row.data
        margin = float(sum(P[j, 0] * x for j, x in zip(cols, vals)))
        g_row = 1.0 / (1.0 + math.exp(-margin)) - 0.5
        for j, x in zip(cols, vals):
            g = g_row * x
            P[j, 1] += g * g
            P[j, 0] -= 0.01 * g / (math.sqrt(P[j, 1]) + 1e-3) if with_sqrt else 0.01 * g * P[j, 1]
        total += margin
    return P, total


@pytest.mark.parametrize("with_sqrt", [True, False])
@pytest.mark.parametrize("mask", [2**62 - 1, 3])
def test_passes_take_adagrads_step_on_the_records(with_sqrt, mask):
    rng = np.random.RandomState(0)
    X = sp.random(30, 12, density=0.3, format="csr", random_state=rng)
    order = rng.permutation(30).astype(np.int64)
    P0 = np.column_stack([rng.randn(12), rng.rand(12)])  # weights, sums of squares
    expected, total = _reference(X, order, P0, mask, with_sqrt)
    P = P0.copy()
    got = _passes(X.indptr, X.indices, X.data, order, P, np.int64(mask), with_sqrt)
    np.testing.assert_allclose(P, expected, rtol=1e-12, atol=1e-15)
    assert got == pytest.approx(total, rel=1e-12, abs=1e-15)
    assert np.all(P[:, 1] >= P0[:, 1]) and np.any(P[:, 1] > P0[:, 1])  # steps were taken


@pytest.mark.parametrize("n_threads, n_records", [(1, 1), (2, 1), (2, 2)])
def test_threads_run_every_row_once(n_threads, n_records):
    """Hogwild's shape: blocks from a counter, every row run by exactly one thread; with
    one thread, the same step as ``_passes`` over the same order."""
    if numba.config.NUMBA_NUM_THREADS < n_threads:
        pytest.skip("needs two threads")
    rng = np.random.RandomState(1)
    X = sp.random(1000, 40, density=0.1, format="csr", random_state=rng)
    order = rng.permutation(1000).astype(np.int64)
    records = np.zeros((n_records, 40, 2))
    records[:, :, 0] = rng.normal(0.0, 0.1, 40)  # from zeros, every step would be 0
    start = records[0].copy()
    numba.set_num_threads(n_threads)
    try:
        rows = _passes_threads(X.indptr, X.indices, X.data, order, records, n_threads)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert rows.sum() == 1000 and rows.shape == (n_threads,)
    if n_threads == 1:
        P = start.copy()
        _passes(X.indptr, X.indices, X.data, order, P, np.int64(2**62 - 1), True)
        np.testing.assert_array_equal(records[0], P)
    touched = np.unique(X.indices)
    # Every record a thread ran a row of was stepped: each thread's own, or the shared.
    assert np.all(records.sum(axis=0)[touched, 1] > 0)


@pytest.mark.parametrize("threads", [False, True])
def test_measure_reports_every_part(threads):
    if threads and numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    X, _, y, _ = generate_matrix(3000, 2**12, random_state=0, n_test=10)
    result, probes = measure(X, y, rounds=1, log=lambda *a: None, threads=threads)
    names = ["mat-vec", "memory", "arithmetic", "plain Adagrad", "sparseopt's Adagrad"]
    if threads:
        names += ["plain Adagrad in blocks, 1 thread", "2 threads, shared records",
                  "2 threads, own records", "sparseopt's Adagrad, 2 threads"]
    assert list(result) == names
    for name in names:
        part = result[name]
        assert part["seconds"] > 0 and part["ns_per_nnz"] > 0, (name, part)
    assert result["mat-vec"]["x_matvec"] == 1.0
    assert len(probes) == (1 if threads else 0)
    for name in names[5:]:
        if name != "plain Adagrad in blocks, 1 thread":
            assert result[name]["speedup"] > 0 and len(result[name]["speedups"]) >= 1
            assert result[name]["near"] == result[name]["speedup"]  # one round: the fastest
            assert result[name]["far"] is None
    run = {"machine": "m", "git": "g", "data": "d", "nnz": X.nnz, "rounds": 1,
           "parts": result, "handoff_ns": probes}
    text = report(run)
    assert "6x the mat-vec is" in text and "| sparseopt's Adagrad |" in text
    assert "## Failures" not in text
    failed = report({**run, "errors": ["the sources changed during the run"]})
    assert "## Failures\n\n- the sources changed during the run" in failed
    assert ("| 2 threads, shared records |" in text) == threads
