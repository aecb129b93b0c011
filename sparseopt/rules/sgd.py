"""Plain SGD, with the cumulative L1 penalty of Tsuruoka et al. (2009).

Dense rule for a weight ``w`` at step t (``c = 1 - eta*lam`` is the decoupled decay)::

    w = c*w - eta*g

L1 (as scikit-learn's ``SGDClassifier``): a running budget ``U = sum eta_s*lam1_s`` (the
engine's L1 total, ``lam1`` folded in, so a ``lam1`` changed between calls prices each
step at its own strength) and a per-weight record ``q`` of the penalty actually applied;
after each step the weight is clipped towards zero by what it is still owed, never past
zero. Both are kept in stored (unscaled) units, ``sum eta_s*lam1_s/scale_s``, which is
what makes the lazy form exact when weight decay runs too: the clip commutes with the
global scale.

Nothing happens to an untouched weight but the global decay, so SGD needs no catch-up
beyond settling the pending L1 clip.

Polyak averaging (``average``), lazily as in scikit-learn's ASGD: the average of
``w_s = scale_s*u_s`` over the averaged steps is ``(u*sum_s scale_s - a)/n``, where each
change ``delta`` of ``u`` at step r adds ``delta * sum_{s<r} scale_s`` to the weight's
record ``a`` (slot ``avg``). Exact only when untouched weights do not change ``u``, so
it is offered without L1.
"""

from numba import njit

NAME = "sgd"
SLOTS = ("w", "q", "avg")
STORED = ("w", "q")  # scale with the global weight-decay scale; avg is in true units
# A record holds the slots its settings use (see ``layout``): L1 and averaging never run
# together, so "q" and "avg" share the second slot.
W, Q, AVG = 0, 1, 1


def layout(lam1, average):
    """The slots of a record: the weight alone (8 bytes per feature) unless L1 or
    averaging needs its record."""
    if lam1 > 0.0:
        return ("w", "q")
    if average:
        return ("w", "avg")
    return ("w",)


@njit(cache=True, error_model="numpy")
def cumulative_l1(P, j, k, budget):
    """Clip weight (j, k) towards zero by the L1 budget it has not received yet."""
    w = P[j, k, W]
    q = P[j, k, Q]
    if w > 0.0:
        new = max(0.0, w - (budget + q))
    elif w < 0.0:
        new = min(0.0, w + (budget - q))
    else:
        return
    P[j, k, Q] = q + (new - w)
    P[j, k, W] = new


@njit(cache=True, inline="always", error_model="numpy")
def catch_up(P, j, k, lam1, l1_total):
    if lam1 > 0.0:
        cumulative_l1(P, j, k, l1_total)


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, eta, inv_scale, lam1, l1_total):
    P[j, k, W] -= eta * g * inv_scale
    if lam1 > 0.0:
        cumulative_l1(P, j, k, l1_total)
