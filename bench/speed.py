"""Speed benchmark of sparseopt: ``python -m bench.speed [--data PATH] [--out DIR] [--quick]``.

Everything runs in one process and one run, on one data set:

* **data**: the full PyPI file (``/work/shared/data/pypi_popular.tsv.gz``), its words and
  word bigrams hashed to 2^20 columns (``load_pypi(bigrams=True)``), the 80 % train split:
  673,366 rows, 13.7M nonzeros (the issue's data has "about 12.3M"; words alone give
  8.1M). ``--data`` for another PyPI TSV (same featurization) or a svmlight file. Without
  the file, a generated CSR matrix with the same rows, columns and row-length distribution
  (``ROW_LENGTHS``, measured on the real file),
  Zipf-distributed columns and l2-normalized rows. ``--quick``: a generated matrix of
  10,000 rows and 2^18 columns, for a smoke run of every part in about a minute (most of
  it the compilation of every kernel with an empty Numba cache, measured in a child).
* **floor**: one scipy CSR mat-vec ``X @ w`` (median of 20 calls, and 5 more before each
  optimizer's timings).
* **SGDClassifier** (``loss="log_loss"``, its defaults, ``tol=None``): seconds per epoch.
* **every optimizer** through ``SparseClassifier`` with its defaults, ``n_jobs=1`` and
  ``n_jobs=-1``: seconds per epoch, ns per nonzero, ratios to SGDClassifier and to the
  mat-vec, the speed-up of all cores and its test log loss against one thread; the
  first fit in this process (compilation or Numba cache load) on its own
  column; the kernel alone (the ``LazyModel.run_epoch`` calls) for comparison; and the
  ceiling for the speed-up of all cores: one independent one-thread fit per core at once
  (:func:`fit_at_once`), alternating with the others.
* **shuffle**: adagrad's test log loss after 1, 2 and 3 epochs and seconds per epoch
  with the default shuffle (blocks of rows) and with a full permutation of the rows.
* **start-up** in fresh processes: ``import sparseopt``, ``from sparseopt import
  SparseClassifier`` and a first fit on 1,000 rows, with an empty Numba cache and then
  warm; in the same cold process, the first fit of every other optimizer, so that the
  compile time of all optimizers is the sum of their first fits; and, warm, import plus
  first fit in one process in parts (:data:`FLOOR_CHILD`): what scikit-learn and Numba
  cost any such estimator, then what sparseopt adds.
* **memory**: peak resident memory of a 1-epoch adagrad fit in a child process, against
  the size of X and of the model state.
* **data size**: adagrad's seconds per epoch on 1/8, 1/4, 1/2 and all rows; adagrad's
  and adam's on the first 10,000 rows (small data: Adam's bias corrections are not 1).

Seconds per epoch of a sparseopt estimator: ``--repeats`` fits of 4 epochs (same
``random_state``; fewer, but at least 2, once a configuration has taken ``BUDGET``
seconds; an optimizer's ``n_jobs=1`` and ``n_jobs=-1`` fits alternate); in each,
epochs 2 and 3 are timed from the start of the epoch's ``run_epoch`` call to the start
of the next one (:class:`EpochClock`), which counts all the estimator does per epoch
(shuffling, the kernel, the objective, the finiteness check) and no per-fit cost
(validation, allocation); the median is over 2 epochs per fit.
SGDClassifier runs all its epochs in one compiled call, so its seconds per epoch are
``(fit(max_iter=3) - fit(max_iter=1)) / 2``, median over ``--repeats`` pairs (three
times as many with ``--quick``, whose epochs are short next to the noise) and one more
pair before each optimizer's timings, so that the floors and the optimizers meet the same
load over the run. Output: one
Markdown report printed and written to ``speed.md``, and every number in ``speed.json``
(NaN as null), both in ``--out``. The exit status is 1 when a part failed (it is
reported, and the other parts still run).

Benchmarks are only comparable on an idle machine: the report records the CPU, the
versions and the load average at the start and the end of the run.
"""

import argparse
import gc
import hashlib
import inspect
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
FULL_DATA = Path("/work/shared/data/pypi_popular.tsv.gz")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "ftrl")
N_FEATURES = 2**20
# The full file: 841,708 rows; its 80 % train split (load_pypi, test_size=0.2).
FULL_TRAIN_ROWS = 673_366
FULL_TEST_ROWS = 168_342
QUICK_ROWS = 10_000
QUICK_FEATURES = 2**18  # per-epoch work over all columns stays small next to the rows'
POSITIVE_RATE = 0.0175  # of the real data
# Nonzeros per row of the full PyPI file, words and word bigrams hashed to 2^20 columns
# (all 841,708 rows): {row length: number of rows}. Mean 20.28, median 18. (Even lengths
# dominate: a summary of n words gives n words and n - 1 bigrams, plus two month tokens.)
ROW_LENGTHS = {
    2: 1, 3: 234, 4: 9967, 5: 157, 6: 16774, 7: 118, 8: 39283, 9: 217, 10: 54619, 11: 522,
    12: 71378, 13: 1624, 14: 77171, 15: 2750, 16: 77095, 17: 4773, 18: 73806, 19: 6419,
    20: 66936, 21: 7996, 22: 57181, 23: 9023, 24: 45722, 25: 9087, 26: 35684, 27: 8735,
    28: 26870, 29: 8246, 30: 19529, 31: 7404, 32: 15374, 33: 6689, 34: 10729, 35: 5360,
    36: 8085, 37: 4305, 38: 6007, 39: 3923, 40: 4729, 41: 3332, 42: 4061, 43: 3018, 44: 3685,
    45: 2816, 46: 3224, 47: 2544, 48: 2646, 49: 2220, 50: 2120, 51: 1654, 52: 1512, 53: 1117,
    54: 947, 55: 631, 56: 532, 57: 343, 58: 273, 59: 168, 60: 115, 61: 75, 62: 51, 63: 24,
    64: 22, 65: 19, 66: 10, 67: 7, 68: 6, 69: 4, 70: 4, 72: 4, 74: 1, 76: 1,
}
# Exponent of the generated columns' Zipf law. On the real file 995,697 of the 2^20
# columns are used (169,680 by 10 rows or more); 0.95 gives 983,445 (176,063).
ZIPF_EXPONENT = 0.95
FIRST_FIT_ROWS = 1_000
SMALL_ROWS = 10_000
MATVEC_REPEATS = 20
MATVEC_EXTRA = 5  # more in each round of an optimizer's fits


# --------------------------------------------------------------------------- helpers


def _now():
    return time.perf_counter()


def _median(values):
    return float(np.median(values)) if len(values) else float("nan")


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_seconds():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _quiet():
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message=".*max_iter.*")


def x_bytes(X):
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_state():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def source_digest(root=ROOT):
    """sha1 of the Python sources of ``sparseopt`` and ``bench`` under ``root``.

    A run imports the working tree (its children run with the repository's root as their
    directory), so a source edited while it runs would mix two versions in one report;
    compared at the start and the end of a run, this catches it."""
    h = hashlib.sha1()
    for package in ("sparseopt", "bench"):
        for path in sorted(Path(root, package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


SOURCES_CHANGED = ("the sources of sparseopt or bench changed during the run: its figures "
                   "may mix two versions of the code")


def _numba_cache_files(cache_dir):
    if not cache_dir or not os.path.isdir(cache_dir):
        return 0
    return sum(1 for _ in Path(cache_dir).rglob("*.nbi"))


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def machine_info():
    import numba
    import scipy
    import sklearn

    import sparseopt

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "sklearn": sklearn.__version__,
        "sparseopt": sparseopt.__version__,
        "git": _git_state(),
        "platform": platform.platform(),
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR") or "(unset: __pycache__)",
    }


# --------------------------------------------------------------------------- data


def generate_matrix(n_rows, n_features=N_FEATURES, random_state=0, n_test=0):
    """A CSR matrix shaped like the hashed PyPI data, and 0/1 labels from a linear model.

    Row lengths are drawn from ``ROW_LENGTHS``; columns from a Zipf law of exponent
    ``ZIPF_EXPONENT`` over a random permutation of the columns, redrawn until no row
    repeats a column (so every row keeps its drawn length); values are ones, l2-normalized
    per row. Labels: Bernoulli of the sigmoid of ``X @ w + b`` with Gaussian ``w`` and
    ``b`` set for a positive rate of about 1.75 %.

    Returns ``X_train, X_test, y_train, y_test``; ``X_test`` has ``n_test`` rows.
    """
    rng = np.random.default_rng(random_state)
    n_total = n_rows + n_test
    lengths_values = np.array(list(ROW_LENGTHS), dtype=np.int64)
    lengths_p = np.array(list(ROW_LENGTHS.values()), dtype=np.float64)
    lengths = rng.choice(lengths_values, size=n_total, p=lengths_p / lengths_p.sum())
    lengths = np.minimum(lengths, n_features)
    indptr = np.zeros(n_total + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    nnz = int(indptr[-1])
    cdf = np.cumsum(np.arange(1, n_features + 1, dtype=np.float64) ** -ZIPF_EXPONENT)
    cdf /= cdf[-1]
    column_of_rank = rng.permutation(n_features).astype(np.int64)

    def draw(size):
        ranks = np.minimum(np.searchsorted(cdf, rng.random(size), side="right"),
                           n_features - 1)
        return column_of_rank[ranks]

    cols = draw(nnz)
    row_of = np.repeat(np.arange(n_total, dtype=np.int64), lengths)
    entries = np.arange(nnz, dtype=np.int64)
    for _ in range(200):  # redraw repeated columns within rows, only in rows that have some
        keys = row_of[entries] * n_features + cols[entries]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        repeated = entries[order[1:][sorted_keys[1:] == sorted_keys[:-1]]]
        if repeated.size == 0:
            break
        cols[repeated] = draw(repeated.size)
        dirty = np.zeros(n_total, dtype=bool)
        dirty[row_of[repeated]] = True
        entries = np.flatnonzero(dirty[row_of])
    data = np.repeat(1.0 / np.sqrt(lengths.astype(np.float64)), lengths)
    X = sp.csr_matrix((data, cols.astype(np.int32), indptr.astype(np.int32)),
                      shape=(n_total, n_features))
    X.sum_duplicates()  # sorts the indices (and sums any repeat left after 200 redraws)
    X = sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)),
                      shape=X.shape)

    w = rng.normal(0.0, 3.0, n_features)
    margin = X @ w
    lo, hi = -50.0, 50.0
    for _ in range(60):  # intercept for the target positive rate
        b = 0.5 * (lo + hi)
        rate = float(np.mean(1.0 / (1.0 + np.exp(-(margin + b)))))
        lo, hi = (b, hi) if rate < POSITIVE_RATE else (lo, b)
    y = (rng.random(n_total) < 1.0 / (1.0 + np.exp(-(margin + b)))).astype(np.int64)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    return X[:n_rows], X[n_rows:], y[:n_rows], y[n_rows:]


def load_data(data, quick, seed=0):
    """``(X_train, X_test, y_train, y_test, description)``."""
    if quick:
        n_test = QUICK_ROWS // 4
        X_tr, X_te, y_tr, y_te = generate_matrix(QUICK_ROWS, QUICK_FEATURES, seed, n_test)
        return X_tr, X_te, y_tr, y_te, (
            f"generated (--quick): {QUICK_ROWS:,} train + {n_test:,} test rows, 2^18 "
            f"columns, the real "
            f"row-length histogram, Zipf({ZIPF_EXPONENT}) columns, l2-normalized rows")
    if data is None or data == "generated":
        X_tr, X_te, y_tr, y_te = generate_matrix(FULL_TRAIN_ROWS, N_FEATURES, seed,
                                                 FULL_TEST_ROWS)
        why = "" if data == "generated" else f" ({FULL_DATA} is absent)"
        return X_tr, X_te, y_tr, y_te, (
            f"generated{why}: the rows of the full PyPI train split, the real row-length "
            f"histogram, Zipf({ZIPF_EXPONENT}) columns, l2-normalized rows")
    from .data_io import detect_format, load_dataset

    pypi = detect_format(data) == "pypi"
    X_tr, X_te, y_tr, y_te = load_dataset(data, n_features=N_FEATURES, test_size=0.2,
                                          random_state=seed, bigrams=pypi)
    tokens = " (words and word bigrams)" if pypi else ""
    return X_tr, X_te, y_tr, y_te, (
        f"{data} hashed to 2^20 columns{tokens}, 80 % train split (load_dataset, "
        f"random_state={seed})")


def first_rows(X, y, n):
    """The first ``n`` rows, with at least one row of each class."""
    idx = np.arange(min(n, X.shape[0]))
    classes = np.unique(y)
    missing = [c for c in classes if c not in set(np.unique(y[idx]))]
    for c in missing:
        idx[len(idx) - 1 - missing.index(c)] = np.flatnonzero(y == c)[0]
    return X[idx], y[idx]


def save_csr(path, X, y):
    np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr,
             shape=np.array(X.shape), y=y)


# --------------------------------------------------------------------------- timings


def top_column_share(X, k):
    """Share of the nonzeros in the ``k`` columns with the most: the records that every
    Hogwild thread writes all the time."""
    counts = np.bincount(X.indices, minlength=X.shape[1])
    return float(np.sort(counts)[-k:].sum() / max(X.nnz, 1))


def moves_per_row(shared_per_row, n_threads):
    """Cache-line moves a Hogwild row waits for: of its ``shared_per_row`` nonzeros in the
    most frequent columns, the share ``(n - 1) / n`` whose record another thread wrote
    last."""
    return shared_per_row * (n_threads - 1) / n_threads


def sharing_bound(row_ns, shared_per_row, move_ns, n_threads):
    """The most ``n_threads`` Hogwild threads can be faster than one thread whose row takes
    ``row_ns``, if each row waits, with no overlap, for its ``moves_per_row`` of
    ``move_ns`` each."""
    wait = moves_per_row(shared_per_row, n_threads) * move_ns
    return n_threads * row_ns / (row_ns + wait)


def matvec_seconds(X, repeats=MATVEC_REPEATS, seed=0):
    w = np.random.default_rng(seed).normal(size=X.shape[1])
    X @ w
    times = []
    for _ in range(repeats):
        t = _now()
        X @ w
        times.append(_now() - t)
    return _median(times), times


def fit_seconds(est, X, y):
    gc.collect()
    t = _now()
    est.fit(X, y)
    return _now() - t, est


def per_epoch(make, X, y, repeats):
    """Median over ``repeats`` of ``(fit 3 epochs - fit 1 epoch) / 2``, and every value.

    For estimators whose epochs run inside one compiled call (SGDClassifier).
    """
    diffs, last = [], None
    for _ in range(repeats):
        t1, last = fit_seconds(make(1), X, y)
        t3, _ = fit_seconds(make(3), X, y)
        diffs.append((t3 - t1) / 2.0)
    return _median(diffs), diffs, last


def fit_at_once(ests, X, y):
    """Fit ``ests`` at once, one Python thread each (in this thread when there is one).

    The one-thread kernels release the GIL, so the fits' epochs run in parallel; each
    has its own model and they share nothing but the read-only X.
    """
    if len(ests) == 1:
        ests[0].fit(X, y)
        return
    gate = threading.Barrier(len(ests))
    errors = []

    def fit(est):
        gate.wait()
        try:
            est.fit(X, y)
        except Exception as exc:  # raised below, in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(est,)) for est in ests]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


class EpochClock:
    """While active, record the start, the end and the thread of every
    ``LazyModel.run_epoch`` call.

    The time between the starts of two consecutive epochs of one ``fit`` is everything
    the estimator does per epoch (shuffle, kernel, objective, checks); the call itself is
    the kernel alone.
    """

    def __enter__(self):
        from sparseopt import _engine

        self.cls = _engine.LazyModel
        self.own = "run_epoch" in vars(self.cls)
        original = self.original = self.cls.run_epoch
        calls = self.calls = []

        def run_epoch(model, *args, **kwargs):
            start = _now()
            try:
                return original(model, *args, **kwargs)
            finally:
                calls.append((start, _now(), threading.get_ident()))

        self.cls.run_epoch = run_epoch
        return self

    def __exit__(self, *exc):
        if self.own:
            self.cls.run_epoch = self.original
        else:
            del self.cls.run_epoch
        return False


FIT_EPOCHS = 4  # per timed fit; epochs 2 and 3 are timed (the last one ends differently)
# Seconds after which a configuration stops repeating its timed fits, once it has 2 fits
# (4 timed epochs): adam's epochs take ~15 s on the full data, 5 fits of it ~5 minutes.
BUDGET = 60.0
MIN_FITS = 2


def estimator_epochs(make, X, y, repeats, budget=BUDGET, between=(), probe=None,
                     after=None):
    """Per-epoch seconds of ``make(max_iter)`` through its ``fit``, and of its kernel.

    ``make`` may also be a dict of such callables: their fits then alternate (one fit of
    each per round), so that configurations compared with each other (one thread and
    all cores) meet the same load on a shared machine; the result is a dict by key. A
    callable may return a list of estimators: they are fitted at once
    (:func:`fit_at_once`) and the epochs of each count.

    ``between``: callables run once per round, after its fits (timings of other things,
    such as the floors, that are to meet the same load). ``probe``: a callable run just
    before and just after each fit that runs more than one thread (the host's state
    around it, see :func:`by_handoff`); its values are kept per fit, in order, as
    ``"probes"`` of the timings of those configurations. ``after``: a callable of a
    configuration's key and its fitted estimator, run after each fit, outside the clock;
    its values other than None are kept per fit, in order, as ``"after"``.

    Up to ``repeats`` fits of ``FIT_EPOCHS`` epochs (no more once ``budget`` seconds are
    spent and ``MIN_FITS`` are done); epochs 2 and 3 of each are timed from start to next
    start (estimator) and over the ``run_epoch`` call (kernel), so the medians are over
    2 epochs per fit. When the estimator does not run its epochs through
    ``LazyModel.run_epoch`` (no calls seen), falls back to :func:`per_epoch`.

    Returns ``(timing, kernel timing or None, last fitted estimator)``.
    """
    makes = make if isinstance(make, dict) else {None: make}
    epochs = {key: [] for key in makes}
    kernel = {key: [] for key in makes}
    probes = {key: [] for key in makes}
    afters = {key: [] for key in makes}
    last = dict.fromkeys(makes)
    fallback = {}
    start = _now()
    for fit in range(repeats):
        if fit >= MIN_FITS and _now() - start > budget * len(makes):
            break
        for key, one in makes.items():
            if key in fallback:
                continue
            made = one(FIT_EPOCHS)
            ests = made if isinstance(made, list) else [made]
            # Only where threads share the cores does the host's state matter.
            probed = probe is not None and (
                len(ests) > 1 or ests[0].get_params().get("n_jobs") not in (None, 1))
            gc.collect()
            before = probe() if probed else None
            with EpochClock() as clock:
                fit_at_once(ests, X, y)
            if probed:
                probes[key].append([before, probe()])
            last[key] = ests[0]
            value = None if after is None else after(key, ests[0])
            if value is not None:
                afters[key].append(value)
            by_thread = {}
            for start, end, thread in sorted(clock.calls):
                by_thread.setdefault(thread, []).append((start, end))
            if [len(c) for c in by_thread.values()] != [FIT_EPOCHS] * len(ests):
                if len(ests) > 1:
                    raise RuntimeError(f"{key}: not every fit ran {FIT_EPOCHS} epochs")
                sec, every, fitted = per_epoch(one, X, y, repeats)
                fallback[key] = ({"seconds_per_epoch": sec, "all": every,
                                  "method": "(fit 3 - fit 1) / 2: run_epoch calls not seen"},
                                 None, fitted)
                continue
            for calls in by_thread.values():
                for i in (1, 2):
                    epochs[key].append(calls[i + 1][0] - calls[i][0])
                    kernel[key].append(calls[i][1] - calls[i][0])
        for also in between:
            also()
    out = {
        key: fallback.get(key) or (
            {"seconds_per_epoch": _median(epochs[key]), "all": epochs[key],
             "method": "start to next start of epochs 2 and 3 of 4-epoch fits",
             **({"probes": probes[key]} if probes[key] else {}),
             **({"after": afters[key]} if afters[key] else {})},
            {"seconds_per_epoch": _median(kernel[key]), "all": kernel[key]}, last[key])
        for key in makes
    }
    return out if isinstance(make, dict) else out[None]


def shuffle_variants(estimator_cls):
    """``(parameter, [values to compare], note)`` for the shuffle comparison: the
    default (blocks of rows in a random order) against a new permutation of all rows
    every epoch, as SGDClassifier does."""
    default = inspect.signature(estimator_cls).parameters["shuffle"].default
    return "shuffle", [default, "rows"], (
        f"shuffle={default!r} (the default): blocks of 256 consecutive rows in a random "
        "order each epoch; 'rows': a new permutation of all rows each epoch")


# --------------------------------------------------------------------------- children

# The start-up children's data: the first-fit rows, saved by ``startup``.
_LOAD_FIRST_FIT_ROWS = r"""
import numpy as np, scipy.sparse as sp
z = np.load(sys.argv[1])
X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
y = z["y"]
"""

STARTUP_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import sparseopt
t1 = time.perf_counter()
from sparseopt import SparseClassifier
t2 = time.perf_counter()
""" + _LOAD_FIRST_FIT_ROWS + r"""
t3 = time.perf_counter()
first = SparseClassifier(random_state=0).fit(X, y)
t4 = time.perf_counter()
fits = {first.optimizer: t4 - t3}
for opt in sys.argv[2].split(","):
    if opt not in fits:
        t = time.perf_counter()
        SparseClassifier(optimizer=opt, max_iter=1, random_state=0).fit(X, y)
        fits[opt] = time.perf_counter() - t
print(json.dumps({"import_sparseopt": t1 - t0, "import_estimator": t2 - t1,
                  "first_fit": t4 - t3, "first_fit_optimizer": first.optimizer,
                  "first_fit_max_iter": first.max_iter, "first_fits": fits,
                  "all_first_fits": sum(fits.values())}))
"""

# Import plus first fit in one process, in parts: what any Numba-compiled scikit-learn
# estimator pays first (scikit-learn's base classes, Numba, Numba's one-time set-up at the
# first call of a cached jitted function: a tiny one of sparseopt's), then what sparseopt
# adds (the rest of its import, the rest of the first fit).
FLOOR_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import sklearn.base
t1 = time.perf_counter()
# scikit-learn imports pandas with its base classes when pandas is installed (the test
# extras install it, the quick start's do not): a large part of that import when it does.
pandas = "pandas" in sys.modules
import numba
t2 = time.perf_counter()
import numpy as np
from sparseopt import _kernels
t3 = time.perf_counter()
_kernels.penalty_sums(np.zeros((2, 1, 2)), np.zeros((1, 1, 2)), 1.0)
t4 = time.perf_counter()
from sparseopt import SparseClassifier
t5 = time.perf_counter()
""" + _LOAD_FIRST_FIT_ROWS + r"""
t6 = time.perf_counter()
SparseClassifier(random_state=0).fit(X, y)
t7 = time.perf_counter()
print(json.dumps({"import_sklearn_base": t1 - t0, "import_numba": t2 - t1,
                  "first_jit_call": t4 - t3, "sparseopt_import": (t3 - t2) + (t5 - t4),
                  "sparseopt_first_fit": t7 - t6, "pandas": pandas}))
"""
FLOOR_REPEATS = 3

MEMORY_CHILD = r"""
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
from sparseopt import SparseClassifier
d = sys.argv[1]
z = np.load(d + "/tiny.npz")
tiny = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
SparseClassifier(optimizer="adagrad", max_iter=1).fit(tiny, z["y"])  # load the kernels
SparseClassifier(optimizer="adagrad", max_iter=2, n_jobs=-1).fit(tiny, z["y"])
from sparseopt import _kernels  # and the private records' plan's (tiny is too small for one)
_kernels.sampled_column_counts(tiny.indptr, tiny.indices, tiny.shape[1], 1)
_kernels.private_indices(tiny.indices, np.zeros(1, np.int64), tiny.shape[1],
                         np.empty((1, tiny.nnz), tiny.indices.dtype))

def status():
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out

# A child started by a large parent inherits the parent's peak in ru_maxrss (fork/vfork):
# reset the peak to the current RSS (Linux, /proc/self/clear_refs "5") where allowed.
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
baseline = status()
shape = tuple(np.load(d + "/shape.npy"))
X = sp.csr_matrix((np.load(d + "/data.npy"), np.load(d + "/indices.npy"),
                   np.load(d + "/indptr.npy")), shape=shape, copy=False)
y = np.load(d + "/y.npy")
before = status()
t = time.perf_counter()
est = SparseClassifier(optimizer="adagrad", max_iter=1, random_state=0).fit(X, y)
seconds = time.perf_counter() - t
after = status()
m = est._model
state = sum(a.nbytes for a in (m.P, m.B, m.G))
coef_bytes = int(est.coef_.nbytes)
# Then a 2-epoch fit on all cores, with the private records' plan (its copies of
# X.indices), from the same point: the first fit's model gone and the peak reset again.
del est, m
if reset:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
before_all = status()
SparseClassifier(optimizer="adagrad", max_iter=2, n_jobs=-1, random_state=0).fit(X, y)
after_all = status()
print(json.dumps({"baseline": baseline, "before_fit": before, "after_fit": after,
                  "peak_reset": reset, "model_state_bytes": int(state),
                  "coef_bytes": coef_bytes, "fit_seconds": seconds,
                  "before_all_cores": before_all, "after_all_cores": after_all}))
"""


def run_child(code, args, env_updates=None, timeout=1800):
    env = dict(os.environ)
    env.update(env_updates or {})
    t = _now()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = _now() - t
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall"] = wall
    result["process_cpu"] = (after.ru_utime + after.ru_stime - before.ru_utime
                             - before.ru_stime)
    return result


def startup(tmp, X, y, optimizers=OPTIMIZERS):
    """Cold then warm Numba cache, in fresh processes sharing one new cache directory.

    The cold child compiles the first fit of each of ``optimizers`` (``--quick`` passes
    the default one only: compiling all of them twice more would double the smoke run).
    """
    small = os.path.join(tmp, "first_fit.npz")
    save_csr(small, *first_rows(X, y, FIRST_FIT_ROWS))
    cache = tempfile.mkdtemp(prefix="nbc_cold_", dir=tmp)
    env = {"NUMBA_CACHE_DIR": cache}
    cold = run_child(STARTUP_CHILD, [small, ",".join(optimizers)], env)
    warm = run_child(STARTUP_CHILD, [small, ",".join(optimizers)], env)
    floors = [run_child(FLOOR_CHILD, [small], env) for _ in range(FLOOR_REPEATS)]
    floor = {key: _median([f[key] for f in floors]) for key in floors[0] if key != "pandas"}
    floor["pandas"] = any(f["pandas"] for f in floors)
    return {"cold": cold, "warm": warm, "floor": floor,
            "rows": min(FIRST_FIT_ROWS, X.shape[0])}


def memory(tmp, X, y):
    d = os.path.join(tmp, "memory")
    os.makedirs(d, exist_ok=True)
    for name in ("data", "indices", "indptr"):
        np.save(os.path.join(d, f"{name}.npy"), getattr(X, name))
    np.save(os.path.join(d, "shape.npy"), np.array(X.shape))
    np.save(os.path.join(d, "y.npy"), y)
    save_csr(os.path.join(d, "tiny.npz"), *first_rows(X, y, 200))
    result = run_child(MEMORY_CHILD, [d])
    result["x_bytes"] = x_bytes(X)
    return result


# --------------------------------------------------------------------------- the run


def _error(exc):
    return f"{type(exc).__name__}: {exc}".strip()


def handoff_probe():
    """One measurement of :func:`bench.host.handoff_ns` (enough to tell the host's
    states apart: they differ about 7-fold here)."""
    from .host import handoff_ns  # (numba and sparseopt load with the first fit, not here)

    return handoff_ns()


def speedup_by_handoff(one_thread, fits, limit, fits_at_once=1):
    """The speed-up (``fits_at_once * one_thread`` seconds per epoch over the median of
    the epochs) of the ``fits`` (``(probe before, probe after, epochs)``) whose two
    probes both moved a line in at most ``limit`` ns ("near"), and of the others
    ("far"): ``{"near": {"fits", "speedup"}, "far": {...}}`` (speed-up None for a group
    of no fits)."""
    groups = {"near": [], "far": []}
    for before, after, epochs in fits:
        groups["near" if max(before, after) <= limit else "far"].append(epochs)
    return {name: {"fits": len(got),
                   "speedup": fits_at_once * one_thread
                   / _median([e for ep in got for e in ep]) if got else None}
            for name, got in groups.items()}


def _fits(timing, per_fit):
    """``(probe before, probe after, epochs)`` of each fit of ``timing`` (``per_fit``
    timed epochs each), or None without probes."""
    probes, epochs = timing.get("probes"), timing["all"]
    if not probes or len(epochs) != per_fit * len(probes):
        return None
    return [(*p, epochs[per_fit * k:per_fit * (k + 1)]) for k, p in enumerate(probes)]


def by_handoff(result):
    """Hogwild's speed-ups, and the ceiling's, split by the host's state during each fit:
    fits whose probes just before and just after moved a line between the cores in at
    most twice the run's fastest probe ("near"), and the others ("far")
    (``result["handoff"]``; ``speedup_by_handoff`` of each optimizer and of its
    ``independent_fits``; ``by_handoff`` of each matrix of the sharing section)."""
    groups = []  # (where to write, one-thread seconds, fits, fits at once)
    for e in result.get("optimizers", {}).values():
        if "error" in e:
            continue
        one = e["n_jobs=1"]["seconds_per_epoch"]
        groups.append((e, "speedup_by_handoff", one, _fits(e["n_jobs=-1"], 2), 1))
        at_once = e.get("independent_fits")
        if at_once:
            n = at_once["fits"]
            groups.append((at_once, "speedup_by_handoff", one, _fits(at_once, 2 * n), n))
    for e in result.get("sharing", {}).get("optimizers", {}).values():
        for m in e.values():
            groups.append((m, "by_handoff", m["one_thread"], _fits(m, 2), 1))
    groups = [g for g in groups if g[3]]
    probes = [p for g in groups for fit in g[3] for p in fit[:2] if math.isfinite(p)]
    if not probes:
        return
    from .host import near_limit

    limit = near_limit(probes)
    result["handoff"] = {"limit_ns": limit, "min_ns": min(probes),
                         "median_ns": _median(probes), "max_ns": max(probes),
                         "probes": len(probes),
                         "far_share": sum(p > limit for p in probes) / len(probes)}
    for where, key, one, fits, n in groups:
        where[key] = speedup_by_handoff(one, fits, limit, n)


def fit_makers(estimator_cls, opt, seed):
    """``make(max_iter, n_jobs=1, random_state=seed)``: a fit of ``opt`` at the
    estimator's defaults; and the makers of its one-thread and all-cores fits,
    ``{1: ..., -1: ...}``."""
    def make(it, n_jobs=1, random_state=seed):
        return estimator_cls(optimizer=opt, max_iter=it, n_jobs=n_jobs,
                             random_state=random_state)

    return make, {1: make, -1: lambda it: make(it, -1)}


def time_optimizer(entry, estimator_cls, opt, X, y, repeats, seed, X_test, y_test,
                   log_loss, floors):
    """Fill ``entry`` with the per-epoch times of ``opt`` (n_jobs=1, n_jobs=-1, kernel)
    and the test log loss of the last fit of each (Hogwild against one thread).

    ``floors``: name -> callable returning a list of seconds (SGDClassifier's epoch, the
    mat-vec), called once per round of the optimizer's fits; ``entry["floors"]`` keeps
    their values, the yardsticks measured under the same load as the optimizer."""
    # One thread, all cores and the ceiling (one independent one-thread fit per core, at
    # once: what the cores give when no weight is shared) alternate fit by fit.
    make, makes = fit_makers(estimator_cls, opt, seed)

    def test_loss(est):
        return float(log_loss(y_test, est.predict_proba(X_test), labels=est.classes_))

    n_cores = usable_cores()
    if n_cores > 1:
        makes["at once"] = lambda it: [make(it) for _ in range(n_cores)]
    paired = {name: [] for name in floors}
    between = [lambda name=name, fn=fn: paired[name].extend(fn())
               for name, fn in floors.items()]
    # The host's state around each fit: a cache line's move between the cores.
    # Every all-cores fit's test loss: Hogwild's interleaving differs from fit to fit,
    # so one fit's difference to the (deterministic) one-thread fit is one draw of it.
    results = estimator_epochs(makes, X, y, repeats, between=between,
                               probe=handoff_probe if n_cores > 1 else None,
                               after=lambda key, est: test_loss(est) if key == -1 else None)
    entry["floors"] = {name: {"seconds": _median(values), "all": values}
                       for name, values in paired.items()}
    at_once = results.pop("at once", None)
    for n_jobs, (timing, kernel, last) in results.items():
        # (The all-cores fits' test losses are in "after", the last fit's last.)
        timing["test_log_loss"] = timing["after"][-1] if "after" in timing else test_loss(last)
        entry[f"n_jobs={n_jobs}"] = timing
        if kernel is not None:
            entry[f"kernel n_jobs={n_jobs}"] = kernel
    entry["kernel"] = entry.get("kernel n_jobs=1") or {"seconds_per_epoch": float("nan")}
    one, all_cores = entry["n_jobs=1"], entry["n_jobs=-1"]
    entry["speedup_all_cores"] = one["seconds_per_epoch"] / all_cores["seconds_per_epoch"]
    # Each all-cores epoch against the one-thread median: a speed-up near 1 is an epoch
    # in which each thread ran at half speed (the epochs of a fit come in pairs; see
    # by_handoff for what moves them).
    per_epoch = [one["seconds_per_epoch"] / sec for sec in all_cores["all"]]
    entry["speedup_per_epoch"] = {"min": min(per_epoch), "max": max(per_epoch)}
    entry["test_loss_all_cores_vs_one"] = (all_cores["test_log_loss"]
                                           / one["test_log_loss"] - 1.0)
    entry["test_loss_all_cores_fits"] = [v / one["test_log_loss"] - 1.0
                                         for v in all_cores.get("after", [])]
    # What the comparison is worth: the same one-thread fit with another random_state (a
    # different shuffle) moves the test loss too.
    other = make(results[1][2].max_iter, random_state=seed + 1).fit(X, y)
    entry["test_loss_other_seed_vs_one"] = test_loss(other) / one["test_log_loss"] - 1.0
    if at_once is not None:
        timing = at_once[0]
        entry["independent_fits"] = {
            "fits": n_cores, "seconds_per_epoch": timing["seconds_per_epoch"],
            "all": timing["all"], "probes": timing.get("probes"),
            "speedup": n_cores * one["seconds_per_epoch"] / timing["seconds_per_epoch"]}


def add_ratios(entry, nnz):
    """ns per nonzero and the ratios to SGDClassifier's epoch and to the mat-vec, both
    timed in the rounds of the optimizer's own fits (``entry["floors"]``)."""
    sgd_sec = entry["floors"]["sgdclassifier"]["seconds"]
    matvec = entry["floors"]["matvec"]["seconds"]
    if not sgd_sec > 0:  # noise larger than two epochs: no ratio can be made from it
        sgd_sec = float("nan")
    for key in ("n_jobs=1", "n_jobs=-1", "kernel"):
        e = entry[key]
        e["ns_per_nnz"] = e["seconds_per_epoch"] / nnz * 1e9
        e["vs_sgdclassifier"] = e["seconds_per_epoch"] / sgd_sec
        e["vs_matvec"] = e["seconds_per_epoch"] / matvec


def run(data=None, out="bench/results", quick=False, repeats=5, seed=0, log=print):
    """The whole benchmark; returns the result dict (``result["errors"]``: what failed)."""
    sources = source_digest()
    _quiet()
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss

    from sparseopt import SparseClassifier

    start_wall, start_cpu = _now(), _cpu_seconds()
    errors = []
    result = {"load_start": _load(), "machine": machine_info(),
              "config": {"quick": quick, "repeats": repeats, "seed": seed,
                         "data_arg": data}, "errors": errors}
    log(f"load average at start: {result['load_start']}")

    spent = result["section_seconds"] = {}
    mark = [_now()]

    def lap(name):  # wall seconds of each part, to see where a run's time goes
        spent[name] = _now() - mark[0]
        mark[0] = _now()

    def section(name, fn, *args):
        try:
            result[name] = fn(*args)
        except Exception as exc:  # record and go on: one failure hides no other number
            result[name] = {"error": _error(exc)}
            errors.append(f"{name}: {_error(exc)}")
            log(f"{name}: FAILED: {_error(exc)}")
        lap(name)
        return result[name]

    t = _now()
    X, X_test, y, y_test, description = load_data(data, quick, seed)
    nnz = X.nnz
    result["data"] = {"description": description, "shape": list(X.shape), "nnz": int(nnz),
                      "bytes": x_bytes(X), "test_rows": int(X_test.shape[0]),
                      "positive_rate": float(np.mean(y == np.max(y))),
                      "top100_column_share": top_column_share(X, 100),
                      "seconds_to_load": _now() - t}
    log(f"data: {description}\n  X {X.shape[0]:,} x {X.shape[1]:,}, nnz {nnz:,}, "
        f"{x_bytes(X) / 1e6:.1f} MB (data+indices+indptr), loaded in "
        f"{result['data']['seconds_to_load']:.1f} s")
    lap("data")

    with tempfile.TemporaryDirectory(prefix="sparseopt_speed_") as tmp:
        log("start-up in fresh processes (empty Numba cache, then warm) ...")
        st = section("startup", startup, tmp, X, y,
                     ("adagrad",) if quick else OPTIMIZERS)
        if "error" not in st:
            log(f"  empty cache: first fit {st['cold']['first_fit']:.1f} s, all optimizers' "
                f"first fits {st['cold']['all_first_fits']:.1f} s")

        # First fit of every optimizer in this process: compilation or cache load.
        cache_files = _numba_cache_files(os.environ.get("NUMBA_CACHE_DIR"))
        Xs, ys = first_rows(X, y, FIRST_FIT_ROWS)
        first = {}
        for opt in OPTIMIZERS:
            try:
                first[opt], _ = fit_seconds(
                    SparseClassifier(optimizer=opt, random_state=seed), Xs, ys)
            except Exception as exc:
                first[opt] = float("nan")
                errors.append(f"first fit of {opt}: {_error(exc)}")
        result["first_fit_in_process"] = {"seconds": first, "rows": Xs.shape[0],
                                          "numba_index_files_before": cache_files}
        log(f"first fits in this process: {_fmt_dict(first)}")
        lap("first_fit_in_process")

        log("peak memory of adagrad fits (child process) ...")
        section("memory", memory, tmp, X, y)

    matvec, matvec_all = matvec_seconds(X, MATVEC_REPEATS, seed)
    log(f"mat-vec: {matvec * 1e3:.2f} ms")

    # Its epochs are short next to the noise of a loaded machine on --quick's small matrix:
    # more pairs there (they are cheap).
    def make_sgd(it):
        return SGDClassifier(loss="log_loss", max_iter=it, tol=None, random_state=seed)

    pairs_per_round = 3 if quick else 1
    sgd_sec, sgd_all, _ = per_epoch(make_sgd, X, y, pairs_per_round * repeats)
    first_pairs = len(sgd_all)
    log(f"SGDClassifier: {sgd_sec:.4f} s/epoch")
    lap("matvec_and_sgdclassifier")

    # The yardsticks are timed again in every round of each optimizer's fits: its ratios
    # are to them, measured under the same load (a shared host's load moves within
    # seconds: one optimizer's one-thread epochs by up to 1.7x within a run).
    floors = {"sgdclassifier": lambda: per_epoch(make_sgd, X, y, pairs_per_round)[1],
              "matvec": lambda: matvec_seconds(X, MATVEC_EXTRA, seed)[1]}
    result["optimizers"] = {}
    for opt in OPTIMIZERS:
        entry = {"first_fit_seconds": first[opt]}
        result["optimizers"][opt] = entry
        try:
            time_optimizer(entry, SparseClassifier, opt, X, y, repeats, seed, X_test,
                           y_test, log_loss, floors)
            sgd_all += entry["floors"]["sgdclassifier"]["all"]
            matvec_all += entry["floors"]["matvec"]["all"]
        except Exception as exc:  # record and go on: one failing optimizer hides no other
            entry["error"] = _error(exc)
            errors.append(f"{opt}: {entry['error']}")
            log(f"{opt}: FAILED: {entry['error']}")
            continue
        ceiling = entry.get("independent_fits")
        log(f"{opt}: {entry['n_jobs=1']['seconds_per_epoch']:.4f} s/epoch (n_jobs=1), "
            f"{entry['n_jobs=-1']['seconds_per_epoch']:.4f} (n_jobs=-1), kernel "
            f"{entry['kernel']['seconds_per_epoch']:.4f}"
            + (f"; independent fits at once: {ceiling['speedup']:.2f}x" if ceiling else ""))
    sgd_sec = _median(sgd_all)
    matvec = _median(matvec_all)
    if not sgd_sec > 0:  # noise larger than two epochs: no ratio can be made from it
        errors.append(f"SGDClassifier: median (fit 3 - fit 1) / 2 = {sgd_sec:.3g} s, not "
                      "positive: the machine is too noisy for this data size")
        sgd_sec = float("nan")
    result["matvec"] = {"seconds": matvec, "all": matvec_all}
    result["sgdclassifier"] = {"seconds_per_epoch": sgd_sec, "all": sgd_all,
                               "pairs": len(sgd_all), "first_pairs": first_pairs,
                               "pairs_per_round": pairs_per_round}
    log(f"over the whole timing section: mat-vec {matvec * 1e3:.2f} ms, SGDClassifier "
        f"{sgd_sec:.4f} s/epoch")
    for entry in result["optimizers"].values():
        if "error" not in entry:
            add_ratios(entry, nnz)
    lap("optimizers")

    pl = section("private_records", plan_timing, X, usable_cores())
    if "error" not in pl and pl["plan"]:
        log(f"private records' plan: {pl['seconds'] * 1e3:.1f} ms per fit, "
            f"{pl['hot_columns']} hot columns")

    sh = section("shuffle", shuffle_comparison, SparseClassifier, X, y, X_test, y_test, seed,
                 log_loss)
    if "error" not in sh:
        log(f"shuffle: {sh['note']}")

    sr = section("sharing", sharing, SparseClassifier, X, y, repeats, seed)
    if "error" not in sr:
        log("Hogwild speed-up, all columns / without the top "
            f"{sr['top']}: " + ", ".join(
                f"{opt} {e['all']['speedup']:.2f}x / {e['without']['speedup']:.2f}x"
                for opt, e in sr["optimizers"].items()))

    by_handoff(result)
    sc = section("scaling", scaling, SparseClassifier, X, y, repeats, seed)
    if "error" not in sc:
        log(f"time against size: all/(1/8) = {sc['ratio_all_to_eighth']:.2f}")

    if source_digest() != sources:
        errors.append(SOURCES_CHANGED)
        log(f"FAILED: {SOURCES_CHANGED}")
    result["load_end"] = _load()
    result["wall_seconds"] = _now() - start_wall
    result["cpu_seconds"] = _cpu_seconds() - start_cpu
    markdown = report(result)
    os.makedirs(out, exist_ok=True)
    Path(out, "speed.md").write_text(markdown)
    Path(out, "speed.json").write_text(
        json.dumps(_finite_or_none(result), indent=1, default=_json_default))
    log("")
    log(markdown)
    log(f"wrote {Path(out, 'speed.md')} and {Path(out, 'speed.json')}")
    return result


def shuffle_comparison(estimator_cls, X, y, X_test, y_test, seed, log_loss):
    param, values, note = shuffle_variants(estimator_cls)
    runs = []
    for value in values:
        losses, starts = [], []
        for epochs in (1, 2, 3):
            est = estimator_cls(optimizer="adagrad", max_iter=epochs, random_state=seed,
                                **{param: value})
            with EpochClock() as clock:
                fit_seconds(est, X, y)
            starts = [c[0] for c in clock.calls]
            proba = est.predict_proba(X_test)
            losses.append(float(log_loss(y_test, proba, labels=est.classes_)))
        runs.append({"value": value, "test_log_loss": losses,
                     "seconds_per_epoch": _median(np.diff(starts)) if len(starts) > 1
                     else float("nan")})
    return {"parameter": param, "runs": runs, "note": note}


SHARED_TOP = 100  # the most frequent columns, removed to see what Hogwild's sharing costs
# The rules whose Hogwild speed-up fell short of 1.7x (docs/speed at 710603d), with the
# least state and so the fastest one-thread rows, on which a line's move weighs most.
SHARING_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta")


def plan_timing(X, n_threads, repeats=5):
    """What private records of the hot columns cost once per all-cores fit: the seconds
    of ``_engine.hogwild_plan`` for adagrad's defaults (median of ``repeats`` after a
    first call), its hot columns, their share of the nonzeros and the bytes of the
    private threads' copies of ``X.indices``; the optimizers whose defaults get a plan
    (every rule's)."""
    from sparseopt import _engine
    from sparseopt.rules import RULES

    settings = _engine.make_settings("adagrad", "log_loss")
    times = []
    plan = None
    for _ in range(repeats + 1):
        plan = None  # the last one's memory goes before the next is made
        t = _now()
        plan = _engine.hogwild_plan(X, settings, n_threads)
        times.append(_now() - t)
    optimizers = list(RULES)
    if plan is None:
        return {"plan": None, "optimizers": optimizers, "threads": n_threads}
    return {"plan": True, "seconds": _median(times[1:]), "all": times[1:],
            "hot_columns": int(plan.n_hot),
            "hot_share": float(np.isin(X.indices, plan.hot[:plan.n_hot]).mean()),
            "warm_columns": int(plan.hot.size - plan.n_hot),
            "warm_share": float(np.isin(X.indices, plan.hot[plan.n_hot:]).mean()),
            "private_threads": int(plan.recs.shape[0]), "bytes": int(plan.recs.nbytes),
            "optimizers": optimizers, "threads": n_threads}


def without_top_columns(X, k):
    """A copy of CSR ``X`` without the nonzeros of its ``k`` most frequent columns (same
    shape)."""
    counts = np.bincount(X.indices, minlength=X.shape[1])
    hot = np.zeros(X.shape[1], dtype=bool)
    hot[np.argsort(counts)[::-1][:k]] = True
    out = X.copy()
    out.data[hot[out.indices]] = 0
    out.eliminate_zeros()
    return out


def sharing(estimator_cls, X, y, repeats, seed, optimizers=SHARING_OPTIMIZERS):
    """Hogwild's speed-up on X and on X without its ``SHARED_TOP`` most frequent columns.

    Both threads write the records of those columns at nearly every row; without them
    the threads share almost nothing. If the speed-up rises, sharing is what holds it
    back; if not, something else is (the host, memory). Per optimizer the two matrices
    alternate round by round, each round one-thread and two-thread fits alternating.
    """
    Xc = without_top_columns(X, SHARED_TOP)
    out = {"top": SHARED_TOP, "nnz": int(X.nnz), "nnz_without": int(Xc.nnz),
           "optimizers": {}}
    probe = handoff_probe if usable_cores() > 1 else None
    for opt in optimizers:
        makes = fit_makers(estimator_cls, opt, seed)[1]
        times = {(name, n_jobs): [] for name in ("all", "without") for n_jobs in makes}
        probes = {"all": [], "without": []}  # around each all-cores fit
        for _ in range(repeats):
            for name, Xv in (("all", X), ("without", Xc)):
                timed = estimator_epochs(makes, Xv, y, 1, probe=probe)
                for n_jobs, (timing, _, _) in timed.items():
                    times[name, n_jobs] += timing["all"]
                probes[name] += timed[-1][0].get("probes", [])
        out["optimizers"][opt] = {
            name: {"one_thread": _median(times[name, 1]),
                   "all_cores": _median(times[name, -1]),
                   "speedup": _median(times[name, 1]) / _median(times[name, -1]),
                   "epochs": len(times[name, 1]), "all": times[name, -1],
                   **({"probes": probes[name]} if probe else {})}
            for name in ("all", "without")}
    return out


def scaling(estimator_cls, X, y, repeats, seed):
    """Adagrad's epoch on the first 1/8, 1/4, 1/2 and all of the rows, and on small data.

    The sizes alternate, one fit of each per round, so that all of them meet the same
    load on a shared machine (measured one after the other, the 1/8 run's ns per nonzero
    moved by 1.5x between two runs). ``columns`` counts the distinct columns each size
    touches: their records are the model memory an epoch walks.
    """
    n = X.shape[0]
    sizes = []
    for frac, label in ((8, "1/8"), (4, "1/4"), (2, "1/2"), (1, "all")):
        m = n // frac
        Xm, ym = (X, y) if frac == 1 else first_rows(X, y, m)
        sizes.append((label, Xm, ym, []))

    def make(it):
        return estimator_cls(optimizer="adagrad", max_iter=it, n_jobs=1, random_state=seed)

    for _ in range(repeats):
        for _label, Xm, ym, every in sizes:
            timing, _, _ = estimator_epochs(make, Xm, ym, 1)
            every += timing["all"]
    rows = []
    for label, Xm, _ym, every in sizes:
        sec = _median(every)
        rows.append({"fraction": label, "rows": int(Xm.shape[0]), "nnz": int(Xm.nnz),
                     "columns": int(np.unique(Xm.indices).size),
                     "seconds_per_epoch": sec, "ns_per_nnz": sec / Xm.nnz * 1e9,
                     "all": every})
    # Small data: every step of a fit on SMALL_ROWS rows is in Adam's first ~37,000, where
    # its bias corrections are not 1 and the missed steps are replayed one by one.
    Xs, ys = first_rows(X, y, SMALL_ROWS)
    small = {}
    for opt in ("adagrad", "adam"):
        timing, _, _ = estimator_epochs(
            lambda it, opt=opt: estimator_cls(optimizer=opt, max_iter=it, n_jobs=1,
                                              random_state=seed),
            Xs, ys, repeats)
        small[opt] = {"seconds_per_epoch": timing["seconds_per_epoch"],
                      "ns_per_nnz": timing["seconds_per_epoch"] / Xs.nnz * 1e9}
    return {"rows": rows,
            "ratio_all_to_eighth": rows[-1]["seconds_per_epoch"] / rows[0]["seconds_per_epoch"],
            "nnz_ratio": rows[-1]["nnz"] / rows[0]["nnz"],
            "small": {"rows": int(Xs.shape[0]), "nnz": int(Xs.nnz), **small}}


# --------------------------------------------------------------------------- report


def _finite_or_none(value):
    """NaN and infinities as JSON null (``json`` would write the non-standard NaN)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _fmt_dict(d):
    return ", ".join(f"{k} {v:.2f} s" for k, v in d.items())


def _s(x):
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _mb(b):
    return f"{b / 1e6:.1f} MB"


def report(r):
    m = r["machine"]
    d = r["data"]
    lines = [
        "# sparseopt speed benchmark",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); "
        f"Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, numba "
        f"{m['numba']}, scikit-learn {m['sklearn']}; sparseopt {m['sparseopt']} "
        f"(git {m['git']}).",
        f"- Load average (1, 5, 15 min): {r['load_start']} at start, {r['load_end']} at "
        f"end. With a 1-minute load above the number of cores, other jobs share the CPU "
        f"and every time below is inflated.",
        f"- Data: {d['description']}. X: {d['shape'][0]:,} x {d['shape'][1]:,}, "
        f"{d['nnz']:,} nonzeros ({d['nnz'] / max(d['shape'][0], 1):.2f} per row), "
        f"{_mb(d['bytes'])} (data+indices+indptr); positive rate {d['positive_rate']:.2%}.",
        f"- Seconds per epoch of sparseopt: estimator defaults, random_state="
        f"{r['config']['seed']}, {r['config']['repeats']} fits of {FIT_EPOCHS} epochs "
        f"(fewer past {BUDGET:.0f} s, never fewer than {MIN_FITS}: see the epochs column); "
        f"median over their epochs 2 and 3 of the time from the start of an epoch to the "
        f"start of the next (all the estimator does per epoch: shuffle, kernel, objective, "
        f"checks); an optimizer's n_jobs=1 and n_jobs=-1 fits alternate, so both meet "
        f"the same load. Kernel: the `LazyModel.run_epoch` calls of the same epochs. "
        f"SGDClassifier: median over {r['sgdclassifier']['pairs']} pairs of "
        f"(fit(max_iter=3) - fit(max_iter=1)) / 2 (the first "
        f"{r['sgdclassifier']['first_pairs']} before the optimizers, then "
        f"{r['sgdclassifier']['pairs_per_round']} in each round of every optimizer's "
        f"fits). "
        f"x SGDClassifier and x mat-vec: against the SGDClassifier pairs and "
        f"{MATVEC_EXTRA} mat-vecs of each round of the optimizer's own fits (medians, "
        f"column 'alongside'), so that both sides of a ratio meet the same load; the two "
        f"rows above are medians over the whole run. First fit: "
        f"this process's first fit of the optimizer on "
        f"{r['first_fit_in_process']['rows']:,} rows (Numba compilation, "
        f"or cache load: the cache {r['machine']['numba_cache_dir']} had "
        f"{r['first_fit_in_process']['numba_index_files_before']} index files before).",
        "",
        "| method | n_jobs | s/epoch | ns/nnz | x SGDClassifier | x mat-vec | kernel s/epoch "
        "| first fit s | timed | alongside: SGDClassifier s/epoch, mat-vec s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mv = r["matvec"]["seconds"]
    sg = r["sgdclassifier"]["seconds_per_epoch"]
    nnz = d["nnz"]
    n_mv = len(r["matvec"]["all"])
    lines.append(f"| mat-vec `X @ w` (floor, median of {n_mv}) | | {_s(mv)} | "
                 f"{_s(mv / nnz * 1e9)} | {_s(mv / sg)} | 1 | | | {n_mv} calls | |")
    lines.append(f"| SGDClassifier(loss=\"log_loss\") | | {_s(sg)} | {_s(sg / nnz * 1e9)} | "
                 f"1 | {_s(sg / mv)} | | | {r['sgdclassifier']['pairs']} pairs | |")
    for opt, e in r["optimizers"].items():
        if "error" in e:
            lines.append(f"| {opt} | | **failed**: {e['error']} | | | | | "
                         f"{_s(e['first_fit_seconds'])} | | |")
            continue
        for n_jobs in (1, -1):
            x = e[f"n_jobs={n_jobs}"]
            k = e.get(f"kernel n_jobs={n_jobs}")
            kernel = _s(k["seconds_per_epoch"]) if k else ""
            ff = _s(e["first_fit_seconds"]) if n_jobs == 1 else ""
            fl = e["floors"]
            alongside = (f"{_s(fl['sgdclassifier']['seconds'])}, {_s(fl['matvec']['seconds'])} "
                         f"({len(fl['sgdclassifier']['all'])} pairs, "
                         f"{len(fl['matvec']['all'])} calls)" if n_jobs == 1 else "")
            lines.append(f"| {opt} | {n_jobs} | {_s(x['seconds_per_epoch'])} | "
                         f"{_s(x['ns_per_nnz'])} | {_s(x['vs_sgdclassifier'])} | "
                         f"{_s(x['vs_matvec'])} | {kernel} | {ff} | {len(x['all'])} epochs | "
                         f"{alongside} |")
    lines += ["", "## All cores (Hogwild) against one thread", "",
              f"n_jobs=-1 runs {m['usable_cores']} lock-free threads over blocks of rows. Test "
              "log loss of the last timed fit (4 epochs) of each; 'every fit': the "
              "difference of each timed all-cores fit (Hogwild's interleaving differs "
              "from fit to fit; the one-thread fit is the same every time), median "
              "(min to max).", "",
              "Ceiling: as many independent one-thread fits at once as there are cores, "
              "each its own model, sharing only X (`fit_at_once`): the speed-up the "
              "cores give when no weight is shared, against the same fit alone. Last "
              "column: the one-thread fit with the next random_state (another shuffle), "
              "against the one-thread fit: how far the test loss moves with the order of "
              "the rows alone. Per epoch: each all-cores epoch against the one-thread "
              "median. "
              f"What Hogwild's threads share: the 100 most frequent columns hold "
              f"{d.get('top100_column_share', float('nan')):.1%} of the nonzeros, so "
              "threads that shared every record would write these at nearly every row; "
              "with private records of the hot columns (below), all threads but one "
              "step their own copies and merge them into the shared ones now and then."]
    lines += _private_lines(r.get("private_records"), r.get("optimizers", {}))
    lines += _handoff_lines(r, d)
    lines += ["", "| optimizer | speed-up | near / far (fits) | bound near | "
              "per epoch, min-max | "
              "ceiling | near / far (fits) | test log loss n_jobs=1 "
              "| n_jobs=-1 | difference | every fit | n_jobs=1, random_state + 1 |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for opt, e in r["optimizers"].items():
        if "error" in e:
            continue
        ceiling = e.get("independent_fits")
        spread = e["speedup_per_epoch"]
        lines.append(f"| {opt} | {_s(e['speedup_all_cores'])}x | "
                     f"{_near_far(e.get('speedup_by_handoff'))} | "
                     f"{_bound_near(r, e)} | "
                     f"{_s(spread['min'])}x-{_s(spread['max'])}x | "
                     f"{_s(ceiling['speedup']) + 'x' if ceiling else ''} | "
                     f"{_near_far((ceiling or {}).get('speedup_by_handoff'))} | "
                     f"{e['n_jobs=1']['test_log_loss']:.5f} | "
                     f"{e['n_jobs=-1']['test_log_loss']:.5f} | "
                     f"{100 * e['test_loss_all_cores_vs_one']:+.2f}% | "
                     f"{_every_fit(e.get('test_loss_all_cores_fits'))} | "
                     f"{100 * e.get('test_loss_other_seed_vs_one', float('nan')):+.2f}% |")

    lines += _sharing_lines(r["sharing"])
    lines += _shuffle_lines(r["shuffle"])
    lines += _startup_lines(r["startup"])
    lines += _memory_lines(r["memory"])
    lines += _scaling_lines(r["scaling"], d)
    if r["errors"]:
        lines += ["", "## Failures", ""] + [f"- {e}" for e in r["errors"]]
    parts = ", ".join(f"{k} {v:.0f}" for k, v in r["section_seconds"].items())
    lines += ["", f"Run: {r['wall_seconds']:.0f} s wall ({parts}), {r['cpu_seconds']:.0f} s "
              f"CPU (this process and its children).", ""]
    return "\n".join(lines)


def _failed(title, section):
    return ["", f"## {title}", "", f"**failed**: {section['error']}"]


def _near_far(split):
    """``1.70x (4) / 0.93x (1)``: the speed-up near and far, with their fits."""
    if not split:
        return ""
    return " / ".join(
        f"{_s(split[k]['speedup']) + 'x' if split[k]['speedup'] else '-'} "
        f"({split[k]['fits']})" for k in ("near", "far"))


def _every_fit(diffs):
    """Median (min to max) of relative differences, in percent, and their count."""
    if not diffs:
        return ""
    return (f"{100 * _median(diffs):+.2f}% ({100 * min(diffs):+.2f}% to "
            f"{100 * max(diffs):+.2f}%, {len(diffs)} fits)")


def _row_ns(d, seconds_per_epoch):
    return seconds_per_epoch / d["shape"][0] * 1e9


def _shared_per_row(d):
    """Nonzeros per row in the 100 most frequent columns (None if not measured)."""
    share = d.get("top100_column_share")
    return share * d["nnz"] / d["shape"][0] if share and d["shape"][0] else None


def _bound_near(r, e):
    """``sharing_bound`` of an optimizer's one-thread row at the run's fastest move."""
    h, d = r.get("handoff"), r["data"]
    per_row = _shared_per_row(d)
    if not (h and per_row):
        return ""
    row_ns = _row_ns(d, e["n_jobs=1"]["seconds_per_epoch"])
    return _s(sharing_bound(row_ns, per_row, h["min_ns"],
                            r["machine"]["usable_cores"])) + "x"


def _handoff_lines(r, d):
    """What a cache line's move between the cores cost during the run, and what that
    means for a row whose records the other thread also writes."""
    h = r.get("handoff")
    if not h:
        return []
    lines = ["", f"Moving a cache line from one core to the other (`bench.host`, two "
             f"threads taking turns at one counter, just before and just after every "
             f"two-thread fit): {h['min_ns']:.0f}-{h['max_ns']:.0f} ns, median "
             f"{h['median_ns']:.0f} ns over {h['probes']} probes, "
             f"{h['far_share']:.0%} of them far (above {h['limit_ns']:.0f} ns, twice the "
             "fastest). Where the host runs the two virtual CPUs decides it, and it changes "
             "within minutes. 'Near / far': the speed-up over the fits whose probes "
             "before and after were both near, and over the others (a state can also "
             "change during a fit). Two threads that write the same records pay for every "
             "move; independent fits (the ceiling) write none.", ""]
    ada = r.get("optimizers", {}).get("adagrad", {})
    per_row = _shared_per_row(d)
    if "n_jobs=1" in ada and per_row and h["max_ns"] > h["limit_ns"]:
        row_ns = _row_ns(d, ada["n_jobs=1"]["seconds_per_epoch"])
        n = r["machine"]["usable_cores"]
        moves = moves_per_row(per_row, n)
        lines.append(
            f"What that means per row: a row has {per_row:.1f} nonzeros in the 100 most "
            f"frequent columns, and about {(n - 1) / n:.0%} of their records were last "
            f"written by another thread, so a thread waits for about {moves:.1f} moves "
            f"per row: {moves * h['min_ns']:.0f} ns at the fastest probe, "
            f"{moves * h['max_ns']:.0f} ns at the slowest, unless the moves overlap, "
            f"against {row_ns:.0f} ns for a whole row of adagrad on one thread.")
    lines += ["", "'Bound near': the most n threads that share every record can gain if "
              "each row waits for those moves at the run's fastest probe with no overlap, "
              "n r / (r + moves x move) for the optimizer's one-thread row r "
              "(`sharing_bound`). A record that straddles two cache lines can cost two "
              "moves: for such records the bound is high. Private records of the hot "
              "columns take most of those moves away: a speed-up above the bound is "
              "theirs."]
    return lines


def _private_lines(pl, optimizers):
    """The private records' plan: what it costs once per all-cores fit."""
    title = "Private records of the hot columns"
    if not pl:
        return []
    if "error" in pl:
        return _failed(title, pl)
    if not pl["plan"]:
        return ["", f"{title}: none on this data (`_engine.hogwild_plan`: fewer than "
                "PRIVATE_MIN_ROWS rows, or no column in PRIVATE_SHARE of the rows): every "
                "record is shared."]
    from sparseopt import _engine

    ada = optimizers.get("adagrad", {}).get("n_jobs=-1", {}).get("seconds_per_epoch")
    share = f" ({pl['seconds'] / ada:.2f} of adagrad's all-cores epoch)" if ada else ""
    return ["", f"{title} (`_engine.hogwild_plan`, for {', '.join(pl['optimizers'])}; "
            f"without L1 or averaging): {pl['hot_columns']} columns in at "
            f"least {_engine.PRIVATE_SHARE:.0%} of the rows, {pl['hot_share']:.1%} of the "
            f"nonzeros{_warm_text(pl)}. "
            f"{pl['private_threads']} of the {pl['threads']} threads step private copies of "
            f"their records, reached through a copy of X.indices each "
            f"({_mb(pl['bytes'])}), and merge them into the shared ones every "
            "PRIVATE_SYNC of their rows (the warm ones every WARM_SYNC). The plan is made "
            f"once per fit, before its first epoch: {pl['seconds'] * 1e3:.1f} ms (median "
            f"of {len(pl['all'])}){share}, not in the seconds per epoch above."]


def _warm_text(pl):
    """The plan's warm tier, if it has one (``_engine.WARM_MERGES``: large data only)."""
    from sparseopt import _engine

    if not pl.get("warm_columns"):
        return (", and no warm columns (fewer than WARM_MERGES x WARM_SYNC rows a "
                "thread)")
    return (f", and {pl['warm_columns']} warm columns after them (in at least "
            f"{_engine.WARM_SHARE:.3%} of the rows, at most {_engine.WARM_COLUMNS}), "
            f"{pl['warm_share']:.1%} of the nonzeros")


def _sharing_lines(sr):
    title = "What Hogwild's sharing costs"
    if "error" in sr:
        return _failed(title, sr)
    lines = ["", f"## {title}", "",
             f"The same fits on X without its {sr['top']} most frequent columns "
             f"({sr['nnz_without']:,} of {sr['nnz']:,} nonzeros left), whose records both "
             "threads write at nearly every row. The two matrices alternate round by "
             "round. A speed-up that rises without them is held back by the sharing; one "
             "that does not, by something else (memory, the host). Near / far: as in the "
             "Hogwild table, by the probes just before and after each two-thread fit.", "",
             "| optimizer | speed-up, all columns | near / far (fits) | without the top "
             "columns | near / far (fits) | "
             "1 thread s/epoch, all / without | 2 threads s/epoch, all / without | "
             "timed epochs |",
             "|---|---|---|---|---|---|---|---|"]
    for opt, e in sr["optimizers"].items():
        a, w = e["all"], e["without"]
        lines.append(f"| {opt} | {_s(a['speedup'])}x | {_near_far(a.get('by_handoff'))} | "
                     f"{_s(w['speedup'])}x | {_near_far(w.get('by_handoff'))} | "
                     f"{_s(a['one_thread'])} / {_s(w['one_thread'])} | "
                     f"{_s(a['all_cores'])} / {_s(w['all_cores'])} | {a['epochs']} |")
    return lines


def _shuffle_lines(sh):
    title = "Shuffle (adagrad, test log loss after each epoch)"
    if "error" in sh:
        return _failed(title, sh)
    lines = ["", f"## {title}", "",
              f"{sh['note']}.", "",
              f"| {sh['parameter']} | 1 epoch | 2 epochs | 3 epochs | s/epoch |",
              "|---|---|---|---|---|"]
    base = sh["runs"][-1]["test_log_loss"]  # the full permutation
    for run in sh["runs"]:
        ll = run["test_log_loss"]
        lines.append(f"| {run['value']!r} | {ll[0]:.5f} | {ll[1]:.5f} | {ll[2]:.5f} | "
                     f"{_s(run['seconds_per_epoch'])} |")
    default = sh["runs"][0]["test_log_loss"]
    diffs = ", ".join(f"{100 * (a / b - 1):+.2f}%" for a, b in zip(default, base))
    lines += ["", f"Default against the full permutation after 1, 2, 3 epochs: {diffs}."]
    return lines


def _startup_lines(st):
    title = "Start-up in a fresh process"
    if "error" in st:
        return _failed(title, st)
    cold, warm = st["cold"], st["warm"]
    lines = ["", f"## {title}", "",
              f"First fit: `SparseClassifier(random_state=0)` ({cold['first_fit_optimizer']}, "
              f"max_iter={cold['first_fit_max_iter']}) on {st['rows']:,} rows. Process: "
              f"the child's whole life, interpreter start included; its CPU seconds depend "
              f"less on other jobs than its wall seconds.", "",
              "| Numba cache | import sparseopt | from sparseopt import SparseClassifier | "
              f"first fit | first fits of {len(cold['first_fits'])} optimizers | process wall "
              "| process CPU |",
              "|---|---|---|---|---|---|---|"]
    for name, c in (("empty", cold), ("warm", warm)):
        lines.append(f"| {name} | {_s(c['import_sparseopt'])} | {_s(c['import_estimator'])} "
                     f"| {_s(c['first_fit'])} | {_s(c['all_first_fits'])} | "
                     f"{_s(c['process_wall'])} | {_s(c['process_cpu'])} |")
    lines += ["", f"Compile time of these optimizers together (empty cache, same child, "
              f"first fit of each, one thread): **{_s(cold['all_first_fits'])} s** "
              f"({_fmt_dict(cold['first_fits'])}; adamw shares adam's kernel)."]
    floor = st.get("floor")
    if floor:
        base = floor["import_sklearn_base"] + floor["import_numba"] + floor["first_jit_call"]
        own = floor["sparseopt_import"] + floor["sparseopt_first_fit"]
        lines += ["", f"Import plus first fit in one fresh process, in parts (warm cache, "
                  f"medians of {FLOOR_REPEATS} processes). What any Numba-compiled "
                  f"scikit-learn estimator pays first: `import sklearn.base` "
                  f"{_s(floor['import_sklearn_base'])} s ("
                  + ("with" if floor.get("pandas") else "without")
                  + " pandas, which it imports when installed), `import numba` "
                  f"{_s(floor['import_numba'])} s, Numba's one-time set-up at the first call "
                  f"of a cached jitted function {_s(floor['first_jit_call'])} s: "
                  f"**{_s(base)} s**. What sparseopt adds: the rest of its import "
                  f"{_s(floor['sparseopt_import'])} s and of the first fit "
                  f"{_s(floor['sparseopt_first_fit'])} s: **{_s(own)} s**. In all "
                  f"{_s(base + own)} s."]
    return lines


def _memory_lines(mem):
    title = "Peak memory of an adagrad fit (child process)"
    if "error" in mem:
        return _failed(title, mem)
    key = "VmHWM" if mem["peak_reset"] and "VmHWM" in mem["after_fit"] else "ru_maxrss"
    base, before, after = (mem[k][key] for k in ("baseline", "before_fit", "after_fit"))
    grow = after - before
    lines = ["", f"## {title}", "",
             f"- Peak RSS ({key}"
             + (", reset after the imports" if key == "VmHWM" else "") + f"): {_mb(base)} "
             f"after the imports, {_mb(before)} with X loaded (+{_mb(before - base)}), "
             f"{_mb(after)} after the fit: **+{_mb(grow)}** for the fit.",
             f"- X: {_mb(mem['x_bytes'])}; model state (weights, optimizer slots, "
             f"timestamps): {_mb(mem['model_state_bytes'])}; coef_: "
             f"{_mb(mem['coef_bytes'])}.",
             f"- Fit's peak increase / X = {grow / mem['x_bytes']:.2f}; / model state = "
             f"{grow / max(mem['model_state_bytes'], 1):.2f}."]
    if key == "VmHWM":
        lines.append(
            f"- `ru_maxrss` as reported (it may include the parent's peak at spawn): "
            f"{_mb(mem['before_fit']['ru_maxrss'])} before the fit, "
            f"{_mb(mem['after_fit']['ru_maxrss'])} after.")
    if key == "VmHWM" and "after_all_cores" in mem:
        grow_all = mem["after_all_cores"][key] - mem["before_all_cores"][key]
        lines.append(
            f"- Then a 2-epoch adagrad fit with n_jobs=-1 in the same process, the first "
            f"fit's model freed and the peak reset again: **+{_mb(grow_all)}** (it makes "
            f"the private records' plan, with its copies of X.indices: see the Hogwild "
            f"section); / model state = {grow_all / max(mem['model_state_bytes'], 1):.2f}.")
    return lines


def _scaling_lines(sc, d):
    title = "Time against data size (adagrad, n_jobs=1)"
    if "error" in sc:
        return _failed(title, sc)
    lines = ["", f"## {title}", "",
             "Sizes alternating, one fit of each per round; columns: distinct columns "
             "the rows touch.", "",
             "| rows | nnz | columns | s/epoch | ns/nnz | timed epochs |",
             "|---|---|---|---|---|---|"]
    for row in sc["rows"]:
        columns = f"{row['columns']:,}" if "columns" in row else ""
        lines.append(f"| {row['fraction']} ({row['rows']:,}) | {row['nnz']:,} | {columns} | "
                     f"{_s(row['seconds_per_epoch'])} | {_s(row['ns_per_nnz'])} | "
                     f"{len(row['all'])} |")
    ratio, nnz_ratio = sc["ratio_all_to_eighth"], sc["nnz_ratio"]
    if ratio < 0.9 * nnz_ratio:
        why = (f"below it: a per-epoch cost that does not grow with the rows, e.g. work "
               f"over all {d['shape'][1]:,} columns")
    elif ratio > 1.1 * nnz_ratio:
        why = ("above it: each nonzero costs more on more rows, e.g. more distinct columns "
               "touched and fewer of their records in cache")
    else:
        why = "about linear"
    lines += ["", f"all / (1/8): **{ratio:.2f}** (nonzeros {nnz_ratio:.2f}x; {why})."]
    small = sc.get("small")
    if small:
        lines += ["", f"Small data, the first {small['rows']:,} rows ({small['nnz']:,} "
                  f"nonzeros; every step in Adam's first ~37,000, where its bias "
                  f"corrections are not 1 and missed steps are replayed one by one): "
                  f"adagrad {_s(small['adagrad']['seconds_per_epoch'])} s/epoch "
                  f"({_s(small['adagrad']['ns_per_nnz'])} ns/nnz), adam "
                  f"{_s(small['adam']['seconds_per_epoch'])} s/epoch "
                  f"({_s(small['adam']['ns_per_nnz'])} ns/nnz)."]
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench.speed",
        description="Speed of every sparseopt optimizer against scikit-learn's "
        "SGDClassifier and a CSR mat-vec; start-up, compile time, memory and scaling. "
        "Writes speed.md and speed.json.")
    p.add_argument("--data", default=None, metavar="PATH",
                   help=f"PyPI TSV or svmlight file (default: {FULL_DATA} if it exists, "
                   "else a generated matrix of the same shape; 'generated' forces that)")
    p.add_argument("--out", default="bench/results",
                   help="output directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help=f"a generated matrix of {QUICK_ROWS:,} rows: every part, quickly")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed fits (pairs of fits for SGDClassifier) per measurement, "
                   ">= 3 "
                   "(default: 5, with --quick 3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 3:
        p.error("--repeats must be >= 3")
    if args.quick and args.data is not None:
        p.error("--quick runs on a generated matrix: drop --data")
    if args.data is None and not args.quick and FULL_DATA.exists():
        args.data = str(FULL_DATA)
    if args.data not in (None, "generated") and not Path(args.data).exists():
        p.error(f"--data {args.data}: no such file")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = run(data=args.data, out=args.out, quick=args.quick, repeats=args.repeats,
                 seed=args.seed)
    if result["errors"]:
        print(f"{len(result['errors'])} part(s) failed (see Failures above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
