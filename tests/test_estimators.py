"""Behaviour of SparseClassifier and SparseRegressor that users rely on."""

import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

import sparseopt
from sparseopt import DivergenceError, SparseClassifier, SparseRegressor
from sparseopt.rules import RULES

OPTIMIZERS = list(RULES) + ["adamw"]


def sparse_problem(n=300, d=60, density=0.1, n_classes=2, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    W = rng.normal(size=(d, n_classes)) * 3
    y = np.argmax(X @ W + 0.1 * rng.normal(size=(n, n_classes)), axis=1)
    return X, y


def test_fit_epochs_equal_partial_fit_calls():
    X, y = sparse_problem()
    for optimizer in OPTIMIZERS:
        fitted = SparseClassifier(optimizer=optimizer, shuffle=False, max_iter=3).fit(X, y)
        partial = SparseClassifier(optimizer=optimizer, shuffle=False)
        for _ in range(3):
            partial.partial_fit(X, y, classes=[0, 1])
        np.testing.assert_allclose(partial.coef_, fitted.coef_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(partial.intercept_, fitted.intercept_, rtol=0, atol=1e-12)
        assert partial.t_ == fitted.t_ == 3 * X.shape[0]


def test_partial_fit_needs_classes_and_keeps_features():
    X, y = sparse_problem()
    clf = SparseClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1])
    t = clf.t_
    clf.partial_fit(X[:10], y[:10])
    assert clf.t_ == t + 10
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :10], y)


def test_partial_fit_emits_no_warning(recwarn):
    X, y = sparse_problem()
    clf = SparseClassifier()
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    assert len(recwarn) == 0


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_learns_a_multiclass_problem(optimizer):
    X, y = sparse_problem(n_classes=3, n=600)
    eta0 = {"sgd": None, "rmsprop": 0.01, "adam": 0.01, "adamw": 0.01}.get(optimizer)
    clf = SparseClassifier(optimizer=optimizer, eta0=eta0, max_iter=10, random_state=0)
    clf.fit(X, y)
    assert clf.coef_.shape == (3, 60)
    assert clf.intercept_.shape == (3,)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert log_loss(y, proba) < 0.8 * np.log(3)
    assert clf.score(X, y) > 0.6


def test_ovr_and_multinomial_differ_and_both_learn():
    X, y = sparse_problem(n_classes=3, n=600)
    multi = SparseClassifier(multi_class="multinomial", max_iter=10, random_state=0).fit(X, y)
    ovr = SparseClassifier(multi_class="ovr", max_iter=10, random_state=0).fit(X, y)
    assert not np.allclose(multi.coef_, ovr.coef_)
    assert multi.score(X, y) > 0.6 and ovr.score(X, y) > 0.6
    with pytest.raises(ValueError, match="multinomial.*needs loss='log_loss'"):
        SparseClassifier(loss="hinge", multi_class="multinomial").fit(X, y)


def test_labels_of_any_type_and_class_weight():
    X, y = sparse_problem()
    labels = np.array(["spam", "ham"])[y]
    clf = SparseClassifier(random_state=0).fit(X, labels)
    assert set(clf.predict(X)) <= {"spam", "ham"}
    assert list(clf.classes_) == ["ham", "spam"]
    neg = SparseClassifier(random_state=0).fit(X, np.where(y == 1, -7, -3))
    assert set(neg.classes_) == {-7, -3}
    balanced = SparseClassifier(random_state=0, class_weight="balanced").fit(X, y)
    weighted = SparseClassifier(random_state=0, class_weight={0: 1.0, 1: 5.0}).fit(X, y)
    assert weighted.predict(X).mean() > balanced.predict(X).mean() - 1e-9
    assert not np.allclose(weighted.coef_, balanced.coef_)


def test_sample_weight_changes_the_fit_and_zero_weights_error():
    X, y = sparse_problem()
    sw = np.linspace(0.1, 3.0, X.shape[0])
    a = SparseClassifier(random_state=0).fit(X, y)
    b = SparseClassifier(random_state=0).fit(X, y, sample_weight=sw)
    assert not np.allclose(a.coef_, b.coef_)
    with pytest.raises(ValueError, match="Negative values"):
        SparseClassifier().fit(X, y, sample_weight=-sw)
    with pytest.raises(ValueError, match="sample weights are zero"):
        SparseClassifier().fit(X, y, sample_weight=np.zeros(X.shape[0]))


def test_input_formats_give_the_same_model():
    X, y = sparse_problem()
    ref = SparseClassifier(random_state=0).fit(X, y).coef_
    for variant in (X.toarray(), X.tocsc(), X.tocoo()):
        np.testing.assert_allclose(SparseClassifier(random_state=0).fit(variant, y).coef_, ref,
                                   rtol=1e-12, atol=1e-14)
    X64 = sp.csr_matrix((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                        shape=X.shape)
    np.testing.assert_array_equal(SparseClassifier(random_state=0).fit(X64, y).coef_, ref)


def test_float32_input_is_not_copied_or_upcast(monkeypatch):
    X, y = sparse_problem()
    X32 = X.astype(np.float32)
    seen = {}
    from sparseopt import _engine

    original = _engine.LazyModel.run_epoch

    def spy(self, X, *args):
        seen["data"] = X.data
        return original(self, X, *args)

    monkeypatch.setattr(_engine.LazyModel, "run_epoch", spy)
    SparseClassifier(random_state=0).fit(X32, y)
    assert seen["data"].dtype == np.float32
    assert np.shares_memory(seen["data"], X32.data)


def test_pandas_input_sets_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = sparse_problem(d=5, density=0.5)
    frame = pd.DataFrame(X.toarray(), columns=[f"f{i}" for i in range(5)])
    clf = SparseClassifier().fit(frame, pd.Series(y))
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.predict(frame).shape == (X.shape[0],)


def test_pipeline_grid_search_clone_and_cross_val():
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "beta", "gamma", "delta", "rare1", "rare2", "rare3"])
    docs, y = [], []
    for _ in range(200):
        label = int(rng.random() < 0.5)
        picks = rng.choice(words[:4], size=3).tolist() + (["rare1"] if label else ["rare2"])
        docs.append(" ".join(picks))
        y.append(label)
    pipe = make_pipeline(HashingVectorizer(n_features=2**10), SparseClassifier(random_state=0))
    assert cross_val_score(pipe, docs, y, cv=3).mean() > 0.9
    grid = GridSearchCV(
        pipe,
        {"sparseclassifier__optimizer": ["adagrad", "sgd", "ftrl"],
         "sparseclassifier__eta0": [0.05, 0.5]},
        cv=2,
        n_jobs=2,
    ).fit(docs, y)
    assert grid.best_score_ > 0.9
    cloned = clone(grid.best_estimator_)
    assert cloned.get_params()["sparseclassifier__optimizer"] in {"adagrad", "sgd", "ftrl"}


def test_pickle_and_safe_files_round_trip(tmp_path):
    X, y = sparse_problem(n_classes=3)
    for est in (SparseClassifier(random_state=0).fit(X, y),
                SparseRegressor(random_state=0).fit(X, y.astype(float))):
        again = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(again.predict(X), est.predict(X))
        assert b"numba" not in pickle.dumps(est)
        path = tmp_path / f"{type(est).__name__}.npz"
        sparseopt.save(est, path)
        loaded = sparseopt.load(path)
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        with np.load(path, allow_pickle=False) as f:
            assert "meta" in f.files
    # A loaded model continues exactly like the original (Adam: its catch-up reads the
    # timestamps kept in the records, and they travel with them; the records' slots
    # depend on the settings, L1's snapshot and SGD's Polyak sums, and their names travel
    # with them: a load that misnamed them would start the L1 or the average afresh).
    for params in ({"optimizer": "adagrad"}, {"optimizer": "adam"},
                   {"optimizer": "adagrad", "penalty": "l1", "alpha": 1e-3},
                   {"optimizer": "sgd", "penalty": "l1", "alpha": 1e-3},
                   {"optimizer": "sgd", "average": True}):
        clf = SparseClassifier(**params, random_state=0, shuffle=False).fit(X, y)
        sparseopt.save(clf, tmp_path / "c.npz")
        loaded = sparseopt.load(tmp_path / "c.npz")
        assert loaded._model.slots == clf._model.slots
        clf.partial_fit(X[:7], y[:7])  # a few rows: most features fall behind
        loaded.partial_fit(X[:7], y[:7])
        clf.partial_fit(X, y)
        loaded.partial_fit(X, y)
        np.testing.assert_array_equal(clf.coef_, loaded.coef_)


def test_a_file_of_another_format_is_refused_by_name(tmp_path):
    X, y = sparse_problem()
    path = tmp_path / "m.npz"
    sparseopt.save(SparseClassifier(max_iter=1).fit(X, y), path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = "sparseopt-model-1"  # before timestamps moved into the records
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="another version of sparseopt.*sparseopt-model-1"):
        sparseopt.load(path)


def test_string_labels_survive_save(tmp_path):
    X, y = sparse_problem()
    clf = SparseClassifier().fit(X, np.array(["no", "yes"])[y])
    sparseopt.save(clf, tmp_path / "m.npz")
    np.testing.assert_array_equal(sparseopt.load(tmp_path / "m.npz").predict(X), clf.predict(X))


def test_verbose_prints_one_line_per_epoch(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    X, y = sparse_problem()
    SparseClassifier(verbose=1, max_iter=4).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 4
    assert "objective" in lines[0] and lines[0].rstrip().endswith("s")


def test_early_stopping_and_loss_curve():
    X, y = sparse_problem(n=400)
    clf = SparseClassifier(max_iter=50, tol=1e-2, n_iter_no_change=2, random_state=0).fit(X, y)
    assert clf.n_iter_ < 50
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    val = SparseClassifier(max_iter=50, tol=1e-2, n_iter_no_change=2, early_stopping=True,
                           random_state=0).fit(X, y)
    assert val.n_iter_ < 50
    full = SparseClassifier(max_iter=7, random_state=0).fit(X, y)
    assert full.n_iter_ == 7


def test_random_state_makes_fits_reproducible():
    X, y = sparse_problem()
    a = SparseClassifier(random_state=3).fit(X, y).coef_
    b = SparseClassifier(random_state=3).fit(X, y).coef_
    c = SparseClassifier(random_state=4).fit(X, y).coef_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_densify_sparsify():
    X, y = sparse_problem()
    clf = SparseClassifier(penalty="l1", alpha=1e-3, random_state=0).fit(X, y)
    dense_pred = clf.decision_function(X)
    clf.sparsify()
    assert sp.issparse(clf.coef_)
    np.testing.assert_allclose(clf.decision_function(X), dense_pred)
    clf.densify()
    assert isinstance(clf.coef_, np.ndarray)


def test_regressor_losses_learn():
    rng = np.random.default_rng(0)
    X = sp.random(500, 40, density=0.2, format="csr", random_state=1)
    y = X @ rng.normal(size=40) + 0.5
    for loss in ("squared_error", "huber", "epsilon_insensitive"):
        reg = SparseRegressor(loss=loss, eta0=0.5, max_iter=20, random_state=0).fit(X, y)
        assert reg.coef_.shape == (40,) and reg.intercept_.shape == (1,)
        assert reg.score(X, y) > 0.8, loss


# -- bad input: a clear error, never a crash ------------------------------------------------


def malformed(X, what):
    X = X.copy()
    if what == "index out of range":
        X.indices[3] = X.shape[1] + 5
    elif what == "negative index":
        X.indices[3] = -1
    elif what == "indptr decreasing":
        X.indptr[5], X.indptr[6] = X.indptr[6], X.indptr[5]
    elif what == "lengths":
        X.indptr[-1] -= 1
    return X


@pytest.mark.parametrize(
    "what, message",
    [
        ("index out of range", "column index"),
        ("negative index", "column index|negative"),
        ("indptr decreasing", "indptr"),
        ("lengths", "indptr|indices|nnz|shape|data"),
    ],
)
def test_malformed_csr_is_rejected(what, message):
    X, y = sparse_problem()
    with pytest.raises(ValueError, match=message):
        SparseClassifier().fit(malformed(X, what), y)


def test_nan_inf_and_wrong_shapes_are_rejected():
    X, y = sparse_problem()
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN|infinity"):
        SparseClassifier().fit(bad, y)
    bad.data[0] = np.inf
    with pytest.raises(ValueError, match="NaN|infinity"):
        SparseRegressor().fit(bad, y.astype(float))
    with pytest.raises(ValueError, match="NaN|infinity"):
        SparseRegressor().fit(X, np.where(y == 1, np.nan, 0.0))
    clf = SparseClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :20])
    with pytest.raises(ValueError, match="samples"):
        SparseClassifier().fit(X, y[:-1])


def test_single_class_and_unknown_label_are_rejected():
    X, y = sparse_problem()
    with pytest.raises(ValueError, match="classes has to be greater than one"):
        SparseClassifier().fit(X, np.zeros(X.shape[0]))
    clf = SparseClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, np.full(X.shape[0], 2))


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(optimizer="lbfgs"), "optimizer must be one of"),
        (dict(loss="squared_error"), "loss must be one of"),
        (dict(penalty="l3"), "penalty must be one of"),
        (dict(optimizer="adam", penalty="l1"), "penalty='l1' is not available"),
        (dict(optimizer="rmsprop", penalty="elasticnet"), "not available"),
        (dict(optimizer="adagrad", learning_rate="optimal"), "learning_rate='optimal'"),
        (dict(eta0=-1.0), "eta0 must be >"),
        (dict(alpha=-1.0), "alpha must be >="),
        (dict(l1_ratio=2.0), "l1_ratio must be <="),
        (dict(beta_1=1.0), "beta_1 must be in"),
        (dict(optimizer="rmsprop", rho=1.0), "rho must be in"),
        (dict(optimizer="adadelta", rho="0.9"), "rho must be a number"),
        (dict(beta_2=-0.5), "beta_2 must be >="),
        (dict(max_iter=0), "max_iter must be >="),
        (dict(multi_class="both"), "multi_class must be one of"),
        (dict(eta0=10.0, alpha=0.5), "decay factor"),
    ],
)
def test_bad_parameters_are_rejected_at_fit(params, message):
    X, y = sparse_problem()
    clf = SparseClassifier(**params)
    assert clf.get_params()[next(iter(params))] == params[next(iter(params))]
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adadelta"])
def test_rho_none_takes_the_optimizers_default(optimizer):
    """rho=None is the rule's measured default (README, "Defaults"), not 0.9."""
    from sparseopt.rules import RULES

    X, y = sparse_problem()
    rho = RULES[optimizer].default_rho
    assert rho == 0.999
    default = SparseClassifier(optimizer=optimizer, random_state=0).fit(X, y)
    explicit = SparseClassifier(optimizer=optimizer, rho=rho, random_state=0).fit(X, y)
    other = SparseClassifier(optimizer=optimizer, rho=0.9, random_state=0).fit(X, y)
    np.testing.assert_array_equal(default.coef_, explicit.coef_)
    assert not np.allclose(default.coef_, other.coef_)


def test_divergence_names_the_epoch_and_leaves_the_model_unfitted():
    X, y = sparse_problem()
    X = X * 1e150
    reg = SparseRegressor(optimizer="sgd", learning_rate="constant", eta0=1.0, max_iter=5)
    with pytest.raises(DivergenceError, match=r"epoch 1.*smaller eta0"):
        reg.fit(X, y.astype(float) * 1e150)
    assert not hasattr(reg, "coef_")
    with pytest.raises(Exception, match="not fitted"):
        reg.predict(X)
    # After a divergence in partial_fit the model is unfitted too, and a new start works.
    X2, y2 = sparse_problem()
    clf = SparseClassifier(optimizer="sgd", learning_rate="constant", eta0=1.0)
    clf.partial_fit(X2, y2, classes=[0, 1])
    with pytest.raises(DivergenceError):
        clf.partial_fit(X2 * 1e300, y2)
    assert not hasattr(clf, "coef_")
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X2, y2)
    clf.partial_fit(X2, y2, classes=[0, 1])
    assert np.all(np.isfinite(clf.coef_))


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adadelta", "adam", "ftrl"])
def test_defaults_equal_the_dense_reference_with_the_rules_defaults(optimizer):
    """A default fit (rows in order) takes the rule's measured defaults, the intercept's
    step rate included (``Rule.default_intercept_rate``: 0.01 for sgd, as scikit-learn's
    SGD on sparse data; 0.1 for RMSProp, Adadelta and Adam; README, "Defaults"), the same
    steps as the dense reference given them."""
    from dense_reference import dense_fit

    from sparseopt.rules import RULES

    rule = RULES[optimizer]
    X, y = sparse_problem()
    clf = SparseClassifier(optimizer=optimizer, shuffle=False, max_iter=2, tol=None).fit(X, y)
    hp = dict(eta0=rule.default_eta0, lam=rule.default_alpha, epsilon=rule.default_epsilon,
              intercept_rate=rule.default_intercept_rate)
    if rule.default_rho:
        hp["rho"] = rule.default_rho
    if optimizer == "sgd":
        hp["learning_rate"] = "optimal"
    order = np.arange(X.shape[0])
    yb = (y == clf.classes_[1]).astype(float)
    ref = dense_fit(X.toarray(), yb, np.ones(len(y)), [order, order], optimizer, "log_loss",
                    1, **hp)
    np.testing.assert_allclose(clf.coef_.ravel(), ref["coef"].ravel(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, ref["intercept"], rtol=1e-9, atol=1e-12)
    assert rule.default_intercept_rate == {"sgd": 0.01, "rmsprop": 0.1, "adadelta": 0.1,
                                           "adam": 0.1}.get(optimizer, 1.0)
