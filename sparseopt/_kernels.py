"""The epoch loops over CSR rows: the only code that walks X.

One generic loop, ``_epoch``, is written once and inlined into one compiled function per
optimizer rule (``epoch_sgd``, ``epoch_adagrad``, ...). Inside each, the rule code is a
constant, so the rule dispatch in ``rules.step``/``rules.catch_up`` folds away at
compile time and no nonzero pays a branch on the rule. Losses and schedules are small
run-time switches taken once per row.

Model state (see ``_engine.LazyModel``):

``P``     (n_features, n_outputs, n_slots) float64, one record per weight; slot 0 is the
          weight in stored units (true weight = ``G[G_SCALE] * P[..., 0]``).
``last``  (n_features,) int64, the step at which each feature was last brought up to date.
``B``     (1, n_outputs, n_slots) float64, the intercept's records (true units).
``G``     float64 scalars carried between steps (global scale, running L1 total).

A row at step t: bring its features up to date to step t-1 (``catch_up``), compute the
margins, the loss derivative, apply this step's decay to the global scale, then ``step``
each weight of the row and the intercept. ``flush`` brings every feature up to date and
folds the scale back into the weights; it runs at the end of every epoch, so stored
weights between calls are always the true weights.
"""

import numpy as np
from numba import njit

from . import _spec, losses, rules
from .rules import ADADELTA, ADAGRAD, ADAM, FTRL, RMSPROP, SGD


@njit(cache=True, inline="always", error_model="numpy")
def learning_rate(sched_id, t, hp):
    """Step size of step ``t`` (1-based) under the schedule ``sched_id``."""
    if sched_id == _spec.CONSTANT:
        return hp[_spec.ETA0]
    if sched_id == _spec.INVSCALING:
        return hp[_spec.ETA0] / float(t) ** hp[_spec.POWER_T]
    return 1.0 / (hp[_spec.OPTIMAL_ALPHA] * (hp[_spec.OPTIMAL_INIT] + float(t) - 1.0))


@njit(cache=True, inline="always", error_model="numpy")
def _catch_up_feature(RULE, P, last, j, T, inv_scale, c, hp, l1_total):
    """Bring all outputs of feature j up to date through step ``T``."""
    n_out = P.shape[1]
    if rules.needs_timestamp(RULE):
        missed = T - last[j]
        if missed > 0:
            decay = rules.feature_decay(RULE, missed, hp)
            for k in range(n_out):
                rules.catch_up(
                    RULE, P, j, k, missed, last[j], decay, hp[_spec.ETA0], inv_scale, c, hp,
                    l1_total,
                )
            last[j] = T
    elif hp[_spec.LAM1] > 0.0:
        for k in range(n_out):
            rules.catch_up(RULE, P, j, k, 0, 0, 1.0, 0.0, inv_scale, c, hp, l1_total)


@njit(cache=True, inline="always", error_model="numpy")
def _flush(RULE, P, last, G, hp, T):
    """Bring every feature up to date through step ``T`` and fold the global scale."""
    scale = G[_spec.G_SCALE]
    c = 1.0 - hp[_spec.ETA0] * rules.decay_strength(RULE, hp[_spec.LAM])
    for j in range(P.shape[0]):
        _catch_up_feature(RULE, P, last, j, T, 1.0 / scale, c, hp, G[_spec.G_L1_TOTAL])
    if scale != 1.0:
        n_stored = rules.n_stored_units(RULE)
        scale_sum = G[_spec.G_SCALE_SUM]
        for j in range(P.shape[0]):
            for k in range(P.shape[1]):
                if RULE == SGD and scale_sum != 0.0:
                    # Settle the average's numerator into true units (see rules.sgd), so
                    # that no later sum mixes stored units of different scales.
                    P[j, k, rules.sgd.AVG] -= P[j, k, 0] * scale_sum
                for s in range(n_stored):
                    P[j, k, s] *= scale
        G[_spec.G_L1_TOTAL] *= scale
        G[_spec.G_SCALE_SUM] = 0.0
        G[_spec.G_SCALE] = 1.0


@njit(cache=True, inline="always", error_model="numpy")
def _step_intercept(RULE, B, s, dl, eta, hp, bc1, bc2, averaging, n_averaged):
    """The intercept's step: the same rule, never decayed or penalized (once per row)."""
    for k in range(B.shape[1]):
        before = B[0, k, 0]
        rules.step(RULE, B, 0, k, s * dl[k], eta, 1.0, 0.0, 0.0, hp, bc1, bc2, 0.0)
        if averaging:
            B[0, k, rules.sgd.AVG] += (B[0, k, 0] - before) * n_averaged


@njit(cache=True, inline="always", error_model="numpy")
def _epoch(RULE, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id, t):
    """One pass over the rows ``order``; returns (steps done, sum of weighted losses)."""
    n_out = P.shape[1]
    z = np.empty(n_out)
    dl = np.empty(n_out)
    lam = rules.decay_strength(RULE, hp[_spec.LAM])
    lam1 = hp[_spec.LAM1]
    lam2 = hp[_spec.LAM]  # FTRL's L2 inside its closed form
    eps_loss = hp[_spec.LOSS_PARAM]
    fit_intercept = hp[_spec.FIT_INTERCEPT] != 0.0
    b1 = hp[_spec.BETA1]
    b2 = hp[_spec.BETA2]
    # Rules with timestamps use a constant step size, so their catch-up sees a constant
    # per-step decay factor.
    c_const = 1.0 - hp[_spec.ETA0] * lam
    average_start = hp[_spec.AVERAGE_START]
    intercept_rate = hp[_spec.INTERCEPT_RATE]
    total_loss = 0.0
    for r in range(order.shape[0]):
        i = order[r]
        t += 1
        eta = learning_rate(sched_id, t, hp)
        scale = G[_spec.G_SCALE]
        inv_prev = 1.0 / scale
        l1_prev = G[_spec.G_L1_TOTAL]
        start = indptr[i]
        end = indptr[i + 1]

        if n_out == 1:
            # One output: accumulate in a register, not through the z array.
            margin = 0.0
            for p in range(start, end):
                j = indices[p]
                _catch_up_feature(RULE, P, last, j, t - 1, inv_prev, c_const, hp, l1_prev)
                margin += P[j, 0, 0] * data[p]
            z[0] = margin * scale + B[0, 0, 0]
        else:
            for k in range(n_out):
                z[k] = 0.0
            for p in range(start, end):
                j = indices[p]
                _catch_up_feature(RULE, P, last, j, t - 1, inv_prev, c_const, hp, l1_prev)
                x = data[p]
                for k in range(n_out):
                    z[k] += P[j, k, 0] * x
            for k in range(n_out):
                z[k] = z[k] * scale + B[0, k, 0]
        s = sw[i]
        total_loss += s * losses.row_loss_grad(loss_id, z, y[i], eps_loss, dl)

        # Step t's decay reaches every weight through the global scale, O(1).
        scale *= 1.0 - eta * lam
        G[_spec.G_SCALE] = scale
        inv_scale = 1.0 / scale
        l1_total = l1_prev + eta * inv_scale
        G[_spec.G_L1_TOTAL] = l1_total
        bc1 = 1.0
        bc2 = 1.0
        if RULE == ADAM:
            bc1 = 1.0 - b1 ** float(t)
            bc2 = 1.0 - b2 ** float(t)

        averaging = RULE == SGD and average_start > 0.0
        scale_sum = G[_spec.G_SCALE_SUM]
        if n_out == 1 and not averaging:
            g_row = s * dl[0]
            for p in range(start, end):
                j = indices[p]
                rules.step(
                    RULE, P, j, 0, g_row * data[p], eta, inv_scale, lam1, lam2, hp, bc1, bc2,
                    l1_total,
                )
                if rules.needs_timestamp(RULE):
                    last[j] = t
        else:
            for p in range(start, end):
                j = indices[p]
                x = data[p]
                for k in range(n_out):
                    before = P[j, k, 0]
                    rules.step(
                        RULE, P, j, k, s * dl[k] * x, eta, inv_scale, lam1, lam2, hp, bc1,
                        bc2, l1_total,
                    )
                    if averaging:
                        P[j, k, rules.sgd.AVG] += (P[j, k, 0] - before) * scale_sum
                if rules.needs_timestamp(RULE):
                    last[j] = t
        if fit_intercept:
            _step_intercept(RULE, B, s, dl, eta * intercept_rate, hp, bc1, bc2, averaging,
                            G[_spec.G_AVG_COUNT])
        if averaging and t >= average_start:
            G[_spec.G_SCALE_SUM] = scale_sum + scale
            G[_spec.G_AVG_COUNT] += 1.0

        # Averaging subtracts sums of stored weights, so it folds the scale as soon as it
        # halves, keeping stored and true units within a factor of two (no cancellation).
        if scale < (0.5 if averaging else _spec.MIN_SCALE):
            _flush(RULE, P, last, G, hp, t)
    _flush(RULE, P, last, G, hp, t)
    return t, total_loss


# One compiled loop per rule: the rule code is a literal, so everything rule-specific is
# resolved at compile time.
@njit(cache=True, error_model="numpy")
def epoch_sgd(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id, t):
    return _epoch(SGD, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


@njit(cache=True, error_model="numpy")
def epoch_adagrad(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id,
                  t):
    return _epoch(ADAGRAD, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


@njit(cache=True, error_model="numpy")
def epoch_rmsprop(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id,
                  t):
    return _epoch(RMSPROP, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


@njit(cache=True, error_model="numpy")
def epoch_adadelta(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id,
                   t):
    return _epoch(ADADELTA, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


@njit(cache=True, error_model="numpy")
def epoch_adam(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id, t):
    return _epoch(ADAM, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


@njit(cache=True, error_model="numpy")
def epoch_ftrl(indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id, sched_id, t):
    return _epoch(FTRL, indptr, indices, data, y, sw, order, P, last, B, G, hp, loss_id,
                  sched_id, t)


EPOCH = {
    "sgd": epoch_sgd,
    "adagrad": epoch_adagrad,
    "rmsprop": epoch_rmsprop,
    "adadelta": epoch_adadelta,
    "adam": epoch_adam,
    "ftrl": epoch_ftrl,
}
