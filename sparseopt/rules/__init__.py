"""The optimizer rules and their registry.

Each rule lives in its own module (``sgd.py``, ``adagrad.py``, ...): its state slots, its
per-coordinate ``step`` and its ``catch_up`` over missed steps. ``RULES`` describes what
each accepts; the kernels, the estimators' ``optimizer=`` choices and the tests all read
it. ``catch_up`` and ``step`` below dispatch on a rule code that is a compile-time
constant in each compiled epoch loop (they are inlined), so the dispatch costs nothing
per nonzero.
"""

from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.extending import overload

from .. import _spec
from . import adadelta, adagrad, adam, ftrl, powers, rmsprop, sgd

SGD, ADAGRAD, RMSPROP, ADADELTA, ADAM, FTRL = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Rule:
    """What the engine and the estimators need to know about one optimizer rule."""

    code: int
    module: object
    penalties: tuple  # accepted values of ``penalty``
    schedules: tuple  # accepted learning-rate schedules
    default_eta0: float
    default_epsilon: float
    default_alpha: float
    default_rho: float = 0.0  # RMSProp's and Adadelta's decay; unused by the others
    # The intercept's step size against the weights' (it is not a parameter of the
    # estimators): every row steps the intercept, so its noise is the step times every
    # row's gradient, where a rare feature's weight sees only its own rows.
    default_intercept_rate: float = 1.0

    @property
    def slots(self):
        """Every slot a record of this rule can have."""
        return self.module.SLOTS

    def layout(self, lam1, average):
        """The slots of a record under settings with L1 strength ``lam1`` and Polyak
        averaging ``average``: only those the settings use. A record is read and written
        at every touch of its feature, so its width is memory traffic: SGD's record is its
        weight alone and Adagrad's 16 bytes, unless L1 or averaging needs more."""
        layout = getattr(self.module, "layout", None)
        return self.module.SLOTS if layout is None else layout(lam1, average)


_ALL_PENALTIES = ("l2", "l1", "elasticnet", None)
_L2_ONLY = ("l2", None)
_CONSTANT = ("constant",)

# Defaults measured on hashed text (pypi_popular): see the README and bench/defaults.py.
RULES = {
    # scikit-learn's SGD moves the intercept 100x slower than the weights on sparse data
    # (SPARSE_INTERCEPT_DECAY): with "optimal" steps of 1/(alpha*t) the intercept would
    # otherwise swing wildly. sgd does the same on all input, so that dense and sparse
    # forms of the same data give the same model and users switching from SGDClassifier
    # lose nothing.
    "sgd": Rule(SGD, sgd, _ALL_PENALTIES, ("constant", "invscaling", "optimal"),
                default_eta0=0.01, default_epsilon=1e-8, default_alpha=1e-4,
                default_intercept_rate=0.01),
    "adagrad": Rule(ADAGRAD, adagrad, _ALL_PENALTIES, _CONSTANT,
                    default_eta0=1.0, default_epsilon=0.3, default_alpha=1e-7),
    # RMSProp, Adadelta and Adam: their steps do not shrink as a coordinate's rows add up,
    # and every row steps the intercept. On full pypi_popular, Adam's test loss after 4
    # epochs moved by 1.7% with the row order, nearly all of it the intercept (refitting
    # it alone left 0.3%). A tenth of the step: lower test loss after 3 epochs on full
    # pypi_popular, its 100k sample and the synthetic data, and a spread over row orders
    # several times smaller (README, "Defaults"; commit a86213f).
    "rmsprop": Rule(RMSPROP, rmsprop, _L2_ONLY, _CONSTANT,
                    default_eta0=0.03, default_epsilon=0.1, default_alpha=1e-7,
                    default_rho=0.999, default_intercept_rate=0.1),
    "adadelta": Rule(ADADELTA, adadelta, _L2_ONLY, _CONSTANT,
                     default_eta0=0.1, default_epsilon=1e-3, default_alpha=1e-7,
                     default_rho=0.999, default_intercept_rate=0.1),
    "adam": Rule(ADAM, adam, _L2_ONLY, _CONSTANT,
                 default_eta0=0.1, default_epsilon=0.3, default_alpha=1e-7,
                 default_intercept_rate=0.1),
    "ftrl": Rule(FTRL, ftrl, _ALL_PENALTIES, _CONSTANT,
                 default_eta0=1.0, default_epsilon=1e-8, default_alpha=1e-7),
}


@njit(cache=True, inline="always", error_model="numpy")
def needs_timestamp(RULE):
    """Whether a rule's catch-up depends on the number of missed steps.

    Such a rule's final slot, ``"last"``, is the step through which the feature is up to
    date (a whole number held exactly in a float64), read from its first output's record,
    ``P[j, 0, -1]``: in the feature's record, touching it costs one cache line, not two.
    The slot is unused in the other outputs' records and the intercept's."""
    return RULE == RMSPROP or RULE == ADADELTA or RULE == ADAM


@njit(cache=True, inline="always", error_model="numpy")
def n_stored_units(RULE, hp):
    """How many leading slots are in stored units (multiplied when the scale is folded):
    the rule's ``STORED`` slots in the record ``Rule.layout`` gives these settings (SGD's
    and Adagrad's L1 record, the second slot, exists only with L1)."""
    if RULE == SGD or RULE == ADAGRAD:
        return 2 if hp[_spec.LAM1] > 0.0 else 1
    if RULE == FTRL:
        return 0
    return 1  # rmsprop, adadelta, adam: only the weight


@njit(cache=True, inline="always", error_model="numpy")
def decay_strength(RULE, lam):
    """The decoupled weight decay a rule applies through the global scale."""
    return 0.0 if RULE == FTRL else lam


@njit(cache=True, inline="always", error_model="numpy")
def sum_of_squares(RULE, e, width):
    """Whether slot ``e`` of a record ``width`` slots wide is a sum of squared
    gradients or steps, decayed or not, so never negative: Adagrad's, RMSProp's and
    Adam's ``v``, Adadelta's ``v`` and ``delta``, FTRL's ``n``."""
    if RULE == ADAGRAD:
        return e == width - 1  # its v is last in every layout (adagrad.v_slot)
    if RULE == RMSPROP:
        return e == rmsprop.V
    if RULE == ADADELTA:
        return e == adadelta.V or e == adadelta.DELTA
    if RULE == ADAM:
        return e == adam.V
    if RULE == FTRL:
        return e == ftrl.N
    return False


@njit(cache=True, inline="always", error_model="numpy")
def step_decay(RULE, e, hp):
    """The factor by which a step multiplies slot ``e`` of a record before adding its own
    part, apart from the weight-decay scale: RMSProp's and Adadelta's averages ``rho``,
    Adam's ``m`` ``beta_1`` and ``v`` ``beta_2``; 1 for a slot that is a sum of steps
    (every weight, Adagrad's squares, FTRL's z and n). Not for the timestamp."""
    if RULE == RMSPROP or RULE == ADADELTA:
        return hp[_spec.RHO] if e > 0 else 1.0
    if RULE == ADAM:
        if e == adam.M:
            return hp[_spec.BETA1]
        if e == adam.V:
            return hp[_spec.BETA2]
    return 1.0


def catch_up_table(RULE, hp, c):
    """Numbers a rule's catch-up reads often, computed once per epoch.

    RMSProp and Adadelta: powers of ``rho`` (``powers.power_table``). Adam: powers and
    the sums of its closed-form catch-up (``adam.catch_up_table``). Others: an empty
    array. ``c`` is the constant per-step decay. Only callable from compiled code, with a
    literal ``RULE``.
    """


def _no_table(RULE, hp, c):
    return np.zeros((0, 0))


def _table_rho(RULE, hp, c):
    return powers.power_table(np.array([hp[_spec.RHO]]))


def _table_adam(RULE, hp, c):
    return adam.catch_up_table(hp[_spec.BETA1], hp[_spec.BETA2], c)


_TABLE = (_no_table, _no_table, _table_rho, _table_rho, _table_adam, _no_table)


@overload(catch_up_table, prefer_literal=True)
def _overload_catch_up_table(RULE, hp, c):
    if isinstance(RULE, types.IntegerLiteral):
        return _TABLE[RULE.literal_value]
    return None


@njit(cache=True, inline="always", error_model="numpy")
def feature_decay(RULE, missed, hp, table):
    """Factor that ``missed`` zero-gradient steps apply to a timestamped rule's averages."""
    if RULE == RMSPROP or RULE == ADADELTA:
        return powers.power(table, 0, hp[_spec.RHO], missed)
    return 1.0


def catch_up(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    """Bring weight (j, k) up to date over ``missed`` steps without gradient.

    ``last`` is the step of its previous touch, ``decay`` the result of
    ``feature_decay``, ``inv_scale`` 1/scale at the end of the missed steps, ``c`` the
    per-step decay factor (constant for the rules that need it), ``l1_total`` the running
    L1 total at the end of the missed steps, ``table`` the rule's ``catch_up_table``. Only
    callable from compiled code, with a literal ``RULE``: the overload below types the one
    rule's body alone.
    """


def step(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    """Apply the step of gradient ``g`` to weight (j, k).

    ``inv_scale`` converts a true-weight change into stored units (1 for the
    intercept); ``lam1``/``lam2`` are passed explicitly so that the intercept can be
    stepped unpenalized. Only callable from compiled code, with a literal ``RULE``.
    """


def _catch_up_sgd(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    sgd.catch_up(P, j, k, hp[_spec.LAM1], l1_total)


def _catch_up_adagrad(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    adagrad.catch_up(P, j, k, hp[_spec.LAM1], hp[_spec.EPS], l1_total)


def _catch_up_rmsprop(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    rmsprop.catch_up(P, j, k, decay)


def _catch_up_adadelta(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    adadelta.catch_up(P, j, k, decay)


def _catch_up_adam(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    adam.catch_up(P, j, k, missed, last, eta, inv_scale, c, hp[_spec.BETA1], hp[_spec.BETA2],
                  hp[_spec.EPS], table)


def _catch_up_ftrl(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    pass


def _step_sgd(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    sgd.step(P, j, k, g, eta, inv_scale, lam1, l1_total)


def _step_adagrad(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    adagrad.step(P, j, k, g, eta, inv_scale, lam1, hp[_spec.EPS], l1_total)


def _step_rmsprop(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    rmsprop.step(P, j, k, g, eta, inv_scale, hp[_spec.RHO], hp[_spec.EPS])


def _step_adadelta(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    adadelta.step(P, j, k, g, eta, inv_scale, hp[_spec.RHO], hp[_spec.EPS])


def _step_adam(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    adam.step(P, j, k, g, eta, inv_scale, hp[_spec.BETA1], hp[_spec.BETA2], hp[_spec.EPS],
              bc1, bc2)


def _step_ftrl(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    ftrl.step(P, j, k, g, eta, hp[_spec.FTRL_BETA], lam1, lam2)


_CATCH_UP = (_catch_up_sgd, _catch_up_adagrad, _catch_up_rmsprop, _catch_up_adadelta,
             _catch_up_adam, _catch_up_ftrl)
_STEP = (_step_sgd, _step_adagrad, _step_rmsprop, _step_adadelta, _step_adam, _step_ftrl)


# Only the chosen rule's body is typed and compiled: these overloads accept the rule code
# only as a literal (the kernels pass a module constant) and return that rule's function.
@overload(catch_up, prefer_literal=True, inline="always")
def _overload_catch_up(RULE, P, j, k, missed, last, decay, eta, inv_scale, c, hp, l1_total, table):
    if isinstance(RULE, types.IntegerLiteral):
        return _CATCH_UP[RULE.literal_value]
    return None


@overload(step, prefer_literal=True, inline="always")
def _overload_step(RULE, P, j, k, g, eta, inv_scale, lam1, lam2, hp, bc1, bc2, l1_total):
    if isinstance(RULE, types.IntegerLiteral):
        return _STEP[RULE.literal_value]
    return None
