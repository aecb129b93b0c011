"""The epoch loops over CSR rows: the only code that walks X.

One generic loop, ``_epoch``, is written once and compiled as one function per optimizer
rule (``EPOCH["sgd"]``, ``EPOCH["adagrad"]``, ...; see ``_for_rule``). Inside each, the
rule code is a constant, so the rule dispatch in ``rules.step``/``rules.catch_up`` folds
away at compile time and no nonzero pays a branch on the rule. Losses and schedules are small
run-time switches taken once per row.

Model state (see ``_engine.LazyModel``):

``P``     (n_features, n_outputs, n_slots) float64, one record per weight, with the
          slots the settings use (``rules.Rule.layout``); slot 0 is the
          weight in stored units (true weight = ``G[G_SCALE] * P[..., 0]``). The rules
          whose catch-up counts missed steps (RMSProp, Adadelta, Adam) keep the step
          through which feature j is up to date in its own record, ``P[j, 0, -1]``:
          in a separate array it was a second cache line per touched feature.
``B``     (1, n_outputs, n_slots) float64, the intercept's records (true units).
``G``     float64 scalars carried between steps (global scale, running L1 total).

A row at step t: bring its features up to date to step t-1 (``catch_up``), compute the
margins, the loss derivative, apply this step's decay to the global scale, then ``step``
each weight of the row and the intercept. ``flush`` brings every feature up to date and
folds the scale back into the weights; it runs at the end of every epoch, so stored
weights between calls are always the true weights.
"""

import math
import types

import numpy as np
from numba import njit, prange

from . import _spec, losses, rules
from ._llvm import borrowed, fetch_add, keep_alive, prefetch
from .rules import ADAM, FTRL, SGD

# The rule code that the templates of the compiled loops read (``_epoch``): each
# compiled copy has its own value (see ``_for_rule``).
RULE = None
LANE = None  # and the Hogwild loops, their rule's thread loop (``_lane_rows``)
MERGE = None  # and the thread loops, their rule's merge of private records


@njit(cache=True, inline="always", error_model="numpy")
def learning_rate(sched_id, t, hp):
    """Step size of step ``t`` (1-based) under the schedule ``sched_id``."""
    if sched_id == _spec.CONSTANT:
        return hp[_spec.ETA0]
    if sched_id == _spec.INVSCALING:
        return hp[_spec.ETA0] / float(t) ** hp[_spec.POWER_T]
    return 1.0 / (hp[_spec.OPTIMAL_ALPHA] * (hp[_spec.OPTIMAL_INIT] + float(t) - 1.0))


# How far ahead the loop asks for memory: the CSR slice of the row X_AHEAD steps ahead,
# and the feature records of the row RECORDS_AHEAD steps ahead (its indices were
# requested X_AHEAD - RECORDS_AHEAD rows earlier, so reading them does not stall). Chosen
# by measurement on full pypi_popular (rows in order and shuffled); 1 or 3 rows ahead of
# the records are slower, 2 is within noise of 2.5x faster than none.
X_AHEAD = 8
RECORDS_AHEAD = 2


@njit(cache=True, inline="always", error_model="numpy")
def _prefetch_ahead(indptr, indices, data, order, x_at, records_at, flat_P, record):
    """Request the CSR slice of row ``order[x_at]`` and the feature records of row
    ``order[records_at]`` (no request for a position of -1).

    ``flat_P`` is the model's records as one flat array of ``record`` numbers per feature
    (the timestamp of the rules that keep one included: it is in the record). A record
    may straddle two cache lines (24 bytes at offset 48, say), so both its first and its
    last number are requested, and every line between.
    """
    if x_at >= 0:
        i = order[x_at]
        prefetch(indices, indptr[i])
        prefetch(data, indptr[i])
    if records_at >= 0:
        i = order[records_at]
        # At most two lines: no loop per feature. (One loop for both, with the lines
        # between first and last behind a test, made Adagrad's epochs 4% slower.)
        if record <= 8:
            for q in range(indptr[i], indptr[i + 1]):
                first = indices[q] * record
                prefetch(flat_P, first)
                prefetch(flat_P, first + record - 1)
        else:
            for q in range(indptr[i], indptr[i + 1]):
                first = indices[q] * record
                for e in range(first, first + record, 8):
                    prefetch(flat_P, e)
                prefetch(flat_P, first + record - 1)


@njit(cache=True, inline="always", error_model="numpy")
def _undo_step_decay(P, j, inv_decay):
    """Multiply feature j's running averages by ``inv_decay``: for the rules whose
    ``feature_decay`` is not 1 (RMSProp's ``v``; Adadelta's ``v`` and ``delta``), every
    slot between the weight and the timestamp. Only the Hogwild threads' loops have it
    (``racing``), inlined: there it is not rare (a hot feature's last step is the other
    thread's, further on, about half the time): RMSProp's two-thread epochs ran 1-6%
    faster with it inlined than called (commit message)."""
    for k in range(P.shape[1]):
        for e in range(1, P.shape[2] - 1):
            P[j, k, e] *= inv_decay


@njit(cache=True, inline="always", error_model="numpy")
def _weight_decay(RULE, hp):
    """The rule's decoupled weight decay ``lam`` and ``c = 1 - eta0*lam``, the constant
    per-step factor of the timestamped rules' catch-up (their step size is constant)."""
    lam = rules.decay_strength(RULE, hp[_spec.LAM])
    return lam, 1.0 - hp[_spec.ETA0] * lam


@njit(cache=True, inline="always", error_model="numpy")
def _decay_factor(eta, lam):
    """What a step of size ``eta`` multiplies the global scale by (decoupled decay
    ``lam``): one expression for every pass over the steps, so that all make the same
    numbers."""
    return 1.0 - eta * lam


@njit(cache=True, inline="always", error_model="numpy")
def _next_scale(scale, l1_total, eta, lam, hp):
    """The global scale and L1 total after a step of size ``eta`` from ``scale`` and
    ``l1_total`` before it: step t's decay reaches every weight through the scale, O(1),
    and the L1 total grows by the step's budget ``eta*lam1`` in stored units. Written once:
    the one-thread loop, the Hogwild loop's pass over the steps and its threads must make
    the same numbers."""
    scale = scale * _decay_factor(eta, lam)
    return scale, l1_total + eta * hp[_spec.LAM1] * (1.0 / scale)


@njit(cache=True, inline="always", error_model="numpy")
def _catch_up_feature(RULE, P, j, T, inv_scale, c, hp, l1_total, table, racing):
    """Bring all outputs of feature j up to date through step ``T``.

    ``racing`` (a constant of the calling loop): True in the Hogwild threads' row loop,
    where another thread may have brought the feature past ``T``; False elsewhere, where
    the branch for that case is pruned before typing (compile time)."""
    n_out = P.shape[1]
    if rules.needs_timestamp(RULE):
        stamp = P.shape[2] - 1  # see rules.needs_timestamp
        last = np.int64(P[j, 0, stamp])
        missed = T - last
        if missed > 0:
            decay = rules.feature_decay(RULE, missed, hp, table)
            for k in range(n_out):
                rules.catch_up(
                    RULE, P, j, k, missed, last, decay, hp[_spec.ETA0], inv_scale, c, hp,
                    l1_total, table,
                )
            P[j, 0, stamp] = T
        elif racing and missed < 0:
            # Hogwild only: a thread further on has brought the feature past this step,
            # so this step's decay of the averages is already applied, and the step is
            # about to apply it again. Undone once here: each step decays a feature's
            # averages once, as in dense Hogwild (twice, the averages of hot features
            # forgot faster; see commit 60fad71 for what it moved). One step's decay is
            # the rule's own ``feature_decay``: rho for RMSProp and Adadelta, 1 for Adam
            # (its moments decay inside its catch-up, with the weight's moves: not undone).
            decay = rules.feature_decay(RULE, 1, hp, table)
            if 0.0 < decay < 1.0:
                _undo_step_decay(P, j, 1.0 / decay)
    elif hp[_spec.LAM1] > 0.0:
        for k in range(n_out):
            rules.catch_up(RULE, P, j, k, 0, 0, 1.0, 0.0, inv_scale, c, hp, l1_total, table)


# Compiled once and called (not inlined into every loop: compile time).
@njit(cache=True, error_model="numpy")
def _fold_and_sum(P, lo, hi, scale, n_stored):
    """Multiply the first ``n_stored`` slots of the records of features ``lo:hi`` by
    ``scale`` (none for 0) and return ``(sum w**2, sum |w|, bad)`` of their weights after
    it; ``bad`` is 0 when every number of their records is finite and NaN otherwise
    (``x * 0.0`` is 0 for a finite ``x``): one pass checks weights and optimizer state.

    One pass for the fold and the sums, with two independent sums of each (one running
    sum waits on each addition's latency): the flush is memory-bound, and a second pass
    over the model for the sums cost 2 ms per epoch on full pypi_popular.
    """
    flat = P.reshape(P.size)
    n_slots = P.shape[2]
    first = lo * P.shape[1]
    end = hi * P.shape[1]  # weights (j, k) in [first, end), each with n_slots numbers
    sq0 = sq1 = ab0 = ab1 = bad0 = bad1 = 0.0
    top = end - (end - first) % 2
    for i in range(first, top, 2):
        a = i * n_slots
        b = a + n_slots
        for q in range(n_stored):
            flat[a + q] *= scale
            flat[b + q] *= scale
        w0 = flat[a]
        w1 = flat[b]
        sq0 += w0 * w0
        sq1 += w1 * w1
        ab0 += abs(w0)
        ab1 += abs(w1)
        for q in range(1, n_slots):
            bad0 += flat[a + q] * 0.0
            bad1 += flat[b + q] * 0.0
    if top < end:
        a = top * n_slots
        for q in range(n_stored):
            flat[a + q] *= scale
        w0 = flat[a]
        sq0 += w0 * w0
        ab0 += abs(w0)
        for q in range(1, n_slots):
            bad0 += flat[a + q] * 0.0
    return sq0 + sq1, ab0 + ab1, bad0 + bad1


# Compiled once and called (not inlined into every loop: compile time).
@njit(cache=True, error_model="numpy")
def _checked_sums(B, sum_sq, sum_abs, bad):
    """The penalty sums, both NaN when they or ``bad`` or any number of the intercept's
    records is not finite: the objective they enter doubles as the divergence check."""
    for k in range(B.shape[1]):
        for q in range(B.shape[2]):
            bad += B[0, k, q] * 0.0
    if not (math.isfinite(sum_sq) and math.isfinite(sum_abs) and bad == 0.0):
        return math.nan, math.nan
    return sum_sq, sum_abs


@njit(cache=True, inline="always", error_model="numpy")
def _settle_features(RULE, P, lo, hi, T, scale, l1_total, hp, table):
    """Bring features ``lo:hi`` up to date through step ``T``, at which the global scale
    and L1 total are ``scale`` and ``l1_total``."""
    _, c = _weight_decay(RULE, hp)
    inv_scale = 1.0 / scale
    for j in range(lo, hi):
        _catch_up_feature(RULE, P, j, T, inv_scale, c, hp, l1_total, table, False)


@njit(cache=True, inline="always", error_model="numpy")
def _to_fold(RULE, P, G, hp):
    """After every feature is up to date: how many leading slots of each record the fold
    must multiply by the scale (0 when it is 1)."""
    scale = G[_spec.G_SCALE]
    if scale == 1.0:
        return 0
    scale_sum = G[_spec.G_SCALE_SUM]
    if RULE == SGD and scale_sum != 0.0:
        # Settle the average's numerator into true units (see rules.sgd), so that no
        # later sum mixes stored units of different scales.
        for j in range(P.shape[0]):
            for k in range(P.shape[1]):
                P[j, k, rules.sgd.AVG] -= P[j, k, 0] * scale_sum
    return rules.n_stored_units(RULE, hp)


@njit(cache=True, inline="always", error_model="numpy")
def _fold_done(G, B, sum_sq, sum_abs, bad):
    """After the fold: the scale is 1 from here; returns the whole model's penalty sums
    (``_checked_sums``)."""
    scale = G[_spec.G_SCALE]
    if scale != 1.0:
        G[_spec.G_L1_TOTAL] *= scale
        G[_spec.G_SCALE_SUM] = 0.0
        G[_spec.G_SCALE] = 1.0
    return _checked_sums(B, sum_sq, sum_abs, bad)


@njit(cache=True, inline="always", error_model="numpy")
def _flush(RULE, P, B, G, hp, T, table):
    """Bring every feature up to date through step ``T``, fold the global scale and
    return the model's penalty sums (``_fold_done``)."""
    _settle_features(RULE, P, 0, P.shape[0], T, G[_spec.G_SCALE], G[_spec.G_L1_TOTAL], hp,
                     table)
    n_stored = _to_fold(RULE, P, G, hp)
    sum_sq, sum_abs, bad = _fold_and_sum(P, 0, P.shape[0], G[_spec.G_SCALE], n_stored)
    return _fold_done(G, B, sum_sq, sum_abs, bad)


@njit(cache=True, parallel=True, error_model="numpy")
def fold_and_sum_threads(P, scale, n_stored, n_threads):
    """``_fold_and_sum`` of all features, each thread its stripe: a Hogwild epoch's fold.

    The fold is memory-bound: on one thread, it and the penalty sums took about 4% of a
    two-thread epoch on full pypi_popular. One function for every rule (the rule-specific
    catch-up before it stays on one thread): a parallel loop in each rule's Hogwild loop
    cost 8 s of compile time.
    """
    n = P.shape[0]
    stripe = (n + n_threads - 1) // n_threads
    parts = np.zeros((n_threads, 3))
    for lane in prange(n_threads):
        lo = min(lane * stripe, n)
        parts[lane, 0], parts[lane, 1], parts[lane, 2] = _fold_and_sum(
            P, lo, min(lo + stripe, n), scale, n_stored)
    return parts[:, 0].sum(), parts[:, 1].sum(), parts[:, 2].sum()


@njit(cache=True, inline="always", error_model="numpy")
def _step_intercept(RULE, B, g, eta, hp, bc1, bc2, averaging, n_averaged):
    """The intercept's step with gradients ``g`` (one per output): the same rule, never
    decayed or penalized."""
    for k in range(B.shape[1]):
        before = B[0, k, 0]
        rules.step(RULE, B, 0, k, g[k], eta, 1.0, 0.0, 0.0, hp, bc1, bc2, 0.0)
        if averaging:
            B[0, k, rules.sgd.AVG] += (B[0, k, 0] - before) * n_averaged


@njit(cache=True, inline="always", error_model="numpy")
def _row_step(RULE, indptr, indices, data, y, sw, order, r, t, P, B, hp, loss_id, table,
              c_const, z, dl, eta, scale_prev, l1_prev, scale, l1_total, averaging, scale_sum,
              n_averaged, racing):
    """Step ``t`` on row ``order[r]``; returns its weighted loss (before the step).

    ``scale_prev``/``l1_prev`` are the global scale and L1 total after step t-1 (what the
    row's features catch up to), ``scale``/``l1_total`` after step t (what its steps are
    written in). The one-thread loop carries them from row to row; a Hogwild thread
    from the start of its block (kept per block, from the step index), so no thread
    writes a shared one. ``c_const`` is the
    per-step decay factor of the timestamped rules' catch-up (their step size is constant),
    computed once per epoch. Timestamps only move forward: a Hogwild thread a few steps
    behind another must not rewind a feature's ``last`` (the other thread's catch-up would
    then replay those steps twice).

    ``racing``: a Hogwild thread's loop (see ``_catch_up_feature``).
    """
    n_out = P.shape[1]
    stamp = P.shape[2] - 1  # the timestamp's slot (see rules.needs_timestamp)
    lam1 = hp[_spec.LAM1]
    lam2 = hp[_spec.LAM]  # FTRL's L2 inside its closed form
    i = order[r]
    inv_prev = 1.0 / scale_prev
    start = indptr[i]
    end = indptr[i + 1]
    # Features as int64, as the catch-up of every feature at a flush counts them: with int32
    # CSR indices, each rule's catch-up and step would be compiled for both (Adam's
    # catch-up, about 1.3 s more of compile time).
    if n_out == 1:
        # One output: accumulate in a register, not through the z array.
        margin = 0.0
        for p in range(start, end):
            j = np.int64(indices[p])
            _catch_up_feature(RULE, P, j, t - 1, inv_prev, c_const, hp, l1_prev, table,
                              racing)
            margin += P[j, 0, 0] * data[p]
        z[0] = margin * scale_prev + B[0, 0, 0]
    else:
        for k in range(n_out):
            z[k] = 0.0
        for p in range(start, end):
            j = np.int64(indices[p])
            _catch_up_feature(RULE, P, j, t - 1, inv_prev, c_const, hp, l1_prev, table,
                              racing)
            x = data[p]
            for k in range(n_out):
                z[k] += P[j, k, 0] * x
        for k in range(n_out):
            z[k] = z[k] * scale_prev + B[0, k, 0]
    if n_out == 1 and loss_id == _spec.LOG_LOSS:
        # The default loss inlined, not a call through the z and dl arrays. (Every loss
        # inlined cost each rule's loop 0.5-1 s more of compile time.)
        value, dl[0] = losses.log_loss_and_dloss(z[0], y[i])
    else:
        value = losses.row_loss_grad(loss_id, z, y[i], hp[_spec.LOSS_PARAM], dl)
    s = sw[i]
    loss = s * value
    for k in range(n_out):
        dl[k] *= s  # the weighted loss's derivatives from here on

    inv_scale = 1.0 / scale
    bc1 = 1.0
    bc2 = 1.0
    if RULE == ADAM:
        bc1 = 1.0 - hp[_spec.BETA1] ** float(t)
        bc2 = 1.0 - hp[_spec.BETA2] ** float(t)
    if n_out == 1 and not averaging:
        g_row = dl[0]
        for p in range(start, end):
            j = np.int64(indices[p])
            rules.step(
                RULE, P, j, 0, g_row * data[p], eta, inv_scale, lam1, lam2, hp, bc1, bc2,
                l1_total,
            )
            if rules.needs_timestamp(RULE) and P[j, 0, stamp] < t:
                P[j, 0, stamp] = t
    else:
        for p in range(start, end):
            j = np.int64(indices[p])
            x = data[p]
            for k in range(n_out):
                before = P[j, k, 0]
                rules.step(
                    RULE, P, j, k, dl[k] * x, eta, inv_scale, lam1, lam2, hp, bc1, bc2,
                    l1_total,
                )
                if averaging:
                    P[j, k, rules.sgd.AVG] += (P[j, k, 0] - before) * scale_sum
            if rules.needs_timestamp(RULE) and P[j, 0, stamp] < t:
                P[j, 0, stamp] = t
    if hp[_spec.FIT_INTERCEPT] != 0.0:
        eta_b = eta * hp[_spec.INTERCEPT_RATE]
        _step_intercept(RULE, B, dl, eta_b, hp, bc1, bc2, averaging, n_averaged)
    return loss


def _epoch(indptr, indices, data, y, sw, order, P, B, G, hp, loss_id, sched_id, t):
    """One pass over the rows ``order``; returns (steps done, sum of weighted losses,
    sum w**2, sum |w|) (the penalty sums after the pass, see ``_flush``).

    A template: compiled once per rule, with its ``RULE`` (``EPOCH``, ``_for_rule``)."""
    n_out = P.shape[1]
    z_owner = np.empty(n_out)
    dl_owner = np.empty(n_out)
    lam, c_const = _weight_decay(RULE, hp)
    table_owner = rules.catch_up_table(RULE, hp, c_const)
    average_start = hp[_spec.AVERAGE_START]
    averaging = RULE == SGD and average_start > 0.0
    # The row loop works on views that own nothing (see _llvm.borrowed): with owning
    # arrays it paid two atomic reference-count operations per array per nonzero. The
    # arguments' owners are the caller's; the arrays made here are kept alive to the end.
    indptr, indices, data, y, sw, order, P, B, hp = borrowed(
        (indptr, indices, data, y, sw, order, P, B, hp))
    z, dl = borrowed((z_owner, dl_owner))
    table = borrowed(table_owner)  # Adam's is itself a tuple: its arrays are borrowed
    flat_P = P.reshape(P.size)
    record = P.shape[1] * P.shape[2]
    total_loss = 0.0
    n = order.shape[0]
    threshold = 0.5 if averaging else _spec.MIN_SCALE
    r = 0
    while True:
        # The scalars live in registers during the row loop and go back to G only for the
        # fold (a flush): a store to G in every row measured 1.5-1.8x slower for the
        # rules with timestamps (the compiler must assume G may alias the state arrays).
        scale = G[_spec.G_SCALE]
        l1_total = G[_spec.G_L1_TOTAL]
        scale_sum = G[_spec.G_SCALE_SUM]
        n_averaged = G[_spec.G_AVG_COUNT]
        while r < n:
            t += 1
            eta = learning_rate(sched_id, t, hp)
            scale_prev = scale
            l1_prev = l1_total
            scale, l1_total = _next_scale(scale_prev, l1_prev, eta, lam, hp)
            _prefetch_ahead(indptr, indices, data, order,
                            r + X_AHEAD if r + X_AHEAD < n else -1,
                            r + RECORDS_AHEAD if r + RECORDS_AHEAD < n else -1,
                            flat_P, record)
            total_loss += _row_step(
                RULE, indptr, indices, data, y, sw, order, r, t, P, B, hp, loss_id,
                table, c_const, z, dl, eta, scale_prev, l1_prev, scale, l1_total, averaging,
                scale_sum, n_averaged, False,
            )
            r += 1
            if averaging and t >= average_start:
                scale_sum += scale
                n_averaged += 1.0
            # Averaging subtracts sums of stored weights, so it folds the scale as soon
            # as it halves, keeping stored and true units within a factor of two.
            if scale < threshold:
                break
        G[_spec.G_SCALE] = scale
        G[_spec.G_L1_TOTAL] = l1_total
        G[_spec.G_SCALE_SUM] = scale_sum
        G[_spec.G_AVG_COUNT] = n_averaged
        sum_sq, sum_abs = _flush(RULE, P, B, G, hp, t, table)
        if r >= n:
            keep_alive((z_owner, dl_owner, table_owner))
            return t, total_loss, sum_sq, sum_abs


@njit(cache=True, nogil=True, error_model="numpy")
def penalty_sums(P, B, scale):
    """``(sum w**2, sum |w|)`` over the true weights ``scale * P[..., 0]``; both NaN when
    any number of the model (weights, optimizer state, intercept) is not finite.

    Epochs return these from their flush (``_flush``); this is for a model between them.
    """
    sum_sq, sum_abs, bad = _fold_and_sum(P, 0, P.shape[0], 1.0, 0)
    sum_sq, sum_abs = _checked_sums(B, sum_sq, sum_abs, bad)
    return sum_sq * scale * scale, sum_abs * abs(scale)


# Rows a Hogwild thread takes at a time: consecutive positions of ``order`` (neighbours in
# memory under block shuffling), few enough that the threads stay within a few dozen
# steps of each other (a lag of 256 steps cost Adam about 2% of test loss on synthetic
# text; Adagrad and SGD did not notice).
HOGWILD_BLOCK = 64
# Rows between a Hogwild thread's syncs of its private intercept (see _epoch_hogwild).
INTERCEPT_SYNC = 16
# Features a Hogwild thread brings up to date at a time at the end of a segment.
SETTLE_CHUNK = 4096
# Rows a Hogwild thread with private records of the hot columns runs between merges
# of its records into the shared ones (see _lane_rows): its view of the other threads'
# steps on those columns is up to this many of its rows late. The warm columns (less
# frequent; _engine.hogwild_plan) are merged every WARM_SYNC rows, with the hot ones.
PRIVATE_SYNC = 1024
WARM_SYNC = 64 * PRIVATE_SYNC


@njit(cache=True, nogil=True, error_model="numpy")
def sampled_column_counts(indptr, indices, n_features, every):
    """How many of the rows ``0, every, 2*every, ...`` each column appears in."""
    counts = np.zeros(n_features, dtype=np.int32)
    for i in range(0, indptr.shape[0] - 1, every):
        for p in range(indptr[i], indptr[i + 1]):
            counts[indices[p]] += 1
    return counts


@njit(cache=True, parallel=True, error_model="numpy")
def private_indices(indices, hot, n_features, out):
    """Fill ``out`` (shape ``(n_lanes, len(indices))``, the dtype of ``indices``) with the
    record of every nonzero for each of ``n_lanes`` Hogwild threads with private records
    of the columns ``hot``: the column itself, or for the h-th hot column, row
    ``n_features + lane * len(hot) + h`` of the model's records. Such a thread reads
    these in place of ``indices``: the same loop, no test or lookup per nonzero.

    ``out`` comes from NumPy, whose large arrays are on huge pages: one Numba made itself
    took 12k page faults to fill (19 ms of a 37 ms copy). A bit per column (128 KB for
    2**20 columns: in the core's L2 cache) says whether it is hot, and the private row
    is read at column ``j * bit`` (column 0 when cold: one cached line), with no branch
    per nonzero: 15-20 ms for full pypi_popular's 13.7M nonzeros on two threads, against
    38 ms with a branch and 55 ms reading a 4 MB rank table at every nonzero.
    """
    n_hot = hot.shape[0]
    is_hot = np.zeros((n_features >> 6) + 1, dtype=np.uint64)
    row = np.zeros(n_features, dtype=np.int64)
    for h in range(n_hot):
        is_hot[hot[h] >> 6] |= np.uint64(1) << np.uint64(hot[h] & 63)
        row[hot[h]] = n_features + h
    for lane in range(out.shape[0]):
        lane_out = out[lane]
        for p in prange(indices.shape[0]):
            j = np.int64(indices[p])
            bit = np.int64((is_hot[j >> 6] >> np.uint64(j & 63)) & np.uint64(1))
            lane_out[p] = j + bit * (row[j * bit] - j)
        for h in range(n_hot):  # the next thread's private rows
            row[hot[h]] += n_hot


def _merge_private(P, hot, base, snap, c_const, hp, table):
    """Merge a Hogwild thread's private records of the columns ``hot`` (rows ``base,
    base + 1, ...`` of ``P``) into the shared ones, and both and the snapshot ``snap``
    (the shared records when the private ones were last taken) become the result.

    The private record plus what the other threads did to the shared one since the
    snapshot, with every record brought up to date to the later of the two timestamps
    first: each thread's steps count once and the steps' decays once. Alone, a thread's
    records come out exactly as if it had shared them (the shared change is 0). For
    the rules whose catch-up is a linear map of the record, the merge is the same at any
    step it is taken; Adam's is not (its weight moves with m/sqrt(v) over the missed
    steps), so its merge is exact alone and, with other threads, as approximate as
    Hogwild's sharing (measured in the commit message that gave Adam private records).
    A sum of squares takes no negative change (``rules.sum_of_squares``): the merged
    one is at least the private one.

    A template: compiled once per rule (``_MERGE``, ``_for_rule``)."""
    n_out = P.shape[1]
    stamp = P.shape[2] - 1
    n_state = stamp if rules.needs_timestamp(RULE) else P.shape[2]
    for h in range(hot.shape[0]):
        j = hot[h]
        p = base + h
        if rules.needs_timestamp(RULE):
            T = max(np.int64(P[j, 0, stamp]), np.int64(P[p, 0, stamp]))
            _catch_up_feature(RULE, P, j, T, 1.0, c_const, hp, 0.0, table, False)
            _catch_up_feature(RULE, P, p, T, 1.0, c_const, hp, 0.0, table, False)
            _catch_up_feature(RULE, snap, h, T, 1.0, c_const, hp, 0.0, table, False)
        for k in range(n_out):
            for e in range(n_state):
                change = P[j, k, e] - snap[h, k, e]
                # Another thread's steps only add to a sum of squares (caught up to T,
                # both decayed alike), but a race can leave the shared record below the
                # snapshot (for one, a catch-up that overlapped the last merge's writes
                # decays the merged record a second time). Subtracted, that took Adam's
                # merged v down to 2% of the private one in ordinary two-thread fits,
                # and below 0 (a NaN weight: an AdamW fit diverged) in one benchmark run
                # (commit message). (NaN compares false: it still stops the fit.)
                if change < 0.0 and rules.sum_of_squares(RULE, e, P.shape[2]):
                    change = 0.0
                P[p, k, e] += change
            if RULE == FTRL:
                # The weight as the function of the merged z and n that it is (a step
                # of gradient 0 moves nothing else).
                rules.step(RULE, P, p, k, 0.0, hp[_spec.ETA0], 1.0, hp[_spec.LAM1],
                           hp[_spec.LAM], hp, 1.0, 1.0, 0.0)
            for e in range(P.shape[2]):
                P[j, k, e] = P[p, k, e]
                snap[h, k, e] = P[p, k, e]
    return 0


@njit(cache=True, inline="always", error_model="numpy")
def _position_ahead(r, ahead, block_end, next_first, seg_end):
    """The position ``ahead`` rows after ``r`` in a Hogwild thread's own sequence: on in
    this block (which ends at ``block_end``), then on from ``next_first`` in its next;
    -1 past the segment's end."""
    p = r + ahead
    if p < block_end:
        return p
    p = next_first + (p - block_end)
    return p if p < seg_end else -1


@njit(cache=True, inline="always", error_model="numpy")
def _settle_share(RULE, P, hp, T, scale, l1_total, next_block, table_owner):
    """A Hogwild thread's share of the catch-up of every feature through step ``T`` (the
    segment's end): chunks of features from the second work counter until none are left;
    returns 0 (no rows, no loss).

    Adam's catch-up of every feature took 30 ms of a 0.3-0.4 s two-thread epoch on full
    pypi_popular, on one thread while the others waited. It is a phase of its own: started
    by a thread whose rows had run out, it raced with another's last rows, whose late
    catch-up of a feature could rewind its timestamp.
    """
    P, hp = borrowed((P, hp))  # views that own nothing, as in _epoch
    table = borrowed(table_owner)
    n_features = P.shape[0]
    chunk = fetch_add(next_block, 1, 1)
    while chunk * SETTLE_CHUNK < n_features:
        lo = chunk * SETTLE_CHUNK
        _settle_features(RULE, P, lo, min(lo + SETTLE_CHUNK, n_features), T, scale,
                         l1_total, hp, table)
        chunk = fetch_add(next_block, 1, 1)
    keep_alive(table_owner)
    return 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _merge_intercept(RULE, B, own, snap, n_held, eta, t, hp):
    """A Hogwild thread's private intercept ``own``, stepped ``n_held`` times since it was
    taken from the shared ``B`` (then ``snap``), merged into ``B`` as if the other
    threads' steps since the snapshot came first and this thread's after (the order in
    which taking its steps again on ``B`` would put them).

    Each state slot becomes ``d * B + own - d * snap``, ``d`` being what the thread's
    steps multiplied it by (``rules.step_decay`` to the power ``n_held``: 1 for a sum of
    steps, ``rho**n_held`` for RMSProp's average, ...): each thread's part counts once,
    the old state decays under both. The weight adds its change, and for Adam also the
    move that the other threads' change of the momentum, ``dm = B_m - snap_m``, makes
    over this thread's steps: ``eta * dm * sum_{i<=n_held} b1**i / bc1 / (sqrt(v / bc2)
    + eps)`` at step ``t``'s bias corrections, the merged ``v`` standing for each step's
    (it moves by about ``(1 - b2) * n_held`` of itself). FTRL's weight is recomputed from
    the merged z and n (a step of gradient 0 with the intercept's step size ``eta``:
    never penalized). Alone (``B`` is ``snap``), the thread's intercept comes out as it
    was.

    Taking the thread's steps again on ``B``, as the loop did before, doubled the cost of
    every intercept step in such a thread. Without Adam's momentum term, the spread of
    its two-thread test loss against one thread's doubled (commit message)."""
    n_state = B.shape[2] - 1 if rules.needs_timestamp(RULE) else B.shape[2]
    for k in range(B.shape[1]):
        dm = 0.0
        if RULE == ADAM:
            dm = B[0, k, rules.adam.M] - snap[0, k, rules.adam.M]
        for e in range(n_state):
            d = rules.step_decay(RULE, e, hp) ** n_held
            B[0, k, e] = d * B[0, k, e] + own[0, k, e] - d * snap[0, k, e]
        if RULE == ADAM and dm != 0.0:  # (then v > 0: the same gradients moved it)
            b1 = hp[_spec.BETA1]
            bc1 = 1.0 - b1 ** float(t)
            bc2 = 1.0 - hp[_spec.BETA2] ** float(t)
            carried = b1 * (1.0 - b1 ** n_held) / (1.0 - b1)  # sum_{i<=n_held} b1**i
            B[0, k, rules.adam.W] -= eta * carried * dm / bc1 / (
                math.sqrt(B[0, k, rules.adam.V] / bc2) + hp[_spec.EPS])
        if RULE == FTRL:
            rules.step(RULE, B, 0, k, 0.0, eta, 1.0, 0.0, 0.0, hp, 1.0, 1.0, 0.0)


def _lane_rows(args):
    """One Hogwild thread's share of a segment: in the first phase its rows, blocks from
    the work counter until none are left (returns the sum of their weighted losses); in
    the second (``settle``), its share of the catch-up of every feature to the segment's
    end (``_settle_share``, returns 0). ``args``: see ``_epoch_hogwild``.

    A template: compiled once per rule, with its ``RULE`` (``_LANE``, ``_for_rule``).
    """
    (indptr, indices, data, y, sw, order, P, B, hp, loss_id, sched_id, t, next_block,
     block_scale, block_l1, end_scale, end_l1, table_owner, hold_intercept, settle,
     P_rows, recs, hot, n_hot, lane, n_lanes) = args
    seg_end = order.shape[0]
    # A held intercept step was taken twice (on the private copy, then again on the
    # shared one): with every thread holding, on full pypi_popular, one thread running
    # both threads' rows in turn took 3-10% longer per row than without an intercept
    # (adagrad, ftrl 10%, adadelta 6%, sgd 3%). So the first thread steps the shared
    # intercept directly, and only the others hold (the shared one's cache line then
    # moves twice per INTERCEPT_SYNC rows of theirs); two threads against every thread
    # holding, interleaved, 6 rounds: sgd 58.7 -> 55.1 ms, adadelta 115.7 -> 107.3 ms,
    # adagrad, rmsprop and ftrl within noise. And a holding thread merges its change into
    # the shared one instead of taking its steps again (_merge_intercept), 6 rounds:
    # adagrad 75.4 -> 72.9 ms, ftrl 117.4 -> 111.5 ms, sgd the same (commit messages).
    # Adam's test loss does not tell the first thread stepping the shared intercept
    # from every thread holding: 50 two-thread fits of each on full pypi_popular, each
    # against one thread, -0.43% to +1.21% and -0.19% to +0.63% (sd about 0.2% each);
    # on a disturbed host (a third busy process, 30 fits each) both -1.6% to +1.7%, the
    # spread of one-thread fits with other shuffles (commit message).
    hold_intercept = hold_intercept and lane > 0
    if settle:
        return _settle_share(RULE, P, hp, t + seg_end, end_scale, end_l1, next_block,
                             table_owner)
    n_blocks = (seg_end + HOGWILD_BLOCK - 1) // HOGWILD_BLOCK
    n_out = P.shape[1]
    lam, c_const = _weight_decay(RULE, hp)
    z_owner = np.empty(n_out)
    dl_owner = np.empty(n_out)
    own_B_owner = B.copy() if hold_intercept else B
    snap_B_owner = B.copy()  # the shared intercept when own_B was last taken from it
    # The last recs.shape[0] threads keep private records of the hot columns: rows of
    # P_rows past the shared ones, which they reach through their own indices (recs, see
    # private_indices), in the same row loop. Shared, every thread's touch of a hot
    # record moved its cache line from the other core: on full pypi_popular (139
    # columns in 1% of the rows or more, 24% of the nonzeros), two threads against one,
    # fits whose line moves were near: sgd 1.52 -> 1.73x, adagrad 1.63 -> 1.70x, rmsprop
    # 1.47 -> 1.82x, adadelta 1.45 -> 1.70x, ftrl 1.71 -> 1.73x (commit message).
    private_lane = lane - (n_lanes - recs.shape[0])
    private = private_lane >= 0
    base = P.shape[0] + private_lane * hot.shape[0]
    snap_owner = np.empty((hot.shape[0] if private else 0, n_out, P.shape[2]))
    if private:
        indices = recs[private_lane]
        P = P_rows
        for h in range(hot.shape[0]):
            for k in range(n_out):
                for e in range(P.shape[2]):
                    P[base + h, k, e] = P[hot[h], k, e]
                    snap_owner[h, k, e] = P[hot[h], k, e]
    # Views that own nothing, as in _epoch (the shared intercept B too: its owner is the
    # caller's).
    indptr, indices, data, y, sw, order, P, B, hp = borrowed(
        (indptr, indices, data, y, sw, order, P, B, hp))
    z, dl, own_B, snap_B = borrowed((z_owner, dl_owner, own_B_owner, snap_B_owner))
    table = borrowed(table_owner)
    flat_P = P.reshape(P.size)
    record = P.shape[1] * P.shape[2]
    lane_total = 0.0
    since_merge = 0
    since_warm = 0
    # A thread claims its next block X_AHEAD rows before this one ends, so that
    # its last rows here can request the memory of the first rows there (until
    # then, positions past this block are past the segment: no request).
    blk = fetch_add(next_block, 0, 1)
    while blk < n_blocks:
        first = blk * HOGWILD_BLOCK
        block_end = min(first + HOGWILD_BLOCK, seg_end)
        claim_at = max(first, block_end - X_AHEAD)
        nxt = n_blocks
        next_first = seg_end
        scale_prev = block_scale[blk]
        l1_prev = block_l1[blk]
        for r in range(first, block_end):
            if r == claim_at:
                nxt = fetch_add(next_block, 0, 1)
                next_first = nxt * HOGWILD_BLOCK
            _prefetch_ahead(
                indptr, indices, data, order,
                _position_ahead(r, X_AHEAD, block_end, next_first, seg_end),
                _position_ahead(r, RECORDS_AHEAD, block_end, next_first, seg_end),
                flat_P, record,
            )
            step_t = t + r + 1
            eta = learning_rate(sched_id, step_t, hp)
            scale_r, l1_r = _next_scale(scale_prev, l1_prev, eta, lam, hp)
            q = (r - first) % INTERCEPT_SYNC
            lane_total += _row_step(
                RULE, indptr, indices, data, y, sw, order, r, step_t, P, own_B,
                hp, loss_id, table, c_const, z, dl, eta, scale_prev, l1_prev, scale_r,
                l1_r, False, 0.0, 0.0, True,
            )
            scale_prev = scale_r
            l1_prev = l1_r
            if hold_intercept and (q == INTERCEPT_SYNC - 1 or r == block_end - 1):
                _merge_intercept(RULE, B, own_B, snap_B, q + 1,
                                 eta * hp[_spec.INTERCEPT_RATE], step_t, hp)
                # (An element loop: ``own_B[:] = B`` compiled a shape check
                # whose error message took 3 s of compile.)
                for k in range(n_out):
                    for e in range(B.shape[2]):
                        own_B[0, k, e] = B[0, k, e]
                        snap_B[0, k, e] = B[0, k, e]
        blk = nxt
        since_merge += block_end - first
        since_warm += block_end - first
        if private and (since_merge >= PRIVATE_SYNC or blk >= n_blocks):
            # The hot columns, or every private one (the hot ones first: the same rows).
            warm = since_warm >= WARM_SYNC or blk >= n_blocks
            n_merged = hot.shape[0] if warm else n_hot
            MERGE(P, hot[:n_merged], base, snap_owner, c_const, hp, table_owner)
            since_merge = 0
            if warm:
                since_warm = 0
    keep_alive((z_owner, dl_owner, own_B_owner, snap_B_owner, table_owner,
                snap_owner))
    return lane_total


@njit(cache=True, inline="always", error_model="numpy")
def _whole_blocks_scale(seg_start, n, t, scale, l1_total, lam, hp, sched_id, block_scale,
                        block_l1):
    """The global scale before the first step of each whole block of a Hogwild segment
    that starts at position ``seg_start`` with ``scale`` (into ``block_scale``; the L1
    total, which stays ``l1_total`` without L1, into ``block_l1``), up to the block in
    which the scale would fall below ``MIN_SCALE``; returns the position after the last
    block filled and the scale there. Only without L1 (its total adds ``1/scale`` at
    every step: those steps are taken one by one, as the one-thread loop does).

    Each block's product of its steps' factors is taken on its own, the blocks side by
    side, so the products do not wait for each other (the compiler vectorizes them), and
    the block starts are their running product. One step after another, the pass was a
    chain of dependent multiplications (for sgd's ``optimal`` schedule, a division each
    as well) on one thread before the others start. A block start then differs from
    where the one-thread loop's scale is at that step by rounding.
    """
    n_whole = (n - seg_start) // HOGWILD_BLOCK
    product = np.ones(n_whole)
    first_step = t + seg_start + 1
    for i in range(HOGWILD_BLOCK):
        for b in range(n_whole):
            eta = learning_rate(sched_id, first_step + b * HOGWILD_BLOCK + i, hp)
            product[b] *= _decay_factor(eta, lam)
    for b in range(n_whole):
        after = scale * product[b]
        if after < _spec.MIN_SCALE:
            return seg_start + b * HOGWILD_BLOCK, scale
        block_scale[b] = scale
        block_l1[b] = l1_total
        scale = after
    return seg_start + n_whole * HOGWILD_BLOCK, scale


def _epoch_hogwild(indptr, indices, data, y, sw, order, P, B, G, hp, loss_id,
                   sched_id, t, n_threads, P_rows, recs, hot, n_hot):
    """One pass with lock-free threads (Hogwild, Niu et al. 2011); no averaging.

    Threads take the next block of ``HOGWILD_BLOCK`` positions from an atomic counter, so
    all threads work near the same step and the steps' scales they mix stay close, and a
    thread that is paused (by the OS, or a virtual machine's host) holds back one block,
    not a fixed share of them. The global scale and L1 total of each step follow from the
    step index, computed sequentially as the one-thread loop does; where the scale would
    fall below ``MIN_SCALE`` the pass is cut into segments and folded between them.
    Threads race on weights and optimizer state (by design), never on a global scalar.

    A template: compiled once per rule, with its ``RULE`` and its rule's thread loop
    ``LANE`` (``HOGWILD``, ``_for_rule``).
    """
    n = order.shape[0]
    lam, c_const = _weight_decay(RULE, hp)
    table_owner = rules.catch_up_table(RULE, hp, c_const)
    total_loss = 0.0
    # Every row writes the intercept: threads stepping it at once would pass its cache line
    # between the cores at every row. With two or more threads, each but the first (see
    # _lane_rows for why the first steps the shared one itself) steps a private copy for
    # INTERCEPT_SYNC rows, then merges its change into the shared one (_merge_intercept)
    # and copies it back: a thread sees the other threads' intercept steps up to
    # INTERCEPT_SYNC rows late. On tests/test_threads_and_order.py's data (5 seeds),
    # Adam's Hogwild test loss against one thread: +0.19% stepping the shared intercept
    # every row, +0.22% syncing every 16 rows, +3.2% every 64; stepping only the shared
    # one, late, so that a thread's own margins miss its last steps: +2.6% (3 seeds).
    hold_intercept = n_threads > 1 and hp[_spec.FIT_INTERCEPT] != 0.0
    # The work counter (see _llvm.fetch_add), reset for each segment. Made once, here:
    # made inside the segment loop, Numba's parallel pass handled it wrongly (an epoch
    # ran almost no rows; tests/test_threads_and_order.py checks every block runs).
    next_block = np.empty(2, dtype=np.int64)  # row blocks, then feature chunks
    # The scale and L1 total before the first step of each block: a thread steps them on
    # from there through its block, as the one-thread loop does from row to row. Kept
    # per block, not per row: filling arrays of every row's values took 5 ms per epoch
    # on full pypi_popular, on one thread before the others start. Without L1, from
    # products of the blocks' steps (_whole_blocks_scale): the pass over every step, one
    # after another, still took about 5 ms of a two-thread epoch (interleaved A/B, 8
    # rounds: sgd 56.4 -> 51.4 ms, adagrad 73.5 -> 68.9 ms); with L1, step by step, the
    # same operations in the same order as the one-thread loop, so the same numbers.
    block_scale = np.empty(n // HOGWILD_BLOCK + 1)
    block_l1 = np.empty(n // HOGWILD_BLOCK + 1)
    scale = G[_spec.G_SCALE]
    l1_total = G[_spec.G_L1_TOTAL]
    seg_start = 0
    while True:
        # A segment runs to the first step whose scale falls below MIN_SCALE (or to the
        # end); the fold after it sets the scale back to 1. (One segment, of no rows, for
        # an empty order: one flush site, as Adam's inlined catch-up is compile time.)
        seg_end = seg_start
        if hp[_spec.LAM1] == 0.0:
            seg_end, scale = _whole_blocks_scale(seg_start, n, t, scale, l1_total, lam,
                                                 hp, sched_id, block_scale, block_l1)
        while seg_end < n:
            if (seg_end - seg_start) % HOGWILD_BLOCK == 0:
                block_scale[(seg_end - seg_start) // HOGWILD_BLOCK] = scale
                block_l1[(seg_end - seg_start) // HOGWILD_BLOCK] = l1_total
            eta = learning_rate(sched_id, t + seg_end + 1, hp)
            scale, l1_total = _next_scale(scale, l1_total, eta, lam, hp)
            seg_end += 1
            if scale < _spec.MIN_SCALE:
                break
        # The segment's rows as a view: an argument of the literal 0 of the first
        # segment (its start) would compile the lane twice, for 0 and for int64.
        segment = order[seg_start:seg_end]
        lane_loss = np.zeros(n_threads)
        next_block[0] = 0
        next_block[1] = 0
        # Two phases of the same parallel loop: the rows, then the catch-up of every
        # feature to the segment's end (see _lane_rows).
        for settle in (False, True):
            for lane in prange(n_threads):
                lane_loss[lane] += LANE((
                    indptr, indices, data, y, sw, segment, P, B, hp, loss_id, sched_id,
                    t + seg_start, next_block, block_scale, block_l1, scale, l1_total,
                    table_owner, hold_intercept, settle, P_rows, recs, hot, n_hot, lane,
                    n_threads))
        total_loss += lane_loss.sum()
        # After the segment's last step and the threads' catch-up of every feature to
        # it, the rest of a flush as the one-thread loop does, its fold and penalty sums
        # on all threads.
        G[_spec.G_SCALE] = scale
        G[_spec.G_L1_TOTAL] = l1_total
        n_stored = _to_fold(RULE, P, G, hp)
        sum_sq, sum_abs, bad = fold_and_sum_threads(P, scale, n_stored, n_threads)
        sum_sq, sum_abs = _fold_done(G, B, sum_sq, sum_abs, bad)
        if seg_end >= n:
            break
        scale = G[_spec.G_SCALE]
        l1_total = G[_spec.G_L1_TOTAL]
        seg_start = seg_end
    keep_alive(table_owner)
    return t + n, total_loss, sum_sq, sum_abs


def _for_rule(template, name, rule, parallel=False, nogil=False, **names):
    """``template``, a Python function that reads the rule code from the global ``RULE``,
    compiled as ``name`` with ``RULE = rule`` (and the other globals ``names``).

    Numba folds a global into a constant, so the rule-specific branches of everything
    inlined into the copy are pruned before typing, as they would be for a literal in a
    wrapper ``epoch_sgd(...) = _epoch(SGD, ...)``. A wrapper, though, has Numba copy the
    fully inlined loop into it, and Numba's copy of inlined code takes time that grows with
    blocks x variables: for the epoch loop, 4.5 s of Adagrad's 7.9 s of inlining (commit
    4d4cd3e).
    Each copy has its own name, so Numba caches it in its own files.
    """
    scope = dict(template.__globals__, RULE=rule, **names)
    fn = types.FunctionType(template.__code__, scope, name, template.__defaults__)
    fn.__qualname__ = name
    fn.__doc__ = template.__doc__
    return njit(cache=True, error_model="numpy", parallel=parallel, nogil=nogil)(fn)


# One compiled loop per rule. They release the GIL: fits in several Python threads
# (joblib's threading backend, a grid search) run their epochs at once.
EPOCH = {name: _for_rule(_epoch, "epoch_" + name, rule.code, nogil=True)
         for name, rule in rules.RULES.items()}


# A Hogwild thread's loop over its rows, and the Hogwild loops: one per rule as well,
# compiled only when n_jobs != 1 is first used. A Hogwild loop calls its rule's thread loop,
# compiled on its own (``LANE``): Numba's parallel passes then see a loop of one call, not
# the inlined row step, and the Hogwild loops compiled in 13-17 s instead of 18-30 s
# (process CPU of a first call, fresh caches: sgd 20.8 -> 16.5 s, adam 29.9 -> 14.9 s,
# rmsprop 18.4 -> 13.0 s), the epochs as fast (interleaved A/B, 2 threads, median ratios
# 1.008-1.011).
_MERGE = {name: _for_rule(_merge_private, "merge_" + name, rule.code, nogil=True)
          for name, rule in rules.RULES.items()}
_LANE = {name: _for_rule(_lane_rows, "lane_" + name, rule.code, nogil=True,
                         MERGE=_MERGE[name])
         for name, rule in rules.RULES.items()}
HOGWILD = {name: _for_rule(_epoch_hogwild, "hogwild_" + name, rule.code, parallel=True,
                           LANE=_LANE[name])
           for name, rule in rules.RULES.items()}
