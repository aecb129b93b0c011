"""Combine models trained from one start on different partitions: iterative parameter mixing.

A data-parallel round (``sparseopt.dask``) starts every partition from the same model,
runs the lazy kernel over each partition's rows, and combines the results here. Only
NumPy is needed: the rules are unit-tested without a cluster.

Notation: ``x0`` is a quantity of the start model, ``x_p`` the same quantity after
partition ``p``, ``a_p`` partition p's *mixing weight* for the coordinate: its share of the
coordinate's squared feature mass in the round, ``m_p = sum_i s_i*x_ij**2`` over the rows
it processed, normalized so that ``sum_p a_p = 1`` (uniform where no partition touched the
coordinate). The intercept is a feature of value 1 in every row: its mass is the rows'
weight.

Two kinds of state, two rules:

* **Points** (the weights and the exponential averages RMSProp, Adadelta and Adam keep)
  are mixed: ``x = sum_p a_p*x_p``. Averaging the weights is iterative parameter mixing
  (McDonald, Hall & Mann 2010), what Vowpal Wabbit's AllReduce does. Weighting by mass
  rather than plainly matters on sparse data: a feature seen on one partition only keeps
  that partition's weight, where a plain mean of K partitions would divide its update by
  K (the others hold the start value they never changed). Where the partitions saw a
  feature equally often, it is the plain mean. Vowpal Wabbit weights by each node's
  Adagrad accumulator for the same reason. An exponential average estimates a *mean* of
  recent (squared) gradients; K partitions give K estimates of it, so they are mixed like
  the weights, never summed: a sum would inflate the second moment K-fold (every later
  step sqrt(K) too short), and the increments of a decaying average are negative for
  features a partition did not see, so ``v0 + sum(v_p - v0)`` can even fall below zero.
* **Ledgers** (Adagrad's and FTRL's sums of squared gradients, the step counter, the L1
  running total and SGD's L1 records, the Polyak sums) count events: every gradient seen
  by any partition counts once, as on one machine that saw all the rows. So
  ``x = x0 + sum_p (x_p - x0)``. For Adagrad this keeps the per-coordinate rate
  ``eta/sqrt(v)`` at the one-machine value for the data seen so far: with the mean, a
  coordinate would keep a rate as if it had seen 1/K of its gradients, i.e. the rule
  would act as an ``eta0`` sqrt(K) times larger, a step size that changes with the
  number of workers. With the sum, ``eta0`` means the same on 1 or 100 workers. (VW's
  ``accumulate_weighted_avg`` keeps ``sum a_p*v_p``, between the mean and the max; the
  sum is what one machine has.)

Consequences, per optimizer (slot names of ``sparseopt.rules``):

======== ============================================================================
sgd      ``w`` mixed; L1 records ``q`` and running total: ledgers (a weight that every
         partition left nonzero owes no penalty); Polyak average: ledger of the weight
         sums and of the count (the average over every partition's iterates)
adagrad  ``w`` mixed; ``v`` ledger; ``snap`` set to the L1 total (every weight owes nothing:
         each partition's flush has applied its L1)
rmsprop  ``w``, ``v`` mixed; ``last`` (the feature's timestamp) a ledger
adadelta ``w``, ``v``, ``delta`` mixed; ``last`` a ledger
adam     ``w``, ``m``, ``v`` mixed; ``t`` and ``last`` ledgers, so bias corrections continue
         as on one machine
ftrl     ``n`` ledger; ``w`` mixed; ``z`` recomputed from the mixed ``w`` and the summed
         ``n`` (inverting the closed form), so ``w = f(z, n)`` holds as the kernel assumes.
         Summing ``z`` as well would be wrong: ``z ~ -w*sqrt(n)/eta0`` near a fixed point,
         so K partitions on the same data would give ``w*sqrt(K)``.
======== ============================================================================

Every model is *normalized* first: the global weight-decay scale is folded into the
stored weights (the engine's flush already does this whenever the scale moved) and the
lazy Polyak record settled, so that all arrays are in true units. The combined model has
scale 1 and every feature up to date at the combined step ``t``: each partition's flush
brought every feature up to its own step, so the timestamps in the records (slot
``last`` of RMSProp, Adadelta and Adam) are ledgers of the steps, like ``t``.
"""

import numpy as np

from . import _engine, _spec
from .rules import RULES, adagrad, ftrl, sgd

MIX = "mix"  # a point: mass-weighted mean of the partitions' values
LEDGER = "ledger"  # a count: start + sum of the partitions' increments

# How each slot of each rule combines; "snap" and FTRL's "z" are derived afterwards.
SLOT_RULES = {
    "sgd": {"w": MIX, "q": LEDGER, "avg": LEDGER},
    "adagrad": {"w": MIX, "snap": LEDGER, "v": LEDGER},
    "rmsprop": {"w": MIX, "v": MIX, "last": LEDGER},
    "adadelta": {"w": MIX, "v": MIX, "delta": MIX, "last": LEDGER},
    "adam": {"w": MIX, "m": MIX, "v": MIX, "last": LEDGER},
    "ftrl": {"w": MIX, "z": MIX, "n": LEDGER},
}


def normalized(model, settings=None):
    """A copy of a flushed ``LazyModel`` with scale 1 and the Polyak record in true units
    (and with the records of ``settings``, ``LazyModel.adapt_to``, if given).

    Mirrors the end of the engine's flush, which skips the fold when the scale is exactly
    1 (no weight decay): then the Polyak record is still relative to ``G_SCALE_SUM``.
    """
    model = model.copy()
    if settings is not None:
        model.adapt_to(settings)
    G = model.G
    stored = [s for s, name in enumerate(model.slots)
              if name in RULES[model.optimizer].module.STORED]
    if model.optimizer == "sgd" and G[_spec.G_SCALE_SUM] != 0.0:
        model.P[:, :, sgd.AVG] -= model.P[:, :, sgd.W] * G[_spec.G_SCALE_SUM]
        G[_spec.G_SCALE_SUM] = 0.0
    scale = G[_spec.G_SCALE]
    if scale != 1.0:
        model.P[:, :, stored] *= scale
        G[_spec.G_L1_TOTAL] *= scale
        G[_spec.G_SCALE] = 1.0
    return model


def mixing_weights(masses):
    """Per-coordinate shares ``a_p`` from per-partition masses, shape (K, ...) -> (K, ...).

    Uniform where every mass is zero (no partition touched the coordinate: every value is
    the start value, decayed alike).
    """
    masses = np.asarray(masses, dtype=np.float64)
    total = masses.sum(axis=0)
    untouched = total <= 0.0
    safe = np.where(untouched, 1.0, total)
    shares = masses / safe
    shares[:, untouched] = 1.0 / masses.shape[0]
    return shares


def _combine_records(start, parts, shares, rules):
    """Combine (rows, n_outputs, n_slots) record arrays slot by slot.

    ``shares`` broadcasts against (rows, n_outputs): (K, rows, 1) for features.
    """
    out = np.empty_like(start)
    for s, rule in enumerate(rules):
        values = np.stack([p[:, :, s] for p in parts])
        if rule == MIX:
            out[:, :, s] = np.sum(shares * values, axis=0)
        else:
            out[:, :, s] = start[:, :, s] + np.sum(values - start[:, :, s], axis=0)
    return out


def ftrl_z(w, n, hp, lam1, lam2):
    """The ``z`` for which FTRL's closed form gives weight ``w`` at accumulator ``n``.

    ``w = -(z - sign(z)*lam1) / D`` with ``D = (beta + sqrt(n))/eta0 + lam2`` inverts to
    ``z = -w*D - sign(w)*lam1`` where ``w != 0``. Where ``w == 0`` any ``|z| <= lam1``
    works; the caller keeps its mixed ``z`` clipped to that interval.
    """
    D = (hp[_spec.FTRL_BETA] + np.sqrt(n)) / hp[_spec.ETA0] + lam2
    return -w * D - np.sign(w) * lam1


def combine(start, models, feature_masses, intercept_masses, settings):
    """Combine models trained from ``start`` on K partitions into one.

    Parameters
    ----------
    start : LazyModel
        The model every partition started the round from (flushed).
    models : sequence of LazyModel
        The partitions' models after the round (each flushed by its ``run_epoch``), in
        partition order: the result depends on that order only through rounding, and is
        the same whichever worker computed which partition.
    feature_masses : array-like of shape (K, n_features)
        ``sum_i s_i*x_ij**2`` over the rows each partition processed in the round.
    intercept_masses : array-like of shape (K,)
        Sum of the sample weights of those rows.
    settings : Settings
        The hyperparameters the round ran with (FTRL's closed form needs them).

    Returns
    -------
    LazyModel
        Normalized (scale 1), with ``t = start.t + sum_p (t_p - start.t)`` and every
        feature up to date at step ``t``.
    """
    if not models:
        raise ValueError("combine needs at least one model")
    optimizer = start.optimizer
    if any(m.optimizer != optimizer for m in models):
        raise ValueError("all models must use the start model's optimizer")
    # With the records of the round's settings: the start's and those of partitions with
    # no rows (never run) may still have the slots of earlier settings.
    start = normalized(start, settings)
    parts = [normalized(m, settings) for m in models]
    rules = [SLOT_RULES[optimizer][name] for name in start.slots]

    feature_shares = mixing_weights(feature_masses)[:, :, None]
    intercept_shares = mixing_weights(np.asarray(intercept_masses, dtype=np.float64)[:, None])
    intercept_shares = intercept_shares[:, :, None]

    out = _engine.LazyModel.__new__(_engine.LazyModel)
    out.optimizer = optimizer
    out.slots = start.slots
    out.P = _combine_records(start.P, [m.P for m in parts], feature_shares, rules)
    out.B = _combine_records(start.B, [m.B for m in parts], intercept_shares, rules)
    out.G = start.G + np.sum([m.G - start.G for m in parts], axis=0)  # every G is a ledger
    out.G[_spec.G_SCALE] = 1.0
    out.G[_spec.G_SCALE_SUM] = 0.0
    out.t = int(start.t + sum(m.t - start.t for m in parts))

    if "snap" in out.slots:
        # Each partition's flush applied its L1 up to its own total: nothing is owed.
        out.P[:, :, adagrad.SNAP] = out.G[_spec.G_L1_TOTAL]
    elif optimizer == "ftrl":
        hp = settings.hp
        _set_ftrl_z(out.P, hp, hp[_spec.LAM1], hp[_spec.LAM])
        _set_ftrl_z(out.B, hp, 0.0, 0.0)  # the intercept is never penalized
    elif "avg" in out.slots:
        _mix_polyak_intercept(out, start, parts)
    return out


def _set_ftrl_z(R, hp, lam1, lam2):
    w = R[:, :, ftrl.W]
    z = R[:, :, ftrl.Z]  # the mixed z, kept (clipped) where the weight is zero
    R[:, :, ftrl.Z] = np.where(w != 0.0, ftrl_z(w, R[:, :, ftrl.N], hp, lam1, lam2),
                               np.clip(z, -lam1, lam1))


def _mix_polyak_intercept(out, start, parts):
    """The intercept's Polyak record: its sum of iterates is a ledger, its weight mixed.

    The intercept keeps ``A`` with average ``(b*n - A)/n`` (``n`` steps averaged), so the
    sum of its iterates is ``S = b*n - A``; S and n are ledgers, b is mixed, and ``A`` is
    rebuilt as ``b*n - S``.
    """
    avg = sgd.AVG
    count = _spec.G_AVG_COUNT

    def iterate_sum(m):
        return m.B[0, :, 0] * m.G[count] - m.B[0, :, avg]

    S = iterate_sum(start) + sum(iterate_sum(m) - iterate_sum(start) for m in parts)
    out.B[0, :, avg] = out.B[0, :, 0] * out.G[count] - S
