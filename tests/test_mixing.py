"""The combining rules of data-parallel rounds (sparseopt._mixing), without a cluster."""

import numpy as np
import pytest
import scipy.sparse as sp

from sparseopt import SparseClassifier, _engine, _mixing, _spec
from sparseopt.rules import RULES, ftrl, sgd

OPTIMIZERS = list(RULES)


def problem(n=120, d=30, density=0.15, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    y = (X @ rng.normal(size=d) > 0).astype(np.float64)
    return X, y


def settings_for(optimizer, **params):
    est = SparseClassifier(optimizer=optimizer, **params)
    est.classes_ = np.array([0, 1])
    return est._settings(0)


def run(model, settings, X, y, order):
    model = model.copy()
    model.run_epoch(X, y, np.ones(X.shape[0]), order.astype(np.int64), settings)
    return model


def mass(X, rows):
    Xr = X[rows]
    return np.asarray(Xr.multiply(Xr).sum(axis=0)).ravel()


def round_of(optimizer, X, y, **params):
    """A start model (one epoch on X), then two partitions' models from it."""
    settings = settings_for(optimizer, **params)
    n = X.shape[0]
    start = run(_engine.LazyModel(optimizer, X.shape[1], 1), settings, X, y, np.arange(n))
    halves = [np.arange(0, n // 2), np.arange(n // 2, n)]
    parts = [run(start, settings, X, y, rows) for rows in halves]
    masses = np.stack([mass(X, rows) for rows in halves])
    weights = np.array([len(rows) for rows in halves], dtype=float)
    return settings, start, parts, masses, weights


L1 = {"penalty": "l1", "alpha": 1e-3}
# Settings whose records have, between them, every slot of every rule.
SLOT_CASES = [(name, {}) for name in OPTIMIZERS] + [
    ("sgd", L1), ("sgd", {"average": True}), ("adagrad", L1)]


def test_slot_cases_cover_every_slot():
    seen = {name: set() for name in OPTIMIZERS}
    for optimizer, params in SLOT_CASES:
        hp = settings_for(optimizer, **params).hp
        seen[optimizer] |= set(RULES[optimizer].layout(hp[_spec.LAM1],
                                                       hp[_spec.AVERAGE_START]))
    assert seen == {name: set(rule.slots) for name, rule in RULES.items()}


@pytest.mark.parametrize("optimizer, params", SLOT_CASES)
def test_every_slot_follows_its_documented_rule(optimizer, params):
    X, y = problem()
    settings, start, parts, masses, weights = round_of(optimizer, X, y, **params)
    out = _mixing.combine(start, parts, masses, weights, settings)
    start_n = _mixing.normalized(start)
    parts_n = [_mixing.normalized(m) for m in parts]
    shares = masses / np.where(masses.sum(0) > 0, masses.sum(0), 1.0)
    shares[:, masses.sum(0) == 0] = 0.5
    assert out.slots == start.slots
    for s, name in enumerate(out.slots):
        rule = _mixing.SLOT_RULES[optimizer][name]
        got = out.P[:, 0, s]
        values = [m.P[:, 0, s] for m in parts_n]
        if optimizer == "ftrl" and name == "z":
            continue  # derived from w and n: checked below
        if optimizer == "adagrad" and name == "snap":
            np.testing.assert_array_equal(got, out.G[_spec.G_L1_TOTAL])
        elif rule == _mixing.MIX:
            np.testing.assert_allclose(got, shares[0] * values[0] + shares[1] * values[1],
                                       rtol=1e-12, atol=1e-15)
        else:
            expected = start_n.P[:, 0, s] + sum(v - start_n.P[:, 0, s] for v in values)
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert out.t == start.t + sum(m.t - start.t for m in parts) == 2 * X.shape[0]
    if "last" in out.slots:
        # Every feature up to date at the combined step (the "last" slot is a ledger).
        last = out.P[:, 0, out.slots.index("last")]
        np.testing.assert_array_equal(last, out.t)
    assert out.G[_spec.G_SCALE] == 1.0
    # The intercept is a feature of value 1 in every row: mixed by the rows' weight.
    np.testing.assert_allclose(out.B[0, 0, 0], (parts[0].B[0, 0, 0] + parts[1].B[0, 0, 0]) / 2)


@pytest.mark.parametrize("optimizer, before, after", [
    ("sgd", {}, L1), ("sgd", L1, {}), ("sgd", {}, {"average": True}),
    ("adagrad", {}, L1), ("adagrad", L1, {}),
])
def test_a_round_whose_settings_change_the_records(optimizer, before, after):
    """The start model has the records of earlier settings; a partition with no rows
    never runs: both are given the round's records (LazyModel.adapt_to) before mixing."""
    X, y = problem()
    n = X.shape[0]
    start = run(_engine.LazyModel(optimizer, X.shape[1], 1), settings_for(optimizer, **before),
                X, y, np.arange(n))
    settings = settings_for(optimizer, **after)
    ran = run(start, settings, X, y, np.arange(n))
    assert ran.slots != start.slots
    m = mass(X, np.arange(n))
    out = _mixing.combine(start, [ran, start], np.stack([m, 0 * m]), [float(n), 0.0],
                          settings)
    assert out.slots == ran.slots
    np.testing.assert_allclose(out.coef, ran.coef, rtol=1e-12, atol=1e-15)
    assert run(out, settings, X, y, np.arange(n)).is_finite()


def test_adagrad_accumulator_is_start_plus_sum_of_increments():
    X, y = problem()
    settings, start, parts, masses, weights = round_of("adagrad", X, y)
    out = _mixing.combine(start, parts, masses, weights, settings)
    v0 = start.state("v")[:, 0]
    np.testing.assert_allclose(
        out.state("v")[:, 0], v0 + (parts[0].state("v")[:, 0] - v0)
        + (parts[1].state("v")[:, 0] - v0), rtol=1e-13)
    b0 = start.intercept_state("v")[0]
    assert out.intercept_state("v")[0] == pytest.approx(
        parts[0].intercept_state("v")[0] + parts[1].intercept_state("v")[0] - b0, rel=1e-13)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_partitions_on_the_same_rows_keep_the_weights(optimizer):
    """Sanity of the rules: identical partitions give back their model's weights, and
    ledgers count both partitions' gradients (as one machine over the rows twice)."""
    X, y = problem()
    settings = settings_for(optimizer)
    start = run(_engine.LazyModel(optimizer, X.shape[1], 1), settings, X, y,
                np.arange(X.shape[0]))
    same = run(start, settings, X, y, np.arange(X.shape[0]))
    m = mass(X, np.arange(X.shape[0]))
    out = _mixing.combine(start, [same, same], np.stack([m, m]), [1.0, 1.0], settings)
    np.testing.assert_allclose(out.coef, same.coef, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out.intercept, same.intercept, rtol=1e-12)
    for name, rule in _mixing.SLOT_RULES[optimizer].items():
        if rule == _mixing.LEDGER and name in ("v", "n"):
            np.testing.assert_allclose(out.state(name), 2 * same.state(name) - start.state(name),
                                       rtol=1e-12)


@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
def test_ftrl_weight_is_its_closed_form_of_the_combined_z_and_n(penalty):
    X, y = problem()
    settings, start, parts, masses, weights = round_of("ftrl", X, y, penalty=penalty,
                                                       alpha=0.01)
    out = _mixing.combine(start, parts, masses, weights, settings)
    hp = settings.hp
    z, n, w = out.P[:, 0, ftrl.Z], out.P[:, 0, ftrl.N], out.P[:, 0, ftrl.W]
    lam1, lam2 = hp[_spec.LAM1], hp[_spec.LAM]
    closed = np.where(np.abs(z) <= lam1, 0.0, -(z - np.sign(z) * lam1)
                      / ((hp[_spec.FTRL_BETA] + np.sqrt(n)) / hp[_spec.ETA0] + lam2))
    np.testing.assert_allclose(w, closed, rtol=1e-12, atol=1e-15)
    # ... and the kernel continues from it: one more touch of each feature stays finite.
    after = run(out, settings, X, y, np.arange(X.shape[0]))
    assert after.is_finite()


def test_weights_of_a_feature_seen_by_one_partition_are_that_partitions():
    """Mass weighting: a feature absent from partition 2 keeps partition 1's weight (a
    plain mean would halve its update)."""
    X, y = problem(n=60, d=100, density=0.03)
    settings, start, parts, masses, weights = round_of("adagrad", X, y)
    only_first = (masses[0] > 0) & (masses[1] == 0)
    assert only_first.any()
    out = _mixing.combine(start, parts, masses, weights, settings)
    np.testing.assert_allclose(out.coef[only_first], parts[0].coef[only_first], rtol=1e-12)


def test_sgd_polyak_average_is_over_every_partitions_iterates():
    X, y = problem()
    settings, start, parts, masses, weights = round_of("sgd", X, y, average=True)
    out = _mixing.combine(start, parts, masses, weights, settings)

    def sums(m):  # sum of the averaged iterates, weights and intercept
        return m.averaged_coef() * m.n_averaged, m.averaged_intercept() * m.n_averaged

    assert out.n_averaged == start.n_averaged + sum(m.n_averaged - start.n_averaged
                                                    for m in parts)
    for got, s0, s1, s2 in zip(sums(out), sums(start), sums(parts[0]), sums(parts[1])):
        np.testing.assert_allclose(got, s0 + (s1 - s0) + (s2 - s0), rtol=1e-10, atol=1e-12)
    assert out.P[:, 0, sgd.AVG].shape == (X.shape[1],)


def test_normalized_folds_the_scale_into_true_units():
    X, y = problem()
    settings = settings_for("sgd", alpha=0.01)
    model = run(_engine.LazyModel("sgd", X.shape[1], 1), settings, X, y, np.arange(30))
    model.G[_spec.G_SCALE] = 0.5  # as if mid-decay: stored weights are twice the true ones
    coef = model.coef.copy()
    norm = _mixing.normalized(model)
    assert norm.G[_spec.G_SCALE] == 1.0
    np.testing.assert_allclose(norm.coef, coef)
