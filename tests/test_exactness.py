"""The lazy kernels against the dense reference of the contract (``LAZY_UPDATES.md``).

Every combination that the rule registry accepts (optimizer x penalty x loss x
schedule) runs on a random sparse problem where most features sit untouched for many
steps, for several epochs in different row orders; the true weights, the intercept and
the optimizer states must equal the dense reference's to ``rtol=1e-9, atol=1e-12``.
"""

import math
import pickle
import zlib

import numpy as np
import pytest
from dense_reference import (
    BINARY_LOSSES,
    REGRESSION_LOSSES,
    STATE_NAMES,
    dense_fit,
    dense_mean_loss,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparseopt import _engine, _spec

try:
    from sparseopt import _validation
except ImportError:  # not written yet
    _validation = None

try:
    from sparseopt.rules import RULES

    PENALTIES = {name: tuple(rule.penalties) for name, rule in RULES.items()}
    SCHEDULES = {name: tuple(rule.schedules) for name, rule in RULES.items()}
except ImportError:  # the registry is not written yet: the combinations of the contract
    PENALTIES = {
        "sgd": (None, "l2", "l1", "elasticnet"),
        "adagrad": (None, "l2", "l1", "elasticnet"),
        "ftrl": (None, "l2", "l1", "elasticnet"),
        "rmsprop": (None, "l2"),
        "adadelta": (None, "l2"),
        "adam": (None, "l2"),
    }
    SCHEDULES = {name: ("constant",) for name in PENALTIES}
    SCHEDULES["sgd"] = ("constant", "invscaling", "optimal")

OPTIMIZERS = sorted(PENALTIES)
SCALAR_LOSSES = BINARY_LOSSES + REGRESSION_LOSSES
RTOL = 1e-9
ATOL = 1e-12

# Step sizes that keep every problem below well-behaved (FTRL: its alpha).
ETA0 = {"sgd": 0.1, "adagrad": 0.2, "rmsprop": 0.01, "adadelta": 1.0, "adam": 0.02, "ftrl": 0.3}


class RawCSR:
    """The three CSR arrays, exactly as given.

    ``scipy.sparse.csr_matrix`` would downcast int64 indices to int32 and may sort them;
    the kernels only read these three attributes.
    """

    def __init__(self, data, indices, indptr, shape):
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.shape = shape


def csr_from_dense(X, *, dtype=np.float64, index_dtype=np.int32, rng=None):
    """CSR of the nonzeros of X; with ``rng``, each row's indices in a random order."""
    data, indices, indptr = [], [], [0]
    for row in X:
        cols = np.flatnonzero(row)
        if rng is not None:
            cols = rng.permutation(cols)
        indices.extend(cols)
        data.extend(row[cols])
        indptr.append(len(indices))
    return RawCSR(
        np.asarray(data, dtype=dtype),
        np.asarray(indices, dtype=index_dtype),
        np.asarray(indptr, dtype=index_dtype),
        X.shape,
    )


def penalty_strengths(optimizer, penalty):
    """(lam, lam1) for a penalty name, sized so that each visibly acts in a few epochs."""
    if optimizer == "ftrl":
        l2, l1 = 1.0, 1.5  # FTRL's lam2 sits next to (beta + sqrt(n))/alpha ~ 10
    elif optimizer == "adagrad":
        l2, l1 = 0.005 / ETA0[optimizer], 0.005 / ETA0[optimizer]
    else:
        l2 = 0.005 / ETA0[optimizer]  # decay factor 1 - 0.005 per step
        l1 = 0.001 / ETA0[optimizer]
    return {None: (0.0, 0.0), "l2": (l2, 0.0), "l1": (0.0, l1), "elasticnet": (l2, l1)}[penalty]


def sparse_problem(seed, loss, n_outputs=1, n=60, d=40, density=0.1):
    """A random sparse problem; a few columns are never present at all."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n, d)) < density
    mask[:, -3:] = False  # columns that no row touches
    mask[5] = False  # an empty row
    X = np.where(mask, rng.uniform(0.3, 1.2, (n, d)) * rng.choice([-1.0, 1.0], (n, d)), 0.0)
    w_true = rng.normal(size=d)
    if loss in REGRESSION_LOSSES:
        y = X @ w_true + 0.3 * rng.normal(size=n)
    elif n_outputs == 1:
        y = (X @ w_true + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    else:
        y = rng.integers(n_outputs, size=n).astype(np.float64)
    sw = rng.uniform(0.5, 2.0, n)
    return X, y, sw


def zlib_seed(*parts):
    """A seed that depends on the test case only (``hash`` of str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def random_orders(seed, n, n_epochs):
    rng = np.random.default_rng(seed + 1000)
    return [rng.permutation(n).astype(np.int64) for _ in range(n_epochs)]


def run_engine(optimizer, loss, n_outputs, Xc, y, sw, orders, **hp):
    """Fresh LazyModel, one ``run_epoch`` per order; returns (model, per-epoch totals)."""
    if _validation is not None:
        # The kernels do not bounds-check: the hand-built CSR must pass the engine's checks.
        assert not _validation.check_csr_structure(Xc)  # (True would mean duplicates)
    settings_ = _engine.make_settings(optimizer, loss, **hp)
    model = _engine.LazyModel(optimizer, Xc.shape[1], n_outputs)
    totals = [model.run_epoch(Xc, y, sw, order, settings_).loss for order in orders]
    return model, totals


def assert_matches_reference(model, ref, optimizer):
    assert model.t == ref["t"]
    np.testing.assert_allclose(model.coef, ref["coef"], rtol=RTOL, atol=ATOL, err_msg="coef")
    np.testing.assert_allclose(
        model.intercept, ref["intercept"], rtol=RTOL, atol=ATOL, err_msg="intercept"
    )
    for name in STATE_NAMES[optimizer]:
        np.testing.assert_allclose(
            model.state(name), ref[name], rtol=RTOL, atol=ATOL, err_msg=f"state {name!r}"
        )
        np.testing.assert_allclose(
            model.intercept_state(name),
            ref["intercept_" + name],
            rtol=RTOL,
            atol=ATOL,
            err_msg=f"intercept state {name!r}",
        )


def _combinations():
    cases = []
    for optimizer in OPTIMIZERS:
        for penalty in PENALTIES[optimizer]:
            for schedule in SCHEDULES[optimizer]:
                if schedule == "optimal" and penalty is None:
                    continue  # the optimal schedule is defined by alpha = lam + lam1 > 0
                for loss in SCALAR_LOSSES:
                    cases.append(
                        pytest.param(
                            optimizer,
                            penalty,
                            schedule,
                            loss,
                            id=f"{optimizer}-{penalty}-{schedule}-{loss}",
                        )
                    )
    return cases


def _schedule_hp(optimizer, schedule, loss, lam, lam1):
    if schedule == "optimal":
        # scikit-learn's heuristic starts at eta ~ alpha**-0.25 and decays like
        # 1/(alpha*t): alpha must be large enough for the first steps to stay stable, and
        # L1 small enough not to zero every weight.
        lam, lam1 = {
            (True, False): (0.2, 0.0),
            (False, True): (0.0, 0.05),
            (True, True): (0.1, 0.02),
        }[lam > 0, lam1 > 0]
        if loss == "huber" and lam == 0.0:
            lam1 = 0.01  # its gradients are at most epsilon_loss
        return dict(learning_rate="optimal", lam=lam, lam1=lam1)
    if schedule == "invscaling":
        return dict(learning_rate="invscaling", power_t=0.4, lam=lam, lam1=lam1)
    return dict(learning_rate="constant", lam=lam, lam1=lam1)


@pytest.mark.parametrize("optimizer, penalty, schedule, loss", _combinations())
def test_every_combination_equals_dense_reference(optimizer, penalty, schedule, loss):
    seed = zlib_seed(optimizer, penalty, schedule, loss)
    X, y, sw = sparse_problem(seed, loss)
    orders = random_orders(seed, len(y), 4)
    lam, lam1 = penalty_strengths(optimizer, penalty)
    hp = dict(
        eta0=ETA0[optimizer],
        epsilon_loss=0.3,
        **_schedule_hp(optimizer, schedule, loss, lam, lam1),
    )
    if optimizer == "sgd" and loss in REGRESSION_LOSSES and schedule != "optimal":
        hp["eta0"] = 0.05
    model, totals = run_engine(optimizer, loss, 1, csr_from_dense(X), y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, optimizer, loss, 1, **hp)
    assert np.all(np.isfinite(ref["coef"]))
    assert_matches_reference(model, ref, optimizer)
    # run_epoch returns the sum over the pass of sample_weight * loss, each loss taken
    # at the margins before that row's step (progressive loss).
    for order, total, losses in zip(orders, totals, ref["losses"]):
        np.testing.assert_allclose(total, np.dot(sw[order], losses), rtol=RTOL, atol=ATOL)
    if lam1 > 0.0:
        # The L1 cases must exercise both clipped and surviving weights.
        seen = np.zeros(X.shape[1], dtype=bool)
        seen[np.flatnonzero(X.any(axis=0))] = True
        assert np.any(ref["coef"][seen] == 0.0) and np.any(ref["coef"][seen] != 0.0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", ["multinomial", "log_loss"])
def test_three_outputs_equal_dense_reference(optimizer, loss):
    """Multinomial (softmax over K=3) and one-vs-rest log loss with K=3 outputs."""
    seed = zlib_seed(optimizer, loss, 3)
    X, y, sw = sparse_problem(seed, loss, n_outputs=3)
    orders = random_orders(seed, len(y), 3)
    penalty = "elasticnet" if "elasticnet" in PENALTIES[optimizer] else "l2"
    lam, lam1 = penalty_strengths(optimizer, penalty)
    hp = dict(eta0=ETA0[optimizer], lam=lam, lam1=lam1)
    model, _ = run_engine(optimizer, loss, 3, csr_from_dense(X), y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, optimizer, loss, 3, **hp)
    assert_matches_reference(model, ref, optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_no_intercept_stays_zero(optimizer):
    X, y, sw = sparse_problem(7, "log_loss")
    orders = random_orders(7, len(y), 2)
    hp = dict(eta0=ETA0[optimizer], fit_intercept=False)
    model, _ = run_engine(optimizer, "log_loss", 1, csr_from_dense(X), y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, **hp)
    assert_matches_reference(model, ref, optimizer)
    np.testing.assert_array_equal(model.intercept, 0.0)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_intercept_rate_scales_the_intercepts_step(optimizer):
    """The intercept steps with ``eta * intercept_rate`` (its own rule and state), the
    weights with ``eta``: the estimators' defaults are below 1 for sgd and the rules with
    running averages (``Rule.default_intercept_rate``)."""
    seed = zlib_seed(optimizer, "intercept_rate")
    X, y, sw = sparse_problem(seed, "log_loss")
    orders = random_orders(seed, len(y), 3)
    hp = dict(eta0=ETA0[optimizer], intercept_rate=0.1)
    model, _ = run_engine(optimizer, "log_loss", 1, csr_from_dense(X), y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, **hp)
    assert_matches_reference(model, ref, optimizer)
    full = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, eta0=ETA0[optimizer])
    assert abs(ref["intercept"][0] - full["intercept"][0]) > 1e-3  # the rate mattered


DECAYING = [o for o in OPTIMIZERS if o != "ftrl" and "l2" in PENALTIES[o]]


@pytest.mark.parametrize("optimizer", DECAYING)
def test_scale_folded_mid_epoch_equals_dense_reference(optimizer):
    """Strong decay: the global scale drops below MIN_SCALE inside an epoch, is folded."""
    X, y, sw = sparse_problem(11, "log_loss", n=200, d=40)
    orders = random_orders(11, len(y), 2)
    eta0 = ETA0[optimizer]
    lam = 0.15 / eta0  # 0.85**200 ~ 1e-14 < MIN_SCALE within each epoch
    lam1 = 0.002 / eta0 if "l1" in PENALTIES[optimizer] else 0.0
    hp = dict(eta0=eta0, lam=lam, lam1=lam1)
    model, _ = run_engine(optimizer, "log_loss", 1, csr_from_dense(X), y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, **hp)
    assert_matches_reference(model, ref, optimizer)


def _gaps_after_bias_correction_vanished(Xc, orders, b1, b2):
    """How many catch-ups start after both 1 - b**t equal 1 in float64 (Adam's late regime)."""
    last = np.zeros(Xc.shape[1], dtype=np.int64)
    t = 0
    count = 0
    for order in orders:
        for i in order:
            t += 1
            cols = Xc.indices[Xc.indptr[i] : Xc.indptr[i + 1]]
            after = last[cols] + 1.0
            late = (1.0 - b1**after == 1.0) & (1.0 - b2**after == 1.0)
            count += int(np.sum(late & (last[cols] > 0) & (t - 1 > last[cols])))
            last[cols] = t
    return count


@pytest.mark.parametrize(
    "beta_1, beta_2, epsilon, lam",
    [
        (0.5, 0.6, 1e-8, 0.0),
        (0.8, 0.9, 1e-8, 0.05),
        (0.7, 0.8, 1e-3, 0.0),  # eps comparable to sqrt(v): the series may not apply
        (0.9, 0.95, 1e-6, 0.2),
        (0.6, 0.7, 0.3, 0.0),  # eps dominates sqrt(v): the second expansion
        (0.8, 0.9, 0.3, 0.05),
    ],
)
def test_adam_long_gaps_after_bias_correction_vanishes(beta_1, beta_2, epsilon, lam):
    """Long runs with fast-decaying betas: catch-ups over long gaps once 1 - b**t == 1."""
    if "adam" not in PENALTIES:
        pytest.skip("no adam rule")
    X, y, sw = sparse_problem(41, "log_loss", n=200, d=60, density=0.04)
    orders = random_orders(41, len(y), 4)
    Xc = csr_from_dense(X)
    assert _gaps_after_bias_correction_vanished(Xc, orders, beta_1, beta_2) > 100
    hp = dict(eta0=0.02, lam=lam, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    model, _ = run_engine("adam", "log_loss", 1, Xc, y, sw, orders, **hp)
    ref = dense_fit(X, y, sw, orders, "adam", "log_loss", 1, **hp)
    assert_matches_reference(model, ref, "adam")


# --------------------------------------------------------------------------------------
# Property-based: shapes, densities, empty rows, unsorted indices, dtypes, hyperparameters.
# --------------------------------------------------------------------------------------


@st.composite
def problems(draw):
    optimizer = draw(st.sampled_from(OPTIMIZERS))
    n = draw(st.integers(1, 30))
    d = draw(st.integers(1, 25))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mask = rng.random((n, d)) < density
    if n > 1 and draw(st.booleans()):
        mask[rng.integers(n)] = False  # an empty row
    # float32 data or int64 indices, not both: each (rule, data dtype, index dtype) is a
    # kernel compiled on its own (about 8 s each), the kernel reads the two arrays
    # independently, and test_int64_indices_equal_int32 and
    # test_float32_data_equals_reference_of_upcast_values compile the other two pairs for
    # every rule anyway. The fourth pair cost CI up to 50 s.
    dtype, index_dtype = draw(st.sampled_from(
        [(np.float64, np.int32), (np.float32, np.int32), (np.float64, np.int64)]))
    values = rng.uniform(-1.5, 1.5, (n, d))
    if draw(st.booleans()):
        values[rng.random((n, d)) < 0.1] = 0.0  # explicitly stored zeros
    # Unsorted, duplicate-free indices within each row.
    data, indices, indptr = [], [], [0]
    for i in range(n):
        cols = rng.permutation(np.flatnonzero(mask[i]))
        indices.extend(cols)
        data.extend(values[i, cols])
        indptr.append(len(indices))
    Xc = RawCSR(
        np.asarray(data, dtype=dtype),
        np.asarray(indices, dtype=index_dtype),
        np.asarray(indptr, dtype=index_dtype),
        (n, d),
    )
    X = np.zeros((n, d))
    for i in range(n):
        sl = slice(indptr[i], indptr[i + 1])
        X[i, Xc.indices[sl]] = Xc.data[sl].astype(np.float64)  # float32 values, upcast

    losses = list(SCALAR_LOSSES) + ["multinomial"]
    loss = draw(st.sampled_from(losses))
    n_outputs = 1
    if loss == "multinomial":
        n_outputs = draw(st.integers(2, 4))
    elif loss in BINARY_LOSSES:
        n_outputs = draw(st.sampled_from([1, 1, 3]))
    if loss in REGRESSION_LOSSES:
        y = rng.normal(size=n)
    else:
        y = rng.integers(max(n_outputs, 2), size=n).astype(np.float64)
    sw = rng.uniform(0.1, 3.0, n)

    eta_range = {
        "sgd": (0.01, 0.3),
        "adagrad": (0.01, 0.5),
        "rmsprop": (0.001, 0.05),
        "adadelta": (0.1, 1.0),
        "adam": (0.001, 0.05),
        "ftrl": (0.05, 1.0),
    }
    lo, hi = eta_range[optimizer]
    eta0 = draw(st.floats(lo, hi))
    schedule = draw(st.sampled_from(SCHEDULES[optimizer]))
    use_l1 = "l1" in PENALTIES[optimizer] and draw(st.booleans())
    use_l2 = "l2" in PENALTIES[optimizer] and draw(st.booleans())
    if optimizer == "ftrl":
        lam = draw(st.floats(0.0, 2.0)) if use_l2 else 0.0
        lam1 = draw(st.floats(0.0, 0.5)) if use_l1 else 0.0
    else:
        lam = draw(st.floats(0.0, 0.2)) / eta0 if use_l2 else 0.0  # eta*lam <= 0.2
        lam1 = draw(st.floats(0.0, 0.01)) / eta0 if use_l1 else 0.0
    if schedule == "optimal":
        # Its step sizes come from alpha = lam + lam1 alone (the first is alpha**-0.25).
        lam = draw(st.floats(0.02, 0.5)) if use_l2 or not use_l1 else 0.0
        lam1 = draw(st.floats(0.001, 0.1)) if use_l1 else 0.0
    hp = dict(
        eta0=eta0,
        lam=lam,
        lam1=lam1,
        beta_1=draw(st.floats(0.0, 0.99)),
        beta_2=draw(st.floats(0.9, 0.9999)),
        epsilon=10.0 ** draw(st.floats(-8.0, -3.0)),
        rho=draw(st.floats(0.5, 0.99)),
        ftrl_beta=draw(st.floats(0.0, 2.0)),
        learning_rate=schedule,
        power_t=draw(st.floats(0.1, 1.0)),
        epsilon_loss=draw(st.floats(0.0, 0.5)),
        fit_intercept=draw(st.booleans()),
    )
    orders = [rng.permutation(n).astype(np.int64) for _ in range(2)]
    return optimizer, loss, n_outputs, Xc, X, y, sw, orders, hp


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(problems())
def test_property_equals_dense_reference(problem):
    optimizer, loss, n_outputs, Xc, X, y, sw, orders, hp = problem
    ref = dense_fit(X, y, sw, orders, optimizer, loss, n_outputs, **hp)
    model, _ = run_engine(optimizer, loss, n_outputs, Xc, y, sw, orders, **hp)
    assert_matches_reference(model, ref, optimizer)


# --------------------------------------------------------------------------------------
# Index and data dtypes.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_int64_indices_equal_int32(optimizer):
    X, y, sw = sparse_problem(21, "log_loss")
    orders = random_orders(21, len(y), 2)
    hp = dict(eta0=ETA0[optimizer])
    rng = np.random.default_rng(0)
    X32 = csr_from_dense(X, index_dtype=np.int32, rng=rng)
    X64 = RawCSR(
        X32.data.copy(), X32.indices.astype(np.int64), X32.indptr.astype(np.int64), X32.shape
    )
    assert X64.indices.dtype == np.int64 and X64.indptr.dtype == np.int64
    m32, _ = run_engine(optimizer, "log_loss", 1, X32, y, sw, orders, **hp)
    m64, _ = run_engine(optimizer, "log_loss", 1, X64, y, sw, orders, **hp)
    np.testing.assert_array_equal(m64.coef, m32.coef)
    np.testing.assert_array_equal(m64.intercept, m32.intercept)
    ref = dense_fit(X, y, sw, orders, optimizer, "log_loss", 1, **hp)
    assert_matches_reference(m64, ref, optimizer)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_float32_data_equals_reference_of_upcast_values(optimizer):
    X, y, sw = sparse_problem(22, "log_loss")
    orders = random_orders(22, len(y), 2)
    hp = dict(eta0=ETA0[optimizer])
    Xc = csr_from_dense(X, dtype=np.float32)
    data_before = Xc.data.copy()
    model, _ = run_engine(optimizer, "log_loss", 1, Xc, y, sw, orders, **hp)
    assert Xc.data.dtype == np.float32
    np.testing.assert_array_equal(Xc.data, data_before)  # input left untouched
    X_upcast = X.astype(np.float32).astype(np.float64)
    assert not np.array_equal(X_upcast, X)  # float32 rounding is visible
    ref = dense_fit(X_upcast, y, sw, orders, optimizer, "log_loss", 1, **hp)
    assert_matches_reference(model, ref, optimizer)


# --------------------------------------------------------------------------------------
# Continuation: a model copied or pickled between epochs continues bit for bit.
# --------------------------------------------------------------------------------------


def _model_arrays(model, optimizer):
    out = {"coef": model.coef, "intercept": model.intercept, "t": np.asarray(model.t)}
    for name in STATE_NAMES[optimizer]:
        out[name] = model.state(name)
        out["intercept_" + name] = model.intercept_state(name)
    return out


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_copied_or_pickled_model_continues_bit_for_bit(optimizer):
    X, y, sw = sparse_problem(31, "log_loss")
    orders = random_orders(31, len(y), 3)
    penalty = "elasticnet" if "elasticnet" in PENALTIES[optimizer] else "l2"
    lam, lam1 = penalty_strengths(optimizer, penalty)
    settings_ = _engine.make_settings(
        optimizer, "log_loss", eta0=ETA0[optimizer], lam=lam, lam1=lam1
    )
    Xc = csr_from_dense(X)

    whole = _engine.LazyModel(optimizer, X.shape[1], 1)
    for order in orders:
        whole.run_epoch(Xc, y, sw, order, settings_)

    first = _engine.LazyModel(optimizer, X.shape[1], 1)
    first.run_epoch(Xc, y, sw, orders[0], settings_)
    for resumed in (pickle.loads(pickle.dumps(first)), first.copy()):
        for order in orders[1:]:
            resumed.run_epoch(Xc, y, sw, order, settings_)
        a, b = _model_arrays(resumed, optimizer), _model_arrays(whole, optimizer)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # The copies were independent of the original: it still is after one epoch.
    assert first.t == len(y)

    ref = dense_fit(
        X, y, sw, orders, optimizer, "log_loss", 1, eta0=ETA0[optimizer], lam=lam, lam1=lam1
    )
    assert_matches_reference(whole, ref, optimizer)


@pytest.mark.parametrize("optimizer", ["adadelta", "adagrad"])
def test_records_start_a_cache_line(optimizer):
    """A model's records start a 64-byte line (``_engine.aligned_zeros``): when made, when
    their slots change, and from the epoch of a model whose records do not (unpickled,
    copied, loaded: NumPy's arrays start 16 bytes past one), so that a 32-byte record
    never straddles two lines."""
    X, y, sw = sparse_problem(5, "log_loss")
    Xc = csr_from_dense(X)
    lam1 = 1e-3 if optimizer == "adagrad" else 0.0  # Adagrad's L1 record has 3 slots
    settings_ = _engine.make_settings(optimizer, "log_loss", lam=1e-3, lam1=lam1)
    model = _engine.LazyModel(optimizer, X.shape[1], 2)
    assert model.P.ctypes.data % 64 == 0
    model.run_epoch(Xc, y, sw, np.arange(len(y)), settings_)
    assert model.P.ctypes.data % 64 == 0
    other = model.copy()
    buffer = np.zeros(model.P.size + 8)
    past = ((-buffer.ctypes.data % 64) // 8 + 2) % 8  # 16 bytes past a line
    other.P = buffer[past:past + model.P.size].reshape(model.P.shape)
    other.P[...] = model.P
    assert other.P.ctypes.data % 64 != 0
    other.run_epoch(Xc, y, sw, np.arange(len(y)), settings_)
    assert other.P.ctypes.data % 64 == 0
    assert np.abs(other.P - model.P).max() > 0  # it took its steps


@pytest.mark.parametrize("first, second", [
    ("l2", "l1"), (None, "elasticnet"), ("l1", "l1 x3"), ("elasticnet", "l2"),
])
@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_penalty_changed_between_calls_matches_the_dense_reference(optimizer, first,
                                                                    second):
    """A ``partial_fit`` after ``set_params(penalty=...)``: the model's records change
    (``LazyModel.adapt_to``: the L1 record comes and goes) and its L1 total prices every
    step at that step's strength, as the dense rule does. (Once, the first step of L1
    clipped every weight by the L1 budget of every step before it.)"""
    X, y, sw = sparse_problem(41, "log_loss")
    orders = random_orders(41, len(y), 3)
    Xc = csr_from_dense(X)

    def strengths(penalty):
        lam, lam1 = penalty_strengths(optimizer, penalty.split()[0] if penalty else None)
        return lam, lam1 * (3.0 if penalty and penalty.endswith("x3") else 1.0)

    model = _engine.LazyModel(optimizer, X.shape[1], 1)
    ref = None
    for penalty, epochs in [(first, orders[:1]), (second, orders[1:])]:
        lam, lam1 = strengths(penalty)
        settings_ = _engine.make_settings(optimizer, "log_loss", eta0=ETA0[optimizer],
                                          lam=lam, lam1=lam1)
        for order in epochs:
            model.run_epoch(Xc, y, sw, order, settings_)
        assert model.slots == RULES[optimizer].layout(lam1, 0)
        ref = dense_fit(X, y, sw, epochs, optimizer, "log_loss", 1, eta0=ETA0[optimizer],
                        lam=lam, lam1=lam1, state=ref)
    assert_matches_reference(model, ref, optimizer)


# --------------------------------------------------------------------------------------
# Each optimizer learns.
# --------------------------------------------------------------------------------------


def separable_problem(seed=0, n=200, d=50, density=0.1, margin=0.5):
    rng = np.random.default_rng(seed)
    w_true = np.zeros(d)
    support = rng.choice(d, 15, replace=False)
    w_true[support] = rng.choice([-1.0, 1.0], 15) * rng.uniform(1.0, 2.0, 15)
    rows = []
    while len(rows) < n:
        x = np.where(rng.random(d) < density, rng.uniform(0.5, 1.5, d), 0.0)
        if abs(x @ w_true) >= margin:
            rows.append(x)
    X = np.array(rows)
    y = (X @ w_true > 0).astype(np.float64)
    return X, y


# Adadelta's first steps are about sqrt(epsilon) in size: with epsilon = 1e-8 it would need
# far more than five epochs to move, so it gets a larger one here.
LEARNING_HP = {
    "sgd": dict(eta0=0.5),
    "adagrad": dict(eta0=0.5),
    "rmsprop": dict(eta0=0.05),
    "adadelta": dict(eta0=1.0, epsilon=1e-2),
    "adam": dict(eta0=0.05),
    "ftrl": dict(eta0=1.0),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_learns_a_separable_problem(optimizer):
    X, y = separable_problem()
    sw = np.ones(len(y))
    orders = random_orders(0, len(y), 5)
    model, totals = run_engine(
        optimizer, "log_loss", 1, csr_from_dense(X), y, sw, orders, **LEARNING_HP[optimizer]
    )
    final = dense_mean_loss(X, y, model.coef, model.intercept, "log_loss")
    assert final < 0.1 * math.log(2.0), final
    assert totals[-1] < totals[0]


def _adam_gap_by_loop(u, m, v, missed, eta, inv_scale, c, b1, b2, eps):
    """The missed steps' move replayed one by one and summed exactly (math.fsum). Steps
    past 5,000 are left out: b1**5000 < 1e-480 for the betas below, far under a rounding."""
    terms = [eta * inv_scale * c ** (missed - s) * m * b1**s / (math.sqrt(v * b2**s) + eps)
             for s in range(1, min(missed, 5000) + 1)]
    return u - math.fsum(terms)


@pytest.mark.parametrize("beta_1, beta_2", [(0.9, 0.999), (0.9, 0.9999), (0.8, 0.999)])
def test_adam_table_catch_up_matches_exact_sum(beta_1, beta_2):
    """The tabulated closed form (bias corrections 1) against an exact replay of the gap."""
    from sparseopt.rules import adam

    rng = np.random.default_rng(3)
    c = 1.0 - 1e-6
    tables = adam.catch_up_table(beta_1, beta_2, c)
    assert tables[1].shape[0] > 0  # these betas are covered by the closed form
    worst = 0.0
    for _ in range(400):
        missed = int(rng.choice([1, 2, 7, 50, 300, 417, 419, 5000, 10**6]))
        u, m = rng.normal(size=2)
        v = 10.0 ** rng.uniform(-8, 1)
        eps = 10.0 ** rng.uniform(-8, 0.5)
        P = np.array([[[u, m, v]]])
        adam.catch_up(P, 0, 0, missed, 10**7, 0.05, 1.3, c, beta_1, beta_2, eps, tables)
        want = _adam_gap_by_loop(u, m, v, missed, 0.05, 1.3, c, beta_1, beta_2, eps)
        # relative to the larger of the weight and the result: u - move may cancel
        worst = max(worst, abs(P[0, 0, 0] - want) / max(abs(want), abs(u)))
        assert P[0, 0, 1] == pytest.approx(m * beta_1**missed, rel=1e-12)
    assert worst < 1e-14


def _adam_bias_gap_by_loop(u, m, v, missed, last, eta, inv_scale, c, b1, b2, eps):
    """The dense rule's moves over the gap, with its bias corrections, summed exactly."""
    terms = []
    for i in range(1, missed + 1):
        s = last + i
        m_hat = m * b1**i / (1.0 - b1**s)
        v_hat = v * b2**i / (1.0 - b2**s)
        terms.append(eta * inv_scale * c ** (missed - i) * m_hat / (math.sqrt(v_hat) + eps))
    return u - math.fsum(terms)


@pytest.mark.parametrize("beta_1, beta_2, near", [
    (0.9, 0.999, None), (0.9, 0.9999, None), (0.8, 0.99, None),
    (0.9, 0.999999, 2**20),  # gaps across the end of the bias table (2**20 steps)
])
def test_adam_replay_before_bias_corrections_vanish_matches_exact_sum(beta_1, beta_2, near):
    """Gaps starting before the bias corrections are 1 are replayed step by step with the
    tabulated corrections (``catch_up_table``'s ``bias``); against an exact sum."""
    from sparseopt.rules import adam

    rng = np.random.default_rng(5)
    c = 1.0 - 1e-6
    tables = adam.catch_up_table(beta_1, beta_2, c)
    first = tables[2]
    worst = 0.0
    for _ in range(150):
        missed = int(rng.choice([1, 2, 7, 50, 300, 1500]))
        last = int(rng.integers(0, first - 1) if near is None else
                   rng.integers(near - 400, near + 50))
        u, m = rng.normal(size=2)
        v = 10.0 ** rng.uniform(-8, 1)
        eps = 10.0 ** rng.uniform(-8, 0.5)
        P = np.array([[[u, m, v]]])
        adam.catch_up(P, 0, 0, missed, last, 0.05, 1.3, c, beta_1, beta_2, eps, tables)
        want = _adam_bias_gap_by_loop(u, m, v, missed, last, 0.05, 1.3, c, beta_1, beta_2,
                                      eps)
        worst = max(worst, abs(P[0, 0, 0] - want) / max(abs(want), abs(u)))
    assert worst < 1e-14


@settings(max_examples=60, deadline=None)
@given(
    optimizer=st.sampled_from(sorted(RULES)),
    n_features=st.integers(1, 9),
    n_outputs=st.integers(1, 3),
    scale=st.floats(0.01, 2.0),
    seed=st.integers(0, 2**31 - 1),
    poison=st.sampled_from([None, math.inf, -math.inf, math.nan]),
)
def test_penalty_sums_match_numpy_and_flag_any_nonfinite_number(
        optimizer, n_features, n_outputs, scale, seed, poison):
    """The one-pass sums of the objective's penalty equal NumPy's; any non-finite number of
    the model (weight, state slot or intercept; odd and even counts of weights) makes
    both NaN, which the estimators report as a divergence."""
    rng = np.random.default_rng(seed)
    model = _engine.LazyModel(optimizer, n_features, n_outputs)
    model.P[:] = rng.normal(size=model.P.shape)
    model.B[:] = rng.normal(size=model.B.shape)
    model.G[_spec.G_SCALE] = scale
    if poison is None:
        w = model.P[:, :, 0] * scale
        sum_sq, sum_abs = model.penalty_sums()
        np.testing.assert_allclose(sum_sq, np.sum(w * w), rtol=1e-12)
        np.testing.assert_allclose(sum_abs, np.sum(np.abs(w)), rtol=1e-12)
        assert model.is_finite()
        return
    where = rng.integers(model.P.size + model.B.size)
    if where < model.P.size:
        model.P.reshape(-1)[where] = poison
    else:
        model.B.reshape(-1)[where - model.P.size] = poison
    assert all(math.isnan(v) for v in model.penalty_sums())
    assert not model.is_finite()


def test_timestamped_rules_keep_the_timestamp_in_their_final_slot():
    """The kernels read a feature's timestamp as its record's final slot (``P[j, 0, -1]``):
    exactly the rules whose catch-up counts missed steps have one, and it comes last."""
    from sparseopt import rules

    for name, rule in RULES.items():
        timestamped = rules.needs_timestamp(rule.code)
        assert ("last" in rule.slots) == timestamped, name
        if timestamped:
            assert rule.slots[-1] == "last", name
