"""Row orders of an epoch (the shuffle modes) and the Hogwild loop (n_jobs != 1)."""

import sys
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from joblib import Parallel, delayed
from sklearn.metrics import log_loss

from sparseopt import SparseClassifier, _engine, _kernels, _spec
from sparseopt.datasets import make_sparse_classification


@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 5000])
@pytest.mark.parametrize("shuffle", [True, "blocks", "rows", False])
def test_row_order_is_a_permutation(n, shuffle):
    order = _engine.row_order(n, shuffle, np.random.RandomState(0))
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


@given(n=st.integers(0, 200_000), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_block_order_is_whole_blocks_in_a_random_order(n, seed):
    order = _engine.row_order(n, True, np.random.RandomState(seed))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    block = min(_engine.SHUFFLE_BLOCK, max(1, n // _engine.SHUFFLE_BLOCK))
    # each block's rows in order, blocks in the order the seed's permutation gives
    blocks = np.random.RandomState(seed).permutation(-(-n // block))
    expected = [np.arange(b * block, min((b + 1) * block, n)) for b in blocks]
    np.testing.assert_array_equal(order, np.concatenate(expected) if n else order)


def test_block_order_keeps_blocks_and_shuffles_them():
    n = 256 * 256 + 17
    order = _engine.row_order(n, True, np.random.RandomState(0))
    starts = np.flatnonzero(np.r_[True, np.diff(order) != 1])
    # every run of consecutive rows is one whole block (the last block is short)
    assert len(starts) <= 257
    assert set(order[starts] % 256) == {0}
    assert not np.array_equal(order, np.arange(n))
    again = _engine.row_order(n, True, np.random.RandomState(0))
    np.testing.assert_array_equal(order, again)
    rows = _engine.row_order(n, "rows", np.random.RandomState(0))
    assert np.mean(np.diff(rows) == 1) < 0.01
    # small data: at least 256 blocks, single rows below 512
    small = _engine.row_order(1000, True, np.random.RandomState(0))
    assert np.mean(np.diff(small) == 1) < 0.7  # blocks of 3
    tiny = _engine.row_order(300, True, np.random.RandomState(0))
    assert np.mean(np.diff(tiny) == 1) < 0.05


@pytest.mark.parametrize("bad", ["full", "block", 2, None])
def test_bad_shuffle_is_rejected(bad):
    X, y, _ = make_sparse_classification(200, 2**8, random_state=0)
    with pytest.raises(ValueError, match="shuffle must be"):
        SparseClassifier(shuffle=bad).fit(X, y)


@pytest.mark.parametrize("bad", [0, -2, 1.5, "all"])
def test_bad_n_jobs_is_rejected(bad):
    X, y, _ = make_sparse_classification(200, 2**8, random_state=0)
    with pytest.raises(ValueError, match="n_jobs must be"):
        SparseClassifier(n_jobs=bad).fit(X, y)


@pytest.fixture(scope="module")
def problem():
    X, y, _ = make_sparse_classification(40000, 2**14, random_state=1)
    return X[:30000], y[:30000], X[30000:], y[30000:]


def _test_loss(est, X, y):
    return log_loss(y, est.predict_proba(X))


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd", "ftrl", "rmsprop", "adam"])
def test_hogwild_matches_one_thread(problem, optimizer):
    """Test loss with 2 threads against 1, as means over 3 seeds (the same for both).

    A sanity bound, not the speed issue's 0.5% (``python -m bench.speed`` measures that on
    all of pypi_popular). On 30,000 rows a Hogwild run moves by up to 0.9% from the
    one-thread run with the same seed on an idle machine (RMSProp, systematically lower),
    and further on a loaded one, where one thread can run far ahead of the other. Adam
    is the most sensitive: on this data its one-thread test loss alone moves by 9.4%
    between random_states 0-5 (random_state=3), and its Hogwild mean measured -0.1% to
    +1.5% from one thread's in 24 runs on this machine, +2.5% once in CI: its bound is 4%.
    """
    X, y, X_test, y_test = problem

    def fits(n_jobs):
        return [SparseClassifier(optimizer=optimizer, random_state=s, n_jobs=n_jobs).fit(X, y)
                for s in range(3)]

    one, two = fits(1), fits(2)
    for est in two:
        assert est.t_ == 3 * X.shape[0]
        assert np.isfinite(est.coef_).all()
        assert np.abs(est.coef_).max() > 0.1
    mean_one = np.mean([_test_loss(est, X_test, y_test) for est in one])
    mean_two = np.mean([_test_loss(est, X_test, y_test) for est in two])
    assert mean_two == pytest.approx(mean_one, rel=0.04 if optimizer == "adam" else 0.02)


def test_one_thread_is_deterministic(problem):
    X, y, _, _ = problem
    a = SparseClassifier(random_state=3, n_jobs=None).fit(X, y)
    b = SparseClassifier(random_state=3, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_hogwild_folds_the_scale_mid_epoch(problem):
    """A strong decay folds the global scale every few hundred steps: segments."""
    X, y, X_test, y_test = problem
    params = dict(optimizer="sgd", learning_rate="constant", eta0=0.05, alpha=0.5,
                  random_state=0, max_iter=2)
    one = SparseClassifier(**params).fit(X, y)
    two = SparseClassifier(**params, n_jobs=-1).fit(X, y)
    assert np.isfinite(two.coef_).all()
    assert _test_loss(two, X_test, y_test) == pytest.approx(
        _test_loss(one, X_test, y_test), rel=0.005)


def test_averaging_stays_on_one_thread(problem):
    X, y, _, _ = problem
    params = dict(optimizer="sgd", average=True, random_state=0, max_iter=2)
    one = SparseClassifier(**params).fit(X, y)
    two = SparseClassifier(**params, n_jobs=-1).fit(X, y)
    np.testing.assert_array_equal(one.coef_, two.coef_)


def test_hogwild_from_joblib_threads(problem):
    """Several Python threads entering the parallel loop at once must not crash.

    Threads of other fits compete for the two cores here, so one Hogwild lane may run
    far ahead of the other: the results vary more (up to 0.7% seen) than alone.
    """
    X, y, X_test, y_test = problem
    reference = _test_loss(SparseClassifier(random_state=0).fit(X, y), X_test, y_test)
    fits = Parallel(n_jobs=3, backend="threading")(
        delayed(SparseClassifier(random_state=s, n_jobs=-1).fit)(X, y) for s in range(3))
    for est in fits:
        assert _test_loss(est, X_test, y_test) == pytest.approx(reference, rel=0.02)


def _engine_problem(problem, optimizer, lam, lam1, eta0):
    """The first 3,000 rows for the engine directly: X, float labels, unit sample weights
    and the settings (the optimizer's default epsilon)."""
    from sparseopt.rules import RULES

    X, y, _, _ = problem
    X, y = X[:3000], y[:3000].astype(float)
    settings = _engine.make_settings(optimizer, "log_loss", lam=lam, lam1=lam1, eta0=eta0,
                                     epsilon=RULES[optimizer].default_epsilon)
    return X, y, np.ones(X.shape[0]), settings


@pytest.mark.parametrize("optimizer, lam, lam1, eta0", [
    ("sgd", 1e-3, 0.0, None), ("adagrad", 1e-3, 0.0, None), ("rmsprop", 1e-3, 0.0, None),
    ("adam", 1e-3, 0.0, None), ("ftrl", 1e-3, 0.0, None),
    # a decay that folds the scale every ~400 steps (segments), with the L1 total
    ("sgd", 1.0, 1e-4, 0.05), ("adagrad", 0.1, 1e-4, 0.5),
])
def test_hogwild_loop_on_one_thread_equals_the_one_thread_loop(problem, optimizer, lam, lam1,
                                                              eta0):
    """With one thread the work counter hands out every block once, in order: the Hogwild
    loop then takes the same steps as the one-thread loop. To the last bit where it takes
    the steps' scales one by one, as that loop does (with L1, or without a decay);
    without L1 each block's starting scale is a running product of the blocks' products
    (``_kernels._whole_blocks_scale``), the same to rounding: the models agree to
    rtol 1e-11 after two epochs."""
    from sparseopt import _kernels

    X, y, sw, settings = _engine_problem(problem, optimizer, lam, lam1, eta0)
    order = _engine.row_order(X.shape[0], True, np.random.RandomState(0))
    models = []
    for kernel in (_kernels.EPOCH[optimizer], _kernels.HOGWILD[optimizer]):
        model = _engine.LazyModel(optimizer, X.shape[1], 1)
        for _ in range(2):
            args = (X.indptr, X.indices, X.data, y, sw, order, model.P,
                    model.B, model.G, settings.hp, settings.loss_id, settings.sched_id,
                    model.t)
            extra = ((1, model.P, np.empty((0, 0), X.indices.dtype), np.empty(0, np.int64), 0)
                     if kernel is _kernels.HOGWILD[optimizer] else ())
            model.t, *_ = kernel(*args, *extra)
        models.append(model)
    one, hog = models
    assert hog.t == one.t == 2 * X.shape[0]
    assert np.abs(one.P[:, 0, 0]).max() > 1e-3  # it learned something
    if lam1 > 0.0 or optimizer == "ftrl":  # (FTRL's L2 is in its closed form: no decay)
        np.testing.assert_array_equal(hog.P, one.P)
        np.testing.assert_array_equal(hog.B, one.B)
        np.testing.assert_array_equal(hog.G, one.G)
    else:
        for a, b in ((hog.P, one.P), (hog.B, one.B), (hog.G, one.G)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-300)
        assert not np.array_equal(hog.P, one.P)  # (else the comment above is wrong)


def test_one_thread_epochs_release_the_gil(problem):
    """While one-thread epochs run in two Python threads, the main thread runs Python code
    (it could not if they held the GIL: with a long switch interval a thread gives the GIL
    up only where it blocks, or in code that releases it), and each thread's model is the
    one it gives alone."""
    X, y, _, _ = problem
    y = y.astype(float)
    settings = _engine.make_settings("adagrad", "log_loss", lam=1e-6)
    sw = np.ones(X.shape[0])
    orders = [_engine.row_order(X.shape[0], True, np.random.RandomState(s)) for s in (0, 1)]

    def epochs(model, order, spans):
        for _ in range(3):
            start = time.perf_counter()
            model.run_epoch(X, y, sw, order, settings)
            spans.append((start, time.perf_counter()))

    alone = [_engine.LazyModel("adagrad", X.shape[1], 1) for _ in orders]
    for model, order in zip(alone, orders):
        epochs(model, order, [])  # also compiles before the threads
    together = [_engine.LazyModel("adagrad", X.shape[1], 1) for _ in orders]
    spans = [[], []]
    ticks = []
    threads = [threading.Thread(target=epochs, args=(m, o, sp))
               for m, o, sp in zip(together, orders, spans)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            ticks.append(time.perf_counter())
            time.sleep(0.0002)
    finally:
        sys.setswitchinterval(interval)
    ticks = np.array(ticks)
    inside = sum(np.sum((ticks > start) & (ticks < end)) for sp in spans for start, end in sp)
    assert inside > 0, (spans, ticks)
    for one, two in zip(alone, together):
        np.testing.assert_array_equal(one.P, two.P)
        np.testing.assert_array_equal(one.B, two.B)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("optimizer, lam, lam1, eta0", [
    ("sgd", 1e-3, 1e-4, None), ("adagrad", 1e-3, 1e-4, None), ("rmsprop", 1e-3, 0.0, None),
    ("adam", 1e-3, 0.0, None), ("ftrl", 1e-3, 1e-4, None),
    ("sgd", 1.0, 0.0, 0.05),  # folds mid-epoch
])
def test_epoch_returns_the_models_penalty_sums(problem, optimizer, lam, lam1, eta0,
                                               n_threads):
    """The epoch's flush sums the penalty in its pass over the features (each thread its
    stripe in a Hogwild epoch): the same sums as ``penalty_sums`` of the model after it,
    NaN once a number of the model is not finite."""
    X, y, sw, settings = _engine_problem(problem, optimizer, lam, lam1, eta0)
    model = _engine.LazyModel(optimizer, X.shape[1], 1)
    for seed in range(2):
        order = _engine.row_order(X.shape[0], True, np.random.RandomState(seed))
        epoch = model.run_epoch(X, y, sw, order, settings, n_threads)
        sum_sq, sum_abs = model.penalty_sums()
        assert sum_sq > 1e-6 and sum_abs > 1e-4
        assert epoch.sum_sq == pytest.approx(sum_sq, rel=1e-12)
        assert epoch.sum_abs == pytest.approx(sum_abs, rel=1e-12)
    # Optimizer state only, not a weight (nor a timestamp); SGD without L1 has no state:
    # its weight.
    model.P[7, 0, 1 if len(model.slots) > 1 else 0] = np.inf
    epoch = model.run_epoch(X, y, sw, order[:0], settings, n_threads)
    assert np.isnan(epoch.sum_sq) and np.isnan(epoch.sum_abs)
    assert not model.is_finite()


@pytest.mark.parametrize("optimizer, lam, eta0", [
    ("rmsprop", 1e-3, None), ("adam", 1e-3, None),
    ("rmsprop", 0.1, 0.5), ("adam", 0.1, 0.5),  # folds every few hundred steps: segments
])
def test_hogwild_epoch_leaves_every_feature_up_to_date(problem, optimizer, lam, eta0):
    """At the end of each segment the threads share the catch-up of every feature (in
    chunks from a counter): after a two-thread epoch every timestamp is the step count,
    the scale is folded, and a flush at the same step (an empty one-thread epoch)
    changes no number of the model."""
    from sparseopt.rules import RULES

    X, y, sw, settings = _engine_problem(problem, optimizer, lam, 0.0, eta0)
    model = _engine.LazyModel(optimizer, X.shape[1], 1)
    last = RULES[optimizer].slots.index("last")
    for seed in range(2):
        order = _engine.row_order(X.shape[0], True, np.random.RandomState(seed))
        model.run_epoch(X, y, sw, order, settings, 2)
        np.testing.assert_array_equal(model.P[:, 0, last], model.t)
        assert model.G[_spec.G_SCALE] == 1.0
    before = model.P.copy()
    model.run_epoch(X, y, sw, order[:0], settings, 1)
    np.testing.assert_array_equal(model.P, before)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adadelta"])
def test_step_behind_the_timestamp_decays_the_averages_once(optimizer):
    """A Hogwild thread can step a feature that a thread further on has already brought
    past this step: the step's own decay of the averages is then already applied. The
    step undoes it once (divides by rho) before taking it, so each step decays a feature's
    averages once, as in dense Hogwild; the timestamp is not rewound. Checked in the
    Hogwild loop (only its threads' loop has the undo; the 6 rows are one block, so one
    thread takes them all), with the timestamp set ahead by hand (to step 5 of a 6-step
    epoch whose first row has the features): against the same step from a feature up to
    date, the averages keep the ``(1 - rho)`` share that a second decay would take."""
    import numba

    from sparseopt.rules import RULES

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("the Hogwild loop needs two threads")

    rho, eta0, eps = 0.6, 0.5, 1e-3
    slots = RULES[optimizer].slots
    W, V, LAST = slots.index("w"), slots.index("v"), slots.index("last")
    X = sp.csr_matrix(np.array([[1.0, 0.5]] + [[0.0, 0.0]] * 5))
    y, sw = np.ones(6), np.ones(6)
    settings = _engine.make_settings(optimizer, "log_loss", eta0=eta0, epsilon=eps, rho=rho,
                                     fit_intercept=False)
    w0, v0, delta0 = np.array([0.3, -0.2]), np.array([0.7, 0.4]), np.array([0.2, 0.1])
    models = {}
    for stamp in (0, 5):  # up to date before step 1; brought to step 5 by "another thread"
        model = _engine.LazyModel(optimizer, 2, 1)
        model.P[:, 0, W] = w0
        model.P[:, 0, V] = v0
        if optimizer == "adadelta":
            model.P[:, 0, slots.index("delta")] = delta0
        model.P[:, 0, LAST] = stamp
        model.run_epoch(X, y, sw, np.arange(6), settings, 2)
        models[stamp] = model
    on_time, late = models[0].P[:, 0], models[5].P[:, 0]
    np.testing.assert_array_equal(late[:, LAST], [6, 6])
    # The same margin, so the same gradients. On time: v = (rho v0 + (1-rho) g^2) rho^5
    # (steps 2-6 missed); late: v = (v0 + (1-rho) g^2) rho (step 6 missed).
    new = on_time[:, V] / rho**5 - rho * v0  # (1 - rho) g^2
    np.testing.assert_allclose(late[:, V], (v0 + new) * rho, rtol=1e-12)
    assert not np.allclose(late[:, W], on_time[:, W])  # the step reads the undecayed v
    if optimizer == "adadelta":
        delta = slots.index("delta")
        d = (w0 - late[:, W]) / eta0  # the step taken (no weight decay: lam=0)
        np.testing.assert_allclose(late[:, delta], (delta0 + (1 - rho) * d**2) * rho,
                                   rtol=1e-12)


# -- Hogwild threads with private records of the hot columns ------------------------------

def _plan_for(X, n_hot, n_lanes, n_warm=0):
    """A ``HotPlan`` of the ``n_hot`` most frequent columns of ``X`` and the ``n_warm``
    next ones for ``n_lanes`` private threads (``hogwild_plan`` chooses them by share, on
    large data only), each tier sorted by column."""
    from sparseopt import _kernels

    counts = np.bincount(X.indices, minlength=X.shape[1])
    ranked = np.argsort(-counts, kind="stable")
    hot = np.concatenate([np.sort(ranked[:n_hot]), np.sort(ranked[n_hot:n_hot + n_warm])])
    hot = hot.astype(np.int64)
    recs = np.empty((n_lanes, X.indices.size), X.indices.dtype)
    _kernels.private_indices(X.indices, hot, X.shape[1], recs)
    return _engine.HotPlan(hot, n_hot, recs)


@given(n_features=st.integers(1, 300), n_hot=st.integers(1, 40), n_lanes=st.integers(1, 3),
       nnz=st.integers(0, 400), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.int32, np.int64]))
@settings(max_examples=60, deadline=None)
def test_private_indices_send_hot_columns_to_each_threads_rows(n_features, n_hot, n_lanes,
                                                               nnz, seed, dtype):
    from sparseopt import _kernels

    rng = np.random.RandomState(seed)
    indices = rng.randint(0, n_features, nnz).astype(dtype)
    hot = np.sort(rng.choice(n_features, min(n_hot, n_features), replace=False))
    hot = hot.astype(np.int64)
    out = np.empty((n_lanes, nnz), dtype)
    _kernels.private_indices(indices, hot, n_features, out)
    rank = {int(j): h for h, j in enumerate(hot)}
    for lane in range(n_lanes):
        expected = [n_features + lane * hot.size + rank[j] if j in rank else j
                    for j in indices.tolist()]
        np.testing.assert_array_equal(out[lane], expected)


@pytest.mark.parametrize("optimizer, lam, eta0, n_out", [
    ("sgd", 1e-3, None, 1), ("adagrad", 1e-3, None, 1), ("rmsprop", 1e-3, None, 1),
    ("adadelta", 1e-3, None, 1), ("ftrl", 1e-3, None, 1), ("adam", 1e-3, None, 1),
    ("sgd", 1.0, 0.05, 1),  # folds every ~400 steps: segments, each with its private records
    ("rmsprop", 1e-3, None, 3), ("ftrl", 1e-3, None, 3),  # multinomial: 3 outputs a record
])
def test_private_records_alone_equal_the_one_thread_loop(problem, optimizer, lam, eta0,
                                                         n_out):
    """A thread with private records of the hot columns, alone in the Hogwild loop, merges
    them into the shared ones every PRIVATE_SYNC of its rows and at its end (those of the
    warm columns every WARM_SYNC rows: here only at its end); with no other
    thread the shared records do not move in between, so the merge must hand back its
    private records unchanged: the same numbers as the Hogwild loop on one thread without
    private records, to the last bit (3,000 rows: two merges inside each epoch and one at
    its end). (That loop against the one-thread loop:
    test_hogwild_loop_on_one_thread_equals_the_one_thread_loop.)"""
    from sparseopt import _kernels

    X, y, sw, settings = _engine_problem(problem, optimizer, lam, 0.0, eta0)
    if n_out > 1:
        y = (X.indices[X.indptr[:-1]] % n_out).astype(float)  # classes from the data
        settings = _engine.make_settings(optimizer, "multinomial", lam=lam, eta0=eta0)
    assert X.shape[0] > 2 * _kernels.PRIVATE_SYNC
    plan = _plan_for(X, 16, 1, n_warm=48)
    assert np.isin(X.indices, plan.hot[:16]).mean() > 0.05  # hot columns are a share of X
    assert np.isin(X.indices, plan.hot[16:]).mean() > 0.05  # and the warm ones too
    order = _engine.row_order(X.shape[0], True, np.random.RandomState(0))
    models = []
    kernel = _kernels.HOGWILD[optimizer]
    for private in (False, True):
        model = _engine.LazyModel(optimizer, X.shape[1], n_out)
        for _ in range(2):
            if private:
                extra = (1, model._with_private_rows(plan), plan.recs, plan.hot,
                         plan.n_hot)
            else:
                extra = (1, model.P, np.empty((0, 0), X.indices.dtype),
                         np.empty(0, np.int64), 0)
            args = (X.indptr, X.indices, X.data, y, sw, order, model.P, model.B, model.G,
                    settings.hp, settings.loss_id, settings.sched_id, model.t)
            model.t, *_ = kernel(*args, *extra)
        models.append(model)
    one, alone = models
    assert np.abs(one.P[plan.hot, 0, 0]).max() > 1e-3  # the hot columns learned something
    np.testing.assert_array_equal(alone.P, one.P)
    np.testing.assert_array_equal(alone.B, one.B)
    np.testing.assert_array_equal(alone.G, one.G)
    # The thread did step private rows (after the model's own; zeros when made): the
    # hot weights at its last merge, in the units before the fold (which scaled only the
    # model's own by a positive scale).
    rows = alone._with_private_rows(plan)
    private = rows[X.shape[1]:, :, 0]
    assert np.abs(private).min() > 0.0
    if optimizer != "adam":  # (its catch-up to the end moves weights after the merge)
        np.testing.assert_array_equal(np.sign(private), np.sign(rows[plan.hot, :, 0]))


def _merge_table(optimizer, hp, c):
    """The catch-up table the Hogwild loop hands its merges: ``rules.catch_up_table``'s
    own implementation for the rule (that function is only callable compiled)."""
    from sparseopt import rules

    code = rules.RULES[optimizer].code
    return rules._TABLE[code](code, hp, c)


@pytest.mark.parametrize("optimizer", ["adagrad", "rmsprop", "adadelta", "adam", "ftrl"])
def test_merge_takes_no_negative_change_of_a_sum_of_squares(optimizer):
    """The merge of private records adds the shared record's change since the snapshot;
    for a sum of squares (v, Adadelta's delta, FTRL's n) another thread's steps only add,
    and a race that leaves the shared record below the snapshot must not take the merged
    one below the private one: Adam's went below 0 (a NaN weight) in a benchmark run.
    Every other slot (weights, Adam's m, FTRL's z) adds its change either way."""
    from sparseopt import _kernels
    from sparseopt.rules import RULES, sum_of_squares

    settings = _engine.make_settings(optimizer, "log_loss")
    hp = settings.hp
    slots = RULES[optimizer].layout(0.0, 0.0)
    timed = slots[-1] == "last"
    n_state = len(slots) - timed
    squares = [e for e in range(n_state) if sum_of_squares(RULES[optimizer].code, e,
                                                           len(slots))]
    assert squares == [e for e, name in enumerate(slots) if name in ("v", "delta", "n")]
    n_features, hot = 4, np.array([1, 3])
    base = n_features
    P = np.zeros((n_features + hot.size, 1, len(slots)))
    snap = np.zeros((hot.size, 1, len(slots)))
    rng = np.random.RandomState(0)
    for e in range(n_state):
        private, shared, before = rng.uniform(0.5, 1.0, 3)
        # column 1: the shared record fell below the snapshot (the race), by more than
        # the private record holds; column 3: it rose (another thread's steps)
        P[base, 0, e], P[1, 0, e], snap[0, 0, e] = private, shared, before + 1.0
        P[base + 1, 0, e], P[3, 0, e], snap[1, 0, e] = private, shared + 1.0, before
    if timed:  # all up to date at the same step: the catch-ups move nothing
        P[:, 0, -1] = snap[:, 0, -1] = 7.0
    expected = P[base:base + 2].copy()
    change = P[hot] - snap
    for e in range(n_state):
        keep = change[:, 0, e] if e not in squares else np.maximum(change[:, 0, e], 0.0)
        expected[:, 0, e] += keep
    _, c = _kernels._weight_decay(RULES[optimizer].code, hp)
    _kernels._MERGE[optimizer](P, hot, base, snap, c, hp, _merge_table(optimizer, hp, c))
    merged = P[base:base + 2]
    ftrl_weight = optimizer == "ftrl"  # its weight is recomputed from z and n
    np.testing.assert_allclose(merged[:, 0, ftrl_weight:n_state],
                               expected[:, 0, ftrl_weight:n_state], rtol=1e-12)
    np.testing.assert_array_equal(P[hot], merged)  # the shared records and the snapshot
    np.testing.assert_array_equal(snap, merged)   # become the merged ones


@pytest.fixture(scope="module")
def large_problem():
    X, y, _ = make_sparse_classification(72000, 2**14, random_state=2)
    return X[:60000], y[:60000], X[60000:], y[60000:]


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_hogwild_plan_chooses_the_frequent_columns(large_problem, optimizer, monkeypatch):
    from sparseopt import _kernels

    X, y, _, _ = large_problem
    settings = _engine.make_settings(optimizer, "log_loss")
    # These rows are too few for a warm tier: a thread would merge it once an epoch.
    assert X.shape[0] < _engine.WARM_MERGES * _kernels.WARM_SYNC * 2
    plan = _engine.hogwild_plan(X, settings, 2)
    assert plan is not None and plan.hot.size == plan.n_hot > 0
    monkeypatch.setattr(_engine, "WARM_MERGES", 0)  # the warm tier's choice on these rows
    plan = _engine.hogwild_plan(X, settings, 2)
    assert plan is not None
    every = max(1, X.shape[0] // _engine.SAMPLE_ROWS)
    sample = X[::every]
    counts = np.bincount(sample.indices, minlength=X.shape[1])
    share = counts / sample.shape[0]
    hot = np.flatnonzero(share >= _engine.PRIVATE_SHARE)
    assert 0 < hot.size <= _engine.PRIVATE_COLUMNS
    assert plan.n_hot == hot.size
    np.testing.assert_array_equal(plan.hot[:plan.n_hot], hot)
    # Then the most frequent of the columns in at least WARM_SHARE of the rows, at most
    # WARM_COLUMNS of them, sorted by column.
    warm = np.flatnonzero((share >= _engine.WARM_SHARE) & (share < _engine.PRIVATE_SHARE))
    kept = plan.hot[plan.n_hot:]
    assert kept.size == min(warm.size, _engine.WARM_COLUMNS) > 1000
    assert np.all(np.diff(kept) > 0) and np.isin(kept, warm).all()
    left = np.setdiff1d(warm, kept)
    assert left.size == 0 or counts[kept].min() >= counts[left].max()
    assert plan.recs.shape == (1, X.nnz) and plan.recs.dtype == X.indices.dtype
    hot = np.isin(X.indices, plan.hot)
    np.testing.assert_array_equal(plan.recs[0, ~hot], X.indices[~hot])
    np.testing.assert_array_equal(plan.hot[plan.recs[0, hot] - X.shape[1]], X.indices[hot])


@pytest.mark.parametrize("case", ["one thread", "l1", "averaging", "small", "one epoch",
                                  "int32 too small"])
def test_hogwild_plan_is_none_where_private_records_do_not_apply(large_problem, case):
    """(``test_hogwild_plan_chooses_the_frequent_columns``: sgd and adagrad without L1
    on these rows and two threads have a plan.)"""
    X, y, _, _ = large_problem
    settings = _engine.make_settings("sgd", "log_loss", lam1=1e-4 if case == "l1" else 0.0,
                                     average=10 if case == "averaging" else 0)
    n_threads = 1 if case == "one thread" else 2
    if case == "small":
        X = X[:_engine.PRIVATE_MIN_ROWS - 1]
    if case == "int32 too small":  # a private row past 2**31 - 1: not counted, not made
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], 2**31 - 100))
        assert X.indices.dtype == np.int32
    n_epochs = 1 if case == "one epoch" else 3
    assert _engine.hogwild_plan(X, settings, n_threads, n_epochs) is None


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "ftrl", "adam"])
def test_hogwild_with_private_records_matches_one_thread(large_problem, optimizer):
    """On data large enough for private records (``hogwild_plan``), two threads' test loss
    against one thread's, as means over 2 seeds: the sanity bound of
    ``test_hogwild_matches_one_thread``. RMSProp's Hogwild mean here sits above one
    thread's: +0.55% on average, up to +1.80%, over 15 runs of the loop as it was at the
    start of session 17 (9853b25), up to +1.26% over 20 of the loop after it, and +2.4%
    once in CI: its bound is 4%, as Adam's is in that test. The model's records stay the
    features' own: the private ones are not part of it, nor of its pickle."""
    import pickle

    X, y, X_test, y_test = large_problem
    settings = _engine.make_settings(optimizer, "log_loss")
    assert _engine.hogwild_plan(X, settings, 2) is not None

    def fits(n_jobs):
        return [SparseClassifier(optimizer=optimizer, random_state=s, n_jobs=n_jobs,
                                 max_iter=3, tol=None).fit(X, y) for s in range(2)]

    one, two = fits(1), fits(2)
    for est in two:
        assert est._model.P.shape[0] == X.shape[1]
        assert pickle.loads(pickle.dumps(est))._model.P.shape[0] == X.shape[1]
        assert np.isfinite(est.coef_).all()
    mean_one = np.mean([_test_loss(est, X_test, y_test) for est in one])
    mean_two = np.mean([_test_loss(est, X_test, y_test) for est in two])
    assert mean_two == pytest.approx(mean_one,
                                     rel=0.04 if optimizer in ("rmsprop", "adam") else 0.02)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adadelta", "ftrl"])
def test_merge_adds_each_threads_changes_since_the_snapshot(optimizer):
    """A merge of a private record into a shared one that another thread moved meanwhile:
    every record is first brought to the later timestamp (RMSProp's and Adadelta's
    averages decay by rho per missed step; the weight does not move), then the private
    record plus the shared one's change since the snapshot; FTRL's weight is the
    function of the merged z and n. All three records end equal."""
    from sparseopt import _kernels
    from sparseopt.rules import RULES

    rho, eta0, lam2, beta = 0.9, 0.5, 0.01, 1.0
    slots = RULES[optimizer].slots
    if optimizer == "adagrad":
        slots = RULES[optimizer].layout(0.0, 0)
    timed = slots[-1] == "last"
    n_state = len(slots) - timed
    rng = np.random.RandomState(0)
    shared, private, snap = (np.abs(rng.rand(n_state)) + 0.1 for _ in range(3))
    # Another thread's steps only add to a sum of squares: the shared record at least
    # the snapshot (the other case: test_merge_takes_no_negative_change_of_a_sum_of_squares)
    shared += snap
    T0, Ts, Tp = 10, 17, 13
    P = np.zeros((3, 1, len(slots)))  # feature 1 is hot; row 2 its private record
    P[1, 0, :n_state], P[2, 0, :n_state] = shared, private
    snap_rec = np.zeros((1, 1, len(slots)))
    snap_rec[0, 0, :n_state] = snap
    if timed:
        P[1, 0, -1], P[2, 0, -1], snap_rec[0, 0, -1] = Ts, Tp, T0
    hp = _engine.make_settings(optimizer, "log_loss", eta0=eta0, rho=rho, lam=lam2,
                               ftrl_beta=beta).hp
    _kernels._MERGE[optimizer](P, np.array([1]), 2, snap_rec, 1.0, hp,
                               _merge_table(optimizer, hp, 1.0))

    decays = np.array([0.0 if s in ("v", "delta") else 1.0 for s in slots[:n_state]])
    T = max(Ts, Tp)

    def at_T(x, stamp):  # the averages decay by rho per step missed, the rest stay
        return x * np.where(decays == 0.0, rho ** (T - stamp), 1.0) if timed else x

    expected = at_T(private, Tp) + at_T(shared, Ts) - at_T(snap, T0)
    if optimizer == "ftrl":
        z, n = expected[slots.index("z")], expected[slots.index("n")]
        expected[slots.index("w")] = -z / ((beta + np.sqrt(n)) / eta0 + lam2)
    for record in (P[1, 0], P[2, 0], snap_rec[0, 0]):
        np.testing.assert_allclose(record[:n_state], expected, rtol=1e-12)
        if timed:
            assert record[-1] == T
    assert not np.allclose(expected, private)  # the shared change counted


def _merge_intercept_template(B, own, snap, n_held, eta, t, hp):
    """``_kernels._merge_intercept`` for the rule ``RULE``, a global that
    ``_kernels._for_rule`` sets (a constant, as in the Hogwild loops)."""
    _kernels._merge_intercept(RULE, B, own, snap, n_held, eta, t, hp)  # noqa: F821


def _merge_intercept_for(optimizer):
    from sparseopt.rules import RULES

    return _kernels._for_rule(_merge_intercept_template, "merge_intercept_" + optimizer,
                              RULES[optimizer].code)


# What one step multiplies each state slot of the intercept by, written out here from
# the rules' formulas (../shared/LAZY_UPDATES.md), not read from sparseopt.
_STEP_DECAYS = {"sgd": {}, "adagrad": {}, "ftrl": {},
                "rmsprop": {"v": "rho"}, "adadelta": {"v": "rho", "delta": "rho"},
                "adam": {"m": "beta_1", "v": "beta_2"}}


@pytest.mark.parametrize("optimizer", sorted(_STEP_DECAYS))
def test_held_intercept_merge_counts_each_threads_steps_once(optimizer):
    """A Hogwild thread that held a private intercept for ``n`` steps merges it into the
    shared one as if the other threads' steps since the snapshot came first and its own
    after: a sum of steps (a weight, Adagrad's squares, FTRL's z and n) adds its change;
    an average that one step multiplies by ``d`` becomes ``d**n * shared + own - d**n *
    snap`` (the old state decays under both threads' steps, each thread's part counts
    once). Adam's weight also takes the move that the other threads' change of the
    momentum makes over the thread's steps (as taking its steps again would, with the
    merged ``v`` for each step's). FTRL's weight is then the function of the merged z and
    n (never penalized). Alone (the shared one unmoved), the thread's intercept comes out
    as it was."""
    from sparseopt.rules import RULES

    eta0, beta, n_held, t, eps = 0.5, 1.0, 5, 7, 0.01
    factors = {"rho": 0.9, "beta_1": 0.8, "beta_2": 0.95}
    rule = RULES[optimizer]
    slots = [s for s in rule.layout(0.0, 0) if s != "last"]
    extra = {"rho": factors["rho"]} if optimizer in ("rmsprop", "adadelta") else {}
    if optimizer == "adam":
        extra = {"beta_1": factors["beta_1"], "beta_2": factors["beta_2"]}
    hp = _engine.make_settings(optimizer, "log_loss", eta0=eta0, lam=0.01, ftrl_beta=beta,
                               epsilon=eps, **extra).hp
    merge = _merge_intercept_for(optimizer)
    rng = np.random.RandomState(0)
    width = len(rule.layout(0.0, 0))
    snap, own, shared = (np.abs(rng.rand(1, 1, width)) + 0.1 for _ in range(3))
    merged = shared.copy()
    merge(merged, own, snap, n_held, eta0, t, hp)
    d = np.array([factors[_STEP_DECAYS[optimizer][s]] ** n_held
                  if s in _STEP_DECAYS[optimizer] else 1.0 for s in slots])
    expected = (d * shared[0, 0, :len(slots)] + own[0, 0, :len(slots)]
                - d * snap[0, 0, :len(slots)])
    if optimizer == "ftrl":
        z, n = expected[slots.index("z")], expected[slots.index("n")]
        expected[slots.index("w")] = -z / ((beta + np.sqrt(n)) / eta0)  # no L2
    if optimizer == "adam":
        b1, b2 = factors["beta_1"], factors["beta_2"]
        dm = shared[0, 0, slots.index("m")] - snap[0, 0, slots.index("m")]
        carried = sum(b1 ** i for i in range(1, n_held + 1))
        v_hat = expected[slots.index("v")] / (1 - b2 ** t)
        expected[slots.index("w")] -= (eta0 * carried * dm / (1 - b1 ** t)
                                       / (np.sqrt(v_hat) + eps))
    np.testing.assert_allclose(merged[0, 0, :len(slots)], expected, rtol=1e-12)
    assert not np.allclose(merged[0, 0, :len(slots)], own[0, 0, :len(slots)])
    alone = snap.copy()
    merge(alone, own, snap, n_held, eta0, t, hp)
    if optimizer == "ftrl":  # its weight: the function of its z and n
        own = own.copy()
        z, n = own[0, 0, slots.index("z")], own[0, 0, slots.index("n")]
        own[0, 0, slots.index("w")] = -z / ((beta + np.sqrt(n)) / eta0)
    np.testing.assert_allclose(alone[0, 0, :len(slots)], own[0, 0, :len(slots)],
                               rtol=1e-12)


def _scales_one_by_one(t, n, lam, hp, sched_id, scale):
    """The global scale before each of the steps ``t + 1 .. t + n``, the steps taken one
    after another with the schedule's formulas (``_spec`` names, ../shared/LAZY_UPDATES.md)
    in Python floats, as the one-thread loop takes them."""
    out = []
    for step in range(t + 1, t + n + 1):
        out.append(scale)
        if sched_id == _spec.CONSTANT:
            eta = hp[_spec.ETA0]
        elif sched_id == _spec.INVSCALING:
            eta = hp[_spec.ETA0] / step ** hp[_spec.POWER_T]
        else:
            eta = 1.0 / (hp[_spec.OPTIMAL_ALPHA] * (hp[_spec.OPTIMAL_INIT] + step - 1.0))
        scale *= 1.0 - eta * lam
    return np.array(out + [scale])


@pytest.mark.parametrize("schedule, lam, eta0", [
    ("constant", 1e-7, 1.0), ("optimal", 1e-4, None), ("invscaling", 1e-3, 0.1),
    ("constant", 0.5, 0.05),  # falls below MIN_SCALE after ~770 steps
])
@pytest.mark.parametrize("seg_start, n", [(0, 1000), (70, 1000), (0, 64 * 12), (5, 40)])
def test_whole_blocks_scale_matches_the_steps_one_by_one(schedule, lam, eta0, seg_start, n):
    """Without L1 the Hogwild loop takes the scale at each block's start from products of
    the blocks' steps: the same as the steps one by one to rounding, up to the block in
    which the scale falls below MIN_SCALE (the loop takes that block's steps one by
    one), and it leaves a block that is not whole to the loop too."""
    settings = _engine.make_settings("sgd", "log_loss", eta0=eta0, lam=lam,
                                     learning_rate=schedule)
    hp, t, scale0 = settings.hp, 300, 0.7
    block = _kernels.HOGWILD_BLOCK
    block_scale = np.full(n // block + 1, np.nan)
    block_l1 = np.full(n // block + 1, np.nan)
    end, scale = _kernels._whole_blocks_scale(seg_start, n, t, scale0, 0.25, lam, hp,
                                              settings.sched_id, block_scale, block_l1)
    expected = _scales_one_by_one(t + seg_start, n - seg_start, lam, hp, settings.sched_id,
                                  scale0)
    below = np.flatnonzero(expected < _spec.MIN_SCALE)
    # The block that holds the first step whose scale falls below MIN_SCALE, or the
    # last whole one.
    stop = (n - seg_start) // block if not below.size else (below[0] - 1) // block
    assert end == seg_start + stop * block
    np.testing.assert_allclose(block_scale[:stop], expected[:stop * block:block], rtol=1e-13)
    np.testing.assert_allclose(scale, expected[stop * block], rtol=1e-13)
    assert (block_l1[:stop] == 0.25).all()  # without L1, the total does not move
    assert np.isnan(block_scale[stop:]).all()  # the loop's own, one step at a time
