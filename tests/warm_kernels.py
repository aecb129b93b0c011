"""Compile the kernels the test suite uses, half of them per process: ``python
tests/warm_kernels.py PART`` (PART 0 or 1), run twice at once by ``conftest.py``.

Numba compiles each (optimizer rule, data dtype, index dtype, one thread or Hogwild) loop
on its own, 8-15 s each, and the suite needs two dozen of them: compiled one after the
other by the first tests that meet them, they were about half of the suite's time. Two
processes compiling into the shared cache (``NUMBA_CACHE_DIR``) use both cores; every
test then loads them. Each kernel function is compiled by one process only, so the two
never write the same function's cache index. A failure here only costs time: the test
that needs the kernel compiles it again, and fails there if it must.
"""

import sys

import numpy as np
import scipy.sparse as sp

from sparseopt import _engine
from sparseopt.rules import RULES


def _problem(data_dtype, index_dtype):
    X = sp.random(64, 16, density=0.3, format="csr", random_state=0, dtype=np.float64)
    X.data = X.data.astype(data_dtype)
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    y = (np.arange(64) % 2).astype(np.float64)
    return X, y


def _epoch(optimizer, data_dtype, index_dtype, n_threads):
    X, y = _problem(data_dtype, index_dtype)
    settings = _engine.make_settings(optimizer, "log_loss", lam=1e-4)
    model = _engine.LazyModel(optimizer, X.shape[1], 1)
    order = _engine.row_order(X.shape[0], True, np.random.RandomState(0))
    model.run_epoch(X, y, np.ones(X.shape[0]), order, settings, n_threads)


def main(part):
    rules = sorted(RULES)
    one_thread = [(np.float64, np.int32), (np.float32, np.int32), (np.float64, np.int64)]
    jobs = [(rule, d, i, 1) for rule in rules for d, i in one_thread]
    jobs += [(rule, np.float64, np.int32, 2) for rule in rules]
    # By kernel function (epoch_<rule>, hogwild_<rule>), about the same compile time in
    # each part: the one-thread loops of three rules and the Hogwild loops of the other
    # three.
    for rule, d, i, n_threads in jobs:
        first_half = rules.index(rule) < len(rules) // 2
        in_part_0 = first_half if n_threads == 1 else not first_half
        if in_part_0 == (part == 0):
            _epoch(rule, d, i, n_threads)


if __name__ == "__main__":
    main(int(sys.argv[1]))
