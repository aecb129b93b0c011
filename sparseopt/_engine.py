"""The engine: owns a model's state, chooses the compiled loop, runs epochs.

``make_settings`` turns named hyperparameters into what the kernels read (one float64
array and two integer codes), checking every combination first. ``LazyModel`` holds the
arrays that survive between calls (weights and optimizer state side by side, per-feature
timestamps, the intercept, the step counter ``t``), so that three epochs in one call and
three calls of one epoch are the same computation, bit for bit. It holds only NumPy
arrays and numbers, so it pickles without any compiled object.
"""

import math
import threading
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from . import _kernels, _spec
from .losses import dloss_at
from .rules import RULES, sgd

_HOGWILD_LOCK = threading.Lock()

# Rows per block of the default shuffle: 256 consecutive CSR rows span a few tens of KB,
# so the hardware streams them in; measured on full pypi_popular (Adagrad, one thread),
# any block size from 64 to 4096 is as fast as rows in order, a full permutation about
# twice as slow (every row a cache miss). Smaller data gets smaller blocks, so that there
# are always at least SHUFFLE_BLOCK of them (below 512 rows: single rows): a matrix that
# small is in cache anyway, and two blocks would leave little to shuffle.
SHUFFLE_BLOCK = 256


CACHE_LINE = 64  # bytes


def aligned_zeros(shape):
    """Zeros whose first number starts a 64-byte cache line (NumPy's large arrays start
    16 bytes past a page), so that a record of 8, 16, 32 or 64 bytes never straddles two
    lines: a feature's touch then moves one line, not two, between memory and the core or
    between the cores of Hogwild's threads. Measured on full pypi_popular (interleaved
    A/B, medians of 4 fits), Adadelta's 32-byte records: 202 -> 187 ms per epoch on one
    thread, 142 -> 126 ms on two; the other rules within noise."""
    n = math.prod(shape)
    per_line = CACHE_LINE // 8  # float64s
    buffer = np.zeros(n + per_line)
    first = (-buffer.ctypes.data % CACHE_LINE) // 8
    return buffer[first:first + n].reshape(shape)


def aligned(records):
    """``records`` if they start a cache line, else an ``aligned_zeros`` copy of them
    (an unpickled, copied, loaded or combined model's)."""
    if records.ctypes.data % CACHE_LINE == 0:
        return records
    out = aligned_zeros(records.shape)
    out[...] = records
    return out


def row_order(n, shuffle, rng):
    """The order of the rows in one epoch, as int64.

    ``True`` or ``"blocks"``: blocks of ``min(SHUFFLE_BLOCK, n // SHUFFLE_BLOCK)`` (at
    least 1) consecutive rows in a random order (rows within a block in order);
    ``"rows"``: a permutation of all rows; ``False``: rows in order.
    """
    if isinstance(shuffle, str) and shuffle == "rows":
        return rng.permutation(n).astype(np.int64)
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    block = min(SHUFFLE_BLOCK, max(1, n // SHUFFLE_BLOCK))
    n_blocks = -(-n // block)
    starts = rng.permutation(n_blocks).astype(np.int64) * block
    if n == 0:
        return starts
    lengths = np.minimum(block, n - starts)  # the last block may be short
    offsets = np.cumsum(lengths) - lengths
    # As a running sum: +1 from row to row within a block, and at a block's first position
    # a jump from the previous block's last row to the block's start. The same order as
    # broadcasting starts against arange(block) and cutting the rows past n, in 0.5 ms
    # instead of 3.6-5.7 ms for full pypi_popular's 673k rows (a Hogwild epoch is ~0.1 s).
    order = np.ones(n, dtype=np.int64)
    order[offsets[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    order[0] = starts[0]
    return np.cumsum(order, out=order)


# Hogwild threads with private records of the hot columns (_kernels._lane_rows), in two
# tiers: at most PRIVATE_COLUMNS of the columns in at least PRIVATE_SHARE of the rows,
# merged every PRIVATE_SYNC of a thread's rows, and after them at most WARM_COLUMNS of the
# columns in at least WARM_SHARE, merged every WARM_SYNC (counted on at most SAMPLE_ROWS
# rows evenly spread). A column's share times its tier's sync is how often a thread steps
# its private record between merges (at least about 10 and 3): a merge costs about what a
# step does, so it pays only for a column stepped several times in between. In at most
# PRIVATE_LANES threads (each reads a copy of X.indices, 4 bytes per nonzero), for data of
# at least PRIVATE_MIN_ROWS rows (on less, a thread's private records would miss a large
# share of the other's steps). The warm tier: the threads met far apart (a cache line's
# move 5-6x slower: bench/host.py) write the records of all but the rarest columns from
# each other's caches. Two threads on full pypi_popular against one, epochs interleaved
# and classed by a probe around each, without the warm tier and with it: sgd 1.94x ->
# 2.01x (near), 1.46x -> 1.64x (far); adagrad 1.88x -> 1.90x (near), and with 8,192 warm
# columns merged every 16 x PRIVATE_SYNC, 1.66x -> 1.78x (far); test loss within 0.1% of
# one thread either way (commit message). Only on data where a thread merges its warm
# records at least WARM_MERGES times an epoch (rows >= WARM_MERGES * WARM_SYNC per
# thread): on the 100k-row sample, where it merged them once per epoch (at its end),
# Adagrad's two-thread test loss rose +0.39% to +1.25% from one thread's (3 seeds;
# +0.01% to +0.04% without the warm tier), on the tests' 60k-row synthetic problem
# +0.46% to +0.60% (-0.01% to +0.16%).
PRIVATE_COLUMNS = 256
PRIVATE_SHARE = 0.01
WARM_COLUMNS = 16384
WARM_SHARE = 0.00005
WARM_MERGES = 4
PRIVATE_LANES = 3
PRIVATE_MIN_ROWS = 50_000
SAMPLE_ROWS = 65_536


@dataclass
class HotPlan:
    """What a fit's Hogwild epochs on one ``X`` need for private records of its hot
    columns (``hogwild_plan``); made once per fit, not per epoch."""

    hot: np.ndarray  # int64 columns: the hot ones (merged every PRIVATE_SYNC), then the warm
    n_hot: int  # the hot ones' count (the rest are merged every WARM_SYNC)
    recs: np.ndarray  # (threads, nnz): each private thread's record per nonzero
    rows: np.ndarray = None  # the model's records and the private ones after them


def hogwild_plan(X, settings, n_threads, n_epochs=2):
    """A ``HotPlan`` for ``n_epochs`` Hogwild epochs of ``settings`` on ``n_threads``
    threads over the validated CSR ``X``, or None where private records do not apply or
    do not pay: one thread, L1 or averaging, small data, no hot column, columns too many
    for the indices' dtype, a single epoch (a ``partial_fit`` call: on full pypi_popular
    the plan takes about half of a two-thread epoch, which it makes 5-30% faster)."""
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    hp = settings.hp
    lanes = min(n_threads - 1, PRIVATE_LANES)
    if (n_threads < 2 or n_epochs < 2 or X.shape[0] < PRIVATE_MIN_ROWS
            or hp[_spec.LAM1] > 0.0 or hp[_spec.AVERAGE_START] != 0.0
            # the private rows' numbers must fit the dtype of the indices
            or X.shape[1] + lanes * (PRIVATE_COLUMNS + WARM_COLUMNS)
            > np.iinfo(X.indices.dtype).max):
        return None
    every = max(1, X.shape[0] // SAMPLE_ROWS)
    counts = _kernels.sampled_column_counts(X.indptr, X.indices, X.shape[1], every)
    sampled = -(-X.shape[0] // every)
    # The most frequent columns first (ties by column), each tier sorted by column, so
    # that a merge walks the shared records in memory order. (Ranking only the columns
    # frequent enough for either tier: on full pypi_popular a sort of every column took
    # 19 ms, and the plan 63 ms against 34 ms, medians of 6.)
    candidates = np.flatnonzero(counts >= WARM_SHARE * sampled)
    candidate_counts = counts[candidates]
    n_hot = min(int(np.sum(candidate_counts >= PRIVATE_SHARE * sampled)), PRIVATE_COLUMNS)
    if n_hot == 0:
        return None
    ranked = candidates[np.argsort(-candidate_counts, kind="stable")]
    warm = X.shape[0] >= WARM_MERGES * _kernels.WARM_SYNC * n_threads
    n_warm = min(candidates.size - n_hot, WARM_COLUMNS) if warm else 0
    hot = np.concatenate([np.sort(ranked[:n_hot]), np.sort(ranked[n_hot:n_hot + n_warm])])
    hot = hot.astype(np.int64)
    recs = np.empty((lanes, X.indices.size), X.indices.dtype)
    _kernels.private_indices(X.indices, hot, X.shape[1], recs)
    return HotPlan(hot, n_hot, recs)


@dataclass(frozen=True)
class Settings:
    """Hyperparameters as the kernels read them."""

    optimizer: str
    loss: str
    hp: np.ndarray
    loss_id: int
    sched_id: int


def make_settings(
    optimizer,
    loss,
    *,
    eta0=None,
    lam=0.0,
    lam1=0.0,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    rho=0.9,
    ftrl_beta=1.0,
    learning_rate="constant",
    power_t=0.5,
    epsilon_loss=0.1,
    fit_intercept=True,
    average=0,
    intercept_rate=1.0,
    t_start=0,
):
    """Check a combination of hyperparameters and pack it for the kernels.

    ``lam`` is the L2 strength (decoupled weight decay; FTRL's ``lam2``), ``lam1`` the L1
    strength. ``average`` (sgd only, not with L1) is the first step included in the
    Polyak average, 0 for none. ``intercept_rate`` multiplies the intercept's step size.
    ``t_start`` (steps already done) is used to check that
    the first decay factor of this call is positive.
    """
    if optimizer not in RULES:
        raise ValueError(f"optimizer must be one of {sorted(RULES)}, got {optimizer!r}")
    rule = RULES[optimizer]
    if loss not in _spec.LOSSES:
        raise ValueError(f"loss must be one of {sorted(_spec.LOSSES)}, got {loss!r}")
    if learning_rate not in rule.schedules:
        raise ValueError(
            f"learning_rate={learning_rate!r} is not available with optimizer={optimizer!r}; "
            f"choose from {list(rule.schedules)}"
        )
    if lam1 > 0.0 and "l1" not in rule.penalties:
        raise ValueError(
            f"L1 penalties are not available with optimizer={optimizer!r} (its catch-up "
            f"cannot be made exact); use one of "
            f"{[n for n, r in RULES.items() if 'l1' in r.penalties]}"
        )
    if average and (optimizer != "sgd" or lam1 > 0.0):
        raise ValueError(
            "average is available with optimizer='sgd' and an L2 penalty only: elsewhere "
            "untouched weights move between touches and the lazy average would not be exact"
        )
    eta0 = rule.default_eta0 if eta0 is None else float(eta0)
    for name, value in [("eta0", eta0), ("epsilon", epsilon)]:
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    for name, value in [("alpha (L2)", lam), ("alpha (L1)", lam1), ("power_t", power_t),
                        ("epsilon_loss", epsilon_loss), ("ftrl_beta", ftrl_beta)]:
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    for name, value in [("beta_1", beta_1), ("beta_2", beta_2), ("rho", rho)]:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")

    hp = np.zeros(_spec.N_HP)
    hp[_spec.ETA0] = eta0
    hp[_spec.LAM] = lam
    hp[_spec.LAM1] = lam1
    hp[_spec.BETA1] = beta_1
    hp[_spec.BETA2] = beta_2
    hp[_spec.EPS] = epsilon
    hp[_spec.RHO] = rho
    hp[_spec.FTRL_BETA] = ftrl_beta
    hp[_spec.POWER_T] = power_t
    hp[_spec.LOSS_PARAM] = epsilon_loss
    hp[_spec.FIT_INTERCEPT] = 1.0 if fit_intercept else 0.0
    hp[_spec.AVERAGE_START] = float(average)
    hp[_spec.INTERCEPT_RATE] = float(intercept_rate)
    sched_id = _spec.SCHEDULES[learning_rate]
    if sched_id == _spec.OPTIMAL:
        alpha = lam + lam1
        if alpha <= 0.0:
            raise ValueError("learning_rate='optimal' needs alpha > 0")
        # scikit-learn's heuristic, signed as in its ``_plain_sgd``: the derivative at
        # margin -typw of a positive example is negative for every loss here, so the
        # first step size is typw = alpha**-0.25.
        typw = math.sqrt(1.0 / math.sqrt(alpha))
        dloss_loss = "log_loss" if loss == "multinomial" else loss
        initial_eta0 = typw / max(1.0, dloss_at(dloss_loss, -typw, 1.0, epsilon_loss))
        hp[_spec.OPTIMAL_ALPHA] = alpha
        hp[_spec.OPTIMAL_INIT] = 1.0 / (initial_eta0 * alpha)

    if optimizer != "ftrl" and lam > 0.0:
        t1 = t_start + 1
        if sched_id == _spec.CONSTANT:
            first_eta = eta0
        elif sched_id == _spec.INVSCALING:
            first_eta = eta0 / t1**power_t
        else:
            first_eta = 1.0 / (hp[_spec.OPTIMAL_ALPHA] * (hp[_spec.OPTIMAL_INIT] + t1 - 1))
        if first_eta * lam >= 1.0:
            raise ValueError(
                f"the weight decay factor 1 - eta*alpha = {1 - first_eta * lam:.3g} is not "
                f"positive: lower eta0 (now {eta0}) or alpha (now {lam})"
            )
    return Settings(optimizer, loss, hp, _spec.LOSSES[loss], sched_id)


class Epoch(NamedTuple):
    """What ``LazyModel.run_epoch`` returns."""

    loss: float  # sum of sample_weight * loss over the pass (progressive)
    sum_sq: float  # sum of squared true weights after it; NaN if the model is not finite
    sum_abs: float  # sum of their absolute values; NaN likewise


class LazyModel:
    """Weights and optimizer state of a linear model trained with lazy updates.

    Parameters
    ----------
    optimizer : str
        A key of ``sparseopt.rules.RULES``.
    n_features : int
    n_outputs : int
        1 for binary classification and regression, K for multinomial or one-vs-rest.

    Attributes
    ----------
    slots : tuple of str
        The names of a record's slots (``P[j, k]``, ``B[0, k]``): those the last settings
        used (``Rule.layout``). ``run_epoch`` changes them to its settings' (see
        ``adapt_to``).
    """

    def __init__(self, optimizer, n_features, n_outputs):
        self.optimizer = optimizer
        self.slots = RULES[optimizer].layout(0.0, 0)
        self.P = aligned_zeros((n_features, n_outputs, len(self.slots)))
        self.B = np.zeros((1, n_outputs, len(self.slots)))
        self.G = np.zeros(_spec.N_G)
        self.G[_spec.G_SCALE] = 1.0
        self.t = 0

    @property
    def n_features(self):
        return self.P.shape[0]

    @property
    def n_outputs(self):
        return self.P.shape[1]

    def run_epoch(self, X, y, sample_weight, order, settings, n_threads=1, plan=None):
        """One pass over the rows ``order`` of CSR ``X``; the model is flushed after it.

        ``X`` must have been validated (``_validation.check_csr``): the kernel does not
        bounds-check. Returns an ``Epoch``: the sum of ``sample_weight * loss`` over the
        pass, each loss taken before its row's step (progressive loss), and the model's
        ``penalty_sums`` after it (from the flush's pass over the features, not another).
        ``n_threads > 1`` runs the Hogwild loop (not deterministic; not with averaging,
        which stays on one thread), with private records of the hot columns in some
        threads if given ``hogwild_plan(X, settings, n_threads)``.
        """
        if settings.optimizer != self.optimizer:
            raise ValueError("settings were made for another optimizer")
        self.adapt_to(settings)
        n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
        hogwild = n_threads > 1 and settings.hp[_spec.AVERAGE_START] == 0.0
        if hogwild and plan is not None:  # (its rows start a cache line)
            private = (self._with_private_rows(plan), plan.recs, plan.hot, plan.n_hot)
        else:
            self.P = aligned(self.P)
            private = (self.P, np.empty((0, 0), X.indices.dtype), np.empty(0, np.int64), 0)
        args = (X.indptr, X.indices, X.data, y, sample_weight, order, self.P, self.B,
                self.G, settings.hp, settings.loss_id, settings.sched_id, self.t)
        if hogwild:
            # The workqueue threading layer aborts the process when two threads enter
            # parallel code at once (joblib threads fitting estimators with n_jobs=-1):
            # one Hogwild pass at a time per process. (OpenMP and TBB would not need it.)
            with _HOGWILD_LOCK:
                numba.set_num_threads(n_threads)
                self.t, *sums = _kernels.HOGWILD[self.optimizer](*args, n_threads, *private)
        else:
            self.t, *sums = _kernels.EPOCH[self.optimizer](*args)
        return Epoch(*sums)

    def _with_private_rows(self, plan):
        """The records with room for ``plan``'s private ones after them, starting a cache
        line (``aligned_zeros``), kept in the plan from epoch to epoch (``self.P`` becomes
        the view of its first rows), not copied at every epoch."""
        n_rows = self.P.shape[0] + plan.recs.shape[0] * plan.hot.size
        rows = plan.rows
        if (rows is None or rows.shape != (n_rows,) + self.P.shape[1:]
                or rows.ctypes.data != self.P.ctypes.data):
            rows = aligned_zeros((n_rows,) + self.P.shape[1:])
            rows[:self.P.shape[0]] = self.P
            plan.rows = rows
            self.P = rows[:self.P.shape[0]]
        return rows

    def adapt_to(self, settings):
        """Give the records the slots ``settings`` use (``Rule.layout``), between epochs.

        The settings of a ``partial_fit`` can change (``set_params``). A slot they keep
        keeps its values; a slot they add starts afresh, with the ledger it is counted
        against: an L1 record (SGD's ``q``, Adagrad's ``snap``) at 0 with the L1 total at
        0, so that L1 counts from its first step (every feature is up to date after an
        epoch: nothing is owed); the Polyak record at 0 with the average's sums, so that
        the average starts over (its sums go when it ends, too). (With one layout for
        every setting, the first step of L1 clipped every weight by the L1 budget of
        every step before it.)
        """
        slots = RULES[self.optimizer].layout(settings.hp[_spec.LAM1],
                                             settings.hp[_spec.AVERAGE_START])
        if slots == self.slots:
            return
        P = aligned_zeros(self.P.shape[:2] + (len(slots),))
        B = np.zeros(self.B.shape[:2] + (len(slots),))
        for s, name in enumerate(slots):
            if name in self.slots:
                P[:, :, s] = self.P[:, :, self.slots.index(name)]
                B[:, :, s] = self.B[:, :, self.slots.index(name)]
        if {"q", "snap"} & (set(slots) - set(self.slots)):
            self.G[_spec.G_L1_TOTAL] = 0.0
        if ("avg" in slots) != ("avg" in self.slots):  # started or ended: its sums go
            self.G[_spec.G_SCALE_SUM] = 0.0
            self.G[_spec.G_AVG_COUNT] = 0.0
        self.slots, self.P, self.B = slots, P, B

    @property
    def coef(self):
        """True weights, shape (n_features, n_outputs); the model is flushed after epochs."""
        return self.P[:, :, 0] * self.G[_spec.G_SCALE]

    @property
    def intercept(self):
        return self.B[0, :, 0].copy()

    @property
    def n_averaged(self):
        """Steps in the Polyak average so far (sgd with ``average`` only)."""
        return int(self.G[_spec.G_AVG_COUNT])

    def averaged_coef(self):
        """Polyak average of the weights over the averaged steps, (n_features, n_outputs)."""
        n = max(self.n_averaged, 1)
        return (self.P[:, :, 0] * self.G[_spec.G_SCALE_SUM] - self.P[:, :, sgd.AVG]) / n

    def averaged_intercept(self):
        n = max(self.n_averaged, 1)
        return (self.B[0, :, 0] * self.n_averaged - self.B[0, :, sgd.AVG]) / n

    def state(self, name):
        """An optimizer state array by slot name, shape (n_features, n_outputs)."""
        return self.P[:, :, self.slots.index(name)].copy()

    def intercept_state(self, name):
        return self.B[0, :, self.slots.index(name)].copy()

    def is_finite(self):
        return not math.isnan(self.penalty_sums()[0])

    def penalty_sums(self):
        """``(sum w**2, sum |w|)`` of the true weights; NaN if the model is not finite."""
        return _kernels.penalty_sums(self.P, self.B, self.G[_spec.G_SCALE])

    def copy(self):
        new = LazyModel.__new__(LazyModel)
        new.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                             for k, v in self.__dict__.items()})
        return new
