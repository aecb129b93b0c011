"""scikit-learn estimators around the engine: validate, call the engine, store attributes.

``SparseClassifier`` and ``SparseRegressor`` have one class each for every optimizer, so
``GridSearchCV`` can search over ``optimizer`` like over any other parameter.
"""

import math
import numbers
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state, compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _engine, _spec
from ._validation import as_kernel_csr, check_number, check_sample_weight
from .losses import row_loss_grad
from .rules import RULES

OPTIMIZERS = tuple(RULES) + ("adamw",)
PENALTIES = ("l2", "l1", "elasticnet", None)


class DivergenceError(ValueError):
    """Training produced non-finite weights or loss."""


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


class _SparseLinear(BaseEstimator):
    """What the classifier and the regressor share: parameters, the epoch loop, state."""

    _losses = ()

    def _check_params(self):
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("loss", self.loss, self._losses)
        _check_choice("penalty", self.penalty, PENALTIES)
        check_number("alpha", self.alpha, low=0.0, allow_none=True)
        check_number("l1_ratio", self.l1_ratio, low=0.0, high=1.0)
        check_number("eta0", self.eta0, low=0.0, low_open=True, allow_none=True)
        check_number("power_t", self.power_t, low=0.0)
        check_number("epsilon", self.epsilon, low=0.0, low_open=True, allow_none=True)
        for name in ("beta_1", "beta_2", "rho"):  # [0, 1): checked again by the engine
            check_number(name, getattr(self, name), low=0.0, high=1.0, allow_none=name == "rho")
        check_number("ftrl_beta", self.ftrl_beta, low=0.0)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_number("tol", self.tol, allow_none=True)
        check_number("n_iter_no_change", self.n_iter_no_change, low=1, integer=True)
        check_number("validation_fraction", self.validation_fraction, low=0.0, high=1.0,
                      low_open=True)
        check_number("verbose", self.verbose, low=0, integer=True)
        if self.n_jobs is not None and not (
            isinstance(self.n_jobs, numbers.Integral) and (self.n_jobs == -1 or self.n_jobs > 0)
        ):
            raise ValueError(f"n_jobs must be None, -1 or a positive int, got {self.n_jobs!r}")
        if not (isinstance(self.shuffle, (bool, np.bool_))
                or (isinstance(self.shuffle, str) and self.shuffle in ("blocks", "rows"))):
            raise ValueError(
                f"shuffle must be True, False, 'blocks' or 'rows', got {self.shuffle!r}")
        if self.learning_rate is not None:
            _check_choice("learning_rate", self.learning_rate,
                          ("constant", "invscaling", "optimal"))
        if not isinstance(self.average, (bool, np.bool_)):
            check_number("average", self.average, low=0, integer=True)
        optimizer = "adam" if self.optimizer == "adamw" else self.optimizer
        rule = RULES[optimizer]
        if self.penalty not in rule.penalties:
            raise ValueError(
                f"penalty={self.penalty!r} is not available with optimizer={self.optimizer!r} "
                f"(choose from {list(rule.penalties)}): an L1 catch-up for this optimizer "
                "would not be exact"
            )
        schedule = self.learning_rate or (
            self._sgd_schedule if optimizer == "sgd" else "constant"
        )
        if schedule not in rule.schedules:
            raise ValueError(
                f"learning_rate={schedule!r} is not available with "
                f"optimizer={self.optimizer!r}; adaptive optimizers use a constant eta0"
            )
        return optimizer, schedule

    def _settings(self, t_start):
        optimizer, schedule = self._check_params()
        rule = RULES[optimizer]
        alpha = rule.default_alpha if self.alpha is None else float(self.alpha)
        l1_ratio = {"l2": 0.0, "l1": 1.0, "elasticnet": float(self.l1_ratio), None: 0.0}[
            self.penalty
        ]
        if self.penalty is None:
            alpha = 0.0
        return _engine.make_settings(
            optimizer,
            self._engine_loss(),
            eta0=self.eta0,
            lam=alpha * (1.0 - l1_ratio),
            lam1=alpha * l1_ratio,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=rule.default_epsilon if self.epsilon is None else self.epsilon,
            rho=rule.default_rho if self.rho is None else self.rho,
            ftrl_beta=self.ftrl_beta,
            learning_rate=schedule,
            power_t=self.power_t,
            epsilon_loss=getattr(self, "epsilon_loss", 0.1),
            fit_intercept=self.fit_intercept,
            average=int(self.average),
            intercept_rate=rule.default_intercept_rate,
            t_start=t_start,
        )

    # -- the epoch loop -------------------------------------------------------------------

    def _n_threads(self):
        """Threads for the epoch loop: 1 (deterministic) unless n_jobs asks for more."""
        if self.n_jobs is None or self.n_jobs == 1:
            return 1
        return (os.cpu_count() or 1) if self.n_jobs == -1 else int(self.n_jobs)

    def _validate_X(self, X, reset):
        X = validate_data(
            self, X, accept_sparse=["csr", "csc", "coo"], dtype=[np.float64, np.float32],
            reset=reset,
        )
        return as_kernel_csr(X)

    @staticmethod
    def _penalty(settings, sum_sq, sum_abs):
        """The objective's penalty from a model's ``penalty_sums``; NaN when any number
        of the model is not finite (the sums are NaN then: 0*NaN is NaN too)."""
        hp = settings.hp
        return 0.5 * hp[_spec.LAM] * sum_sq + hp[_spec.LAM1] * sum_abs

    def _objective(self, epoch, settings, n_samples):
        """Mean loss plus penalty after an ``_engine.Epoch``; NaN when not finite."""
        return (epoch.loss / max(n_samples, 1)
                + self._penalty(settings, epoch.sum_sq, epoch.sum_abs))

    def _mean_loss(self, X, y_kernel, sample_weight):
        """Mean (weighted) loss of the current coefficients, for early stopping."""
        margins = self._margins(X)
        return _mean_loss_of_margins(self._engine_loss(), margins, y_kernel, sample_weight,
                                     getattr(self, "epsilon_loss", 0.1))

    def _run_epochs(self, X, y, sample_weight, n_epochs, settings, stop_early, X_val=None,
                    y_val=None, sw_val=None):
        """Run up to ``n_epochs``; returns the number run. Raises ``DivergenceError``."""
        rng = self._rng
        model = self._model
        n = X.shape[0]
        best = np.inf
        no_improvement = 0
        epochs = range(n_epochs)
        bar = None
        if self.verbose and n_epochs > 1:
            try:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_epochs, desc="epochs", leave=False, file=sys.stderr)
            except ImportError:
                bar = None
        done = 0
        plan = _engine.hogwild_plan(X, settings, self._n_threads(), n_epochs)
        for _ in epochs:
            start = time.perf_counter()
            order = _engine.row_order(n, self.shuffle, rng)
            epoch = model.run_epoch(X, y, sample_weight, order, settings, self._n_threads(),
                                    plan)
            objective = self._objective(epoch, settings, n)
            done += 1
            epoch_number = len(self.loss_curve_) + 1  # counted across fit/partial_fit calls
            if not math.isfinite(objective):  # includes any non-finite weight or state
                raise DivergenceError(
                    f"training diverged in epoch {epoch_number}: the weights or the "
                    f"loss are no longer finite; try a smaller eta0 (now "
                    f"{settings.hp[0]:g})"
                )
            self.loss_curve_.append(objective)
            seconds = time.perf_counter() - start
            if self.verbose:
                line = (f"Epoch {epoch_number}: objective {objective:.6g}, "
                        f"{seconds:.3f} s")
                if bar is not None:
                    bar.update(1)
                    bar.write(line)
                else:
                    print(line)
            if stop_early and self.tol is not None:
                if X_val is not None:
                    self._set_coef(model)
                    score = self._mean_loss(X_val, y_val, sw_val)
                else:
                    score = objective
                if score > best - self.tol:
                    no_improvement += 1
                else:
                    no_improvement = 0
                best = min(best, score)
                if no_improvement >= self.n_iter_no_change:
                    break
        if bar is not None:
            bar.close()
        return done

    def _fit(self, X, y, sample_weight, n_outputs, reset_model, n_epochs, stop_early):
        settings_t = 0 if reset_model else self._model.t
        settings = self._settings(settings_t)
        if reset_model:
            self._model = _engine.LazyModel(settings.optimizer, X.shape[1], n_outputs)
            self._rng = check_random_state(self.random_state)
            self.loss_curve_ = []
        X_val = y_val = sw_val = None
        if stop_early and self.early_stopping:
            X, X_val, y, y_val, sample_weight, sw_val = self._validation_split(
                X, y, sample_weight
            )
        try:
            n_iter = self._run_epochs(X, y, sample_weight, n_epochs, settings, stop_early,
                                      X_val, y_val, sw_val)
        except DivergenceError:
            # Unfitted, not full of NaN: the state is gone, a next fit starts afresh. (No
            # copy of the state is kept to restore: it would double the memory of every
            # fit and cost a model-sized copy per partial_fit call.)
            for attr in ("_model", "coef_", "intercept_", "t_", "n_iter_", "classes_",
                         "loss_curve_", "n_features_in_",
                         "feature_names_in_"):
                if hasattr(self, attr):
                    delattr(self, attr)
            raise
        self._set_coef(self._model)
        self.n_iter_ = n_iter
        self.t_ = self._model.t
        return self

    def _validation_split(self, X, y, sample_weight):
        # Imported here: sklearn.model_selection costs every import of this module 30 ms.
        from sklearn.model_selection import train_test_split

        stratify = y if isinstance(self, ClassifierMixin) else None
        try:
            return train_test_split(
                X, y, sample_weight, test_size=self.validation_fraction,
                random_state=check_random_state(self.random_state).randint(2**31 - 1),
                stratify=stratify,
            )
        except ValueError as exc:
            raise ValueError(
                f"early_stopping could not split off a validation set of "
                f"validation_fraction={self.validation_fraction}: {exc}"
            ) from exc

    def _margins(self, X):
        return safe_sparse_dot(X, self._coef_matrix().T, dense_output=True) + self.intercept_

    # -- scikit-learn plumbing --------------------------------------------------------------

    def densify(self):
        """Convert ``coef_`` to a dense array (the default format)."""
        check_is_fitted(self)
        if sp.issparse(self.coef_):
            self.coef_ = self.coef_.toarray()
            if isinstance(self, RegressorMixin):
                self.coef_ = self.coef_.ravel()
        return self

    def sparsify(self):
        """Convert ``coef_`` to a CSR matrix (faster predictions when most weights are 0)."""
        check_is_fitted(self)
        coef = self.coef_
        self.coef_ = sp.csr_matrix(coef if coef.ndim == 2 else coef.reshape(1, -1))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _mean_loss_of_margins(loss, margins, y, sample_weight, epsilon_loss):
    loss_id = _spec.LOSSES[loss]
    dl = np.empty(margins.shape[1])
    total = 0.0
    for i in range(margins.shape[0]):
        total += sample_weight[i] * row_loss_grad(
            loss_id, np.ascontiguousarray(margins[i]), float(y[i]), epsilon_loss, dl
        )
    return total / max(float(np.sum(sample_weight)), 1e-300)


_COMMON_DOC = """
    optimizer : {"adagrad", "sgd", "rmsprop", "adadelta", "adam", "adamw", "ftrl"}, \
default="adagrad"
        The update rule. "adamw" is "adam": weight decay is always decoupled.
    penalty : {"l2", "l1", "elasticnet", None}, default="l2"
        L2 is decoupled weight decay for every optimizer (FTRL: its ``lambda_2``). L1 and
        elastic net are available with "sgd", "adagrad" and "ftrl" only.
    alpha : float or None, default=None
        Regularization strength (scikit-learn's meaning; L1 part ``alpha*l1_ratio``).
        None takes the optimizer's default: 1e-4 for "sgd" (scikit-learn's), 1e-7 for
        the adaptive ones, whose decoupled decay ``eta0*alpha`` per step would otherwise
        erase rare features between their appearances.
    l1_ratio : float, default=0.15
    eta0 : float or None, default=None
        Base step size; None takes the optimizer's default (see README).
    learning_rate : {"constant", "invscaling", "optimal"} or None, default=None
        Schedule, for "sgd" only. None: scikit-learn's default for sgd ("optimal" for
        the classifier, "invscaling" for the regressor), "constant" for the others.
    power_t : float, default=0.5
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decays.
    epsilon : float or None, default=None
        Damping of adaptive steps; None takes the optimizer's default.
    rho : float or None, default=None
        Decay of RMSProp's and Adadelta's running averages; None takes the optimizer's
        default (0.999: with 0.9 the averages forget a rare feature, and the intercept,
        within tens of rows; see README).
    ftrl_beta : float, default=1.0
    fit_intercept : bool, default=True
    max_iter : int, default=3
        Epochs of ``fit``.
    tol : float or None, default=None
        Stop when the monitored loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; None runs ``max_iter`` epochs.
    n_iter_no_change : int, default=5
    early_stopping : bool, default=False
        Monitor the loss on a held-out ``validation_fraction`` instead of the training
        objective.
    validation_fraction : float, default=0.1
    shuffle : bool, "blocks" or "rows", default=True
        The order of the rows in each epoch. True (= "blocks"): blocks of 256
        consecutive rows in a random order, rows within a block in order; as fast as no
        shuffling, about twice as fast as "rows" on large data, with the same accuracy on
        pypi_popular (``python -m bench.speed`` shows both). If the rows are sorted (by
        label or by time), neighbours stay together within a block: then "rows", a new
        permutation of all rows each epoch (as SGDClassifier does), or shuffle the data
        once before fitting. False: rows in the given order.
    random_state : int, RandomState or None, default=None
    warm_start : bool, default=False
    average : bool or int, default=False
        Polyak averaging, "sgd" with an L2 penalty only (lazy, exact): ``coef_`` is the
        mean of the weights over all steps (True) or from step ``average`` on (int), as
        in scikit-learn.
    verbose : int, default=0
        One line per epoch (with a tqdm progress bar when tqdm is installed).
    n_jobs : int or None, default=None
        Threads of the epoch loop. None or 1: one thread, deterministic for a given
        ``random_state``. -1 (all cores) or k > 1: Hogwild, lock-free threads over
        blocks of rows that race on the weights by design (Niu et al. 2011); results
        then vary from run to run within the noise of the optimizer. Averaging
        (``average``) always runs on one thread. The threads write the records of
        frequent features in turn, so the speed-up depends on how fast the cores pass a
        cache line to each other: on a virtual machine whose host runs its virtual CPUs
        far apart, Hogwild can be slower than one thread (README, "Speed").
"""


class SparseClassifier(ClassifierMixin, _SparseLinear):
    __doc__ = """Linear classifier trained by lazy sparse SGD, Adagrad, RMSProp, Adadelta,
    Adam/AdamW or FTRL-Proximal.

    Parameters
    ----------
    loss : {"log_loss", "hinge", "modified_huber"}, default="log_loss"
    multi_class : {"auto", "multinomial", "ovr"}, default="auto"
        With more than two classes: "multinomial" (softmax, log_loss only) or
        one-vs-rest; "auto" is multinomial for log_loss and one-vs-rest otherwise.
    class_weight : dict, "balanced" or None, default=None
""" + _COMMON_DOC + """
    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray, when fitted on a DataFrame with string column names
    n_iter_ : int
        Epochs run by the last ``fit`` (or 1 after ``partial_fit``).
    t_ : int
        Rows processed since the model was created (the step counter).
    loss_curve_ : list of float
        Training objective after each epoch (progressive mean loss + penalty).
    """

    _losses = ("log_loss", "hinge", "modified_huber")
    _sgd_schedule = "optimal"  # SGDClassifier's default

    def __init__(self, *, optimizer="adagrad", loss="log_loss", penalty="l2", alpha=None,
                 l1_ratio=0.15, eta0=None, learning_rate=None, power_t=0.5, beta_1=0.9,
                 beta_2=0.999, epsilon=None, rho=None, ftrl_beta=1.0, fit_intercept=True,
                 multi_class="auto", max_iter=3, tol=None, n_iter_no_change=5,
                 early_stopping=False, validation_fraction=0.1, shuffle=True,
                 random_state=None, class_weight=None, warm_start=False, average=False,
                 verbose=0, n_jobs=None):
        self.optimizer = optimizer
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.eta0 = eta0
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.ftrl_beta = ftrl_beta
        self.fit_intercept = fit_intercept
        self.multi_class = multi_class
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.average = average
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _check_params(self):
        _check_choice("multi_class", self.multi_class, ("auto", "multinomial", "ovr"))
        return super()._check_params()

    def _engine_loss(self):
        if len(self.classes_) > 2 and self._multinomial():
            return "multinomial"
        return self.loss

    def _multinomial(self):
        _check_choice("multi_class", self.multi_class, ("auto", "multinomial", "ovr"))
        if self.multi_class == "multinomial" and self.loss != "log_loss":
            raise ValueError(
                f"multi_class='multinomial' needs loss='log_loss', got loss={self.loss!r}; "
                "use multi_class='ovr'"
            )
        return self.multi_class != "ovr" and self.loss == "log_loss"

    def _n_outputs(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _prepare(self, X, y, sample_weight, reset, classes=None):
        X = self._validate_X(X, reset)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but y has {y.shape[0]}"
            )
        check_classification_targets(y)
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if hasattr(self, "classes_") and not reset and not np.array_equal(
                classes, self.classes_
            ):
                raise ValueError(
                    f"classes={classes!r} is not the same as on the first partial_fit call "
                    f"({self.classes_!r})"
                )
            self.classes_ = classes
        elif reset:
            self.classes_ = np.unique(y)
        y_idx = np.searchsorted(self.classes_, y)
        y_idx = np.clip(y_idx, 0, len(self.classes_) - 1)
        unknown = self.classes_[y_idx] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_!r}: "
                f"{np.unique(y[unknown])[:5]!r}"
            )
        if len(self.classes_) < 2:
            raise ValueError(
                "The number of classes has to be greater than one; got "
                f"{len(self.classes_)} class"
            )
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        if self.class_weight is not None:
            weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            sample_weight = sample_weight * weights[y_idx]
        return X, y_idx.astype(np.float64), sample_weight

    def fit(self, X, y, sample_weight=None):
        """Fit for ``max_iter`` epochs (fewer with ``tol`` and no improvement).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._check_params()
        reuse = self.warm_start and hasattr(self, "_model")
        old_classes = getattr(self, "classes_", None)
        X, y, sample_weight = self._prepare(X, y, sample_weight, reset=True)
        if reuse and (old_classes is None or not np.array_equal(old_classes, self.classes_)
                      or self._model.n_features != X.shape[1]):
            reuse = False
        return self._fit(X, y, sample_weight, self._n_outputs(), not reuse, self.max_iter,
                         stop_early=True)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over the given rows, continuing the optimizer state and step counter.

        ``classes`` (all labels that will ever appear) is required on the first call.
        """
        first = not hasattr(self, "_model")
        if first and classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit (all the labels "
                "the model will ever see)"
            )
        if first:
            self._check_params()
        X, y, sample_weight = self._prepare(X, y, sample_weight, reset=first, classes=classes)
        return self._fit(X, y, sample_weight, self._n_outputs(), first, 1, stop_early=False)

    def _set_coef(self, model):
        coef, intercept = _current_or_averaged(model)
        self.coef_ = coef.T.copy()
        self.intercept_ = intercept

    def _coef_matrix(self):
        return self.coef_

    def decision_function(self, X):
        """Margins: shape (n_samples,) for two classes, (n_samples, n_classes) otherwise."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        scores = self._margins(X)
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X):
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        """Class probabilities (log_loss and modified_huber)."""
        check_is_fitted(self)
        if self.loss not in ("log_loss", "modified_huber"):
            raise AttributeError(f"probability estimates are not available for loss={self.loss!r}")
        scores = self.decision_function(X)
        if self.loss == "modified_huber":
            prob = np.clip((np.atleast_1d(scores) + 1.0) / 2.0, 0.0, 1.0)
            if prob.ndim == 1:
                return np.column_stack([1.0 - prob, prob])
            norm = prob.sum(axis=1, keepdims=True)
            uniform = norm[:, 0] == 0
            prob[uniform] = 1.0
            norm[uniform] = prob.shape[1]
            return prob / norm
        if scores.ndim == 1:
            p = _stable_sigmoid(scores)
            return np.column_stack([1.0 - p, p])
        if self._multinomial():
            scores = scores - scores.max(axis=1, keepdims=True)
            e = np.exp(scores)
            return e / e.sum(axis=1, keepdims=True)
        p = _stable_sigmoid(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags


class SparseRegressor(RegressorMixin, _SparseLinear):
    __doc__ = """Linear regression trained by lazy sparse SGD, Adagrad, RMSProp, Adadelta,
    Adam/AdamW or FTRL-Proximal.

    Parameters
    ----------
    loss : {"squared_error", "huber", "epsilon_insensitive"}, default="squared_error"
    epsilon_loss : float, default=0.1
        Width of the huber and epsilon-insensitive losses (``epsilon`` of
        ``SGDRegressor``; renamed so it does not clash with the optimizer's damping).
""" + _COMMON_DOC + """
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
    n_features_in_, feature_names_in_, n_iter_, t_, loss_curve_ : see SparseClassifier
    """

    _losses = ("squared_error", "huber", "epsilon_insensitive")
    _sgd_schedule = "invscaling"  # SGDRegressor's default

    def __init__(self, *, optimizer="adagrad", loss="squared_error", epsilon_loss=0.1,
                 penalty="l2", alpha=None, l1_ratio=0.15, eta0=None, learning_rate=None,
                 power_t=0.5, beta_1=0.9, beta_2=0.999, epsilon=None, rho=None, ftrl_beta=1.0,
                 fit_intercept=True, max_iter=3, tol=None, n_iter_no_change=5,
                 early_stopping=False, validation_fraction=0.1, shuffle=True,
                 random_state=None, warm_start=False, average=False, verbose=0, n_jobs=None):
        self.optimizer = optimizer
        self.loss = loss
        self.epsilon_loss = epsilon_loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.eta0 = eta0
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.ftrl_beta = ftrl_beta
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.average = average
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _engine_loss(self):
        return self.loss

    def _check_params(self):
        check_number("epsilon_loss", self.epsilon_loss, low=0.0)
        return super()._check_params()

    def _prepare(self, X, y, sample_weight, reset):
        X = self._validate_X(X, reset)
        y = column_or_1d(y, warn=True).astype(np.float64)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        return X, y, check_sample_weight(sample_weight, X.shape[0])

    def fit(self, X, y, sample_weight=None):
        """Fit for ``max_iter`` epochs (fewer with ``tol`` and no improvement)."""
        self._check_params()
        reuse = self.warm_start and hasattr(self, "_model")
        X, y, sample_weight = self._prepare(X, y, sample_weight, reset=True)
        if reuse and self._model.n_features != X.shape[1]:
            reuse = False
        return self._fit(X, y, sample_weight, 1, not reuse, self.max_iter, stop_early=True)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given rows, continuing the optimizer state and step counter."""
        first = not hasattr(self, "_model")
        if first:
            self._check_params()
        X, y, sample_weight = self._prepare(X, y, sample_weight, reset=first)
        return self._fit(X, y, sample_weight, 1, first, 1, stop_early=False)

    def _set_coef(self, model):
        coef, intercept = _current_or_averaged(model)
        self.coef_ = coef[:, 0].copy()
        self.intercept_ = intercept

    def _coef_matrix(self):
        coef = self.coef_
        return coef.reshape(1, -1) if coef.ndim == 1 else coef

    def predict(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._margins(X).ravel()


def _current_or_averaged(model):
    """The weights that predict: the Polyak average once averaging has started."""
    if model.n_averaged > 0:
        return model.averaged_coef(), model.averaged_intercept()
    return model.coef, model.intercept


def _stable_sigmoid(z):
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out
