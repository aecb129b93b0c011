"""Adam (Kingma & Ba 2015) with decoupled weight decay, i.e. AdamW when ``lam > 0``.

Dense rule for a weight ``w`` with moments ``m, v`` at step t::

    m = b1*m + (1 - b1)*g
    v = b2*v + (1 - b2)*g**2
    w = c*w - eta * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)

Unlike every other rule, an untouched weight keeps moving: its momentum decays but is
not zero. Over k missed steps ``m`` and ``v`` shrink by ``b1**k`` and ``b2**k`` and the
weight moves by ``sum_s eta*mh_s/(sqrt(vh_s)+eps)``. That sum has no closed form with
``eps`` and the bias corrections, but its terms shrink geometrically (ratio at most about
``b1/sqrt(b2)``), so ``catch_up`` adds them until one is below 1e-18 of the weight: exact
to rounding. This is Adam; the "frozen moments" variant of PyTorch's ``SparseAdam`` is a
different optimizer and is not offered.
"""

import math

from numba import njit

NAME = "adam"
SLOTS = ("w", "m", "v")
N_STORED_UNITS = 1
W, M, V = 0, 1, 2

# A term this much smaller than the weight, followed by a geometric tail with ratio
# below ~0.9, changes the weight by less than one rounding error.
_NEGLIGIBLE = 1e-18


@njit(cache=True)
def catch_up(P, j, k, missed, last, eta, inv_scale, c, b1, b2, eps):
    """Replay ``missed`` steps with zero gradient after step ``last``.

    ``inv_scale`` is 1/scale at the end of the missed steps and ``c`` the constant decay
    factor of one step; the stored weight moves by ``eta*step_s/scale_s``.
    """
    m = P[j, k, M]
    v = P[j, k, V]
    if m != 0.0:
        u = P[j, k, W]
        # Terms relative to the weight shrink by about b1/(c*sqrt(b2)) per step; only
        # when that ratio is below one may the loop stop before the end.
        may_stop = b1 < c * math.sqrt(b2)
        s = last + 1.0
        p1 = b1**s
        p2 = b2**s
        mm = m * b1
        vv = v * b2
        to_stored = inv_scale * c ** (missed - 1)
        for _ in range(missed):
            term = eta * to_stored * (mm / (1.0 - p1)) / (math.sqrt(vv / (1.0 - p2)) + eps)
            u -= term
            if may_stop and abs(term) <= _NEGLIGIBLE * abs(u):
                break
            mm *= b1
            vv *= b2
            p1 *= b1
            p2 *= b2
            to_stored /= c
        P[j, k, W] = u
    P[j, k, M] = m * b1**missed
    P[j, k, V] = v * b2**missed


@njit(cache=True)
def step(P, j, k, g, eta, inv_scale, b1, b2, eps, bc1, bc2):
    """``bc1 = 1 - b1**t`` and ``bc2 = 1 - b2**t`` are computed once per row."""
    m = b1 * P[j, k, M] + (1.0 - b1) * g
    v = b2 * P[j, k, V] + (1.0 - b2) * g * g
    P[j, k, M] = m
    P[j, k, V] = v
    P[j, k, W] -= eta * inv_scale * (m / bc1) / (math.sqrt(v / bc2) + eps)
