"""Adagrad (Duchi, Hazan & Singer 2011), with L1 by composite mirror descent.

Dense rule for a weight ``w`` with squared-gradient sum ``v`` at step t::

    v += g**2
    w = c*w - eta*g / (sqrt(v) + eps)
    w = sign(w) * max(|w| - eta*lam1 / (sqrt(v) + eps), 0)      # only with L1

An untouched weight keeps ``v``, so its step is zero and k missed L1 thresholds add up
to one threshold of ``sum eta_s*lam1_s / (sqrt(v) + eps)``. The sum is the engine's
global running L1 total in stored units (``sum eta_s*lam1_s/scale_s``); each weight keeps
a snapshot ``snap`` of it from its last touch. Without L1 the record has no ``snap``:
16 bytes per feature, not 24, so that no record straddles two cache lines (see
``layout``).
"""

import math

from numba import njit

NAME = "adagrad"
SLOTS = ("w", "snap", "v")
STORED = ("w", "snap")  # scale with the global weight-decay scale
W, SNAP = 0, 1  # and v, the last slot (see ``v_slot``)


def layout(lam1, average):
    """The slots of a record: the weight and ``v`` (16 bytes, a quarter of a cache line),
    with the L1 snapshot between them only when L1 runs."""
    return SLOTS if lam1 > 0.0 else ("w", "v")


@njit(cache=True, inline="always", error_model="numpy")
def v_slot(P):
    return P.shape[2] - 1


@njit(cache=True, inline="always", error_model="numpy")
def soft_threshold(P, j, k, threshold):
    w = P[j, k, W]
    if w > threshold:
        P[j, k, W] = w - threshold
    elif w < -threshold:
        P[j, k, W] = w + threshold
    else:
        P[j, k, W] = 0.0


@njit(cache=True, inline="always", error_model="numpy")
def catch_up(P, j, k, lam1, eps, l1_total):
    if lam1 > 0.0:
        owed = l1_total - P[j, k, SNAP]
        soft_threshold(P, j, k, owed / (math.sqrt(P[j, k, v_slot(P)]) + eps))
        P[j, k, SNAP] = l1_total


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, eta, inv_scale, lam1, eps, l1_total):
    V = v_slot(P)
    v = P[j, k, V] + g * g
    P[j, k, V] = v
    rate = eta * inv_scale / (math.sqrt(v) + eps)
    P[j, k, W] -= rate * g
    if lam1 > 0.0:
        soft_threshold(P, j, k, lam1 * rate)
        P[j, k, SNAP] = l1_total
