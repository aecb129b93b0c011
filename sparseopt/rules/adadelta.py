"""Adadelta (Zeiler 2012).

Dense rule for a weight ``w`` with running mean squares ``v`` of gradients and ``delta``
of steps (decay ``rho``; ``eta`` is 1 in the paper)::

    v = rho*v + (1 - rho)*g**2
    d = sqrt(delta + eps) / sqrt(v + eps) * g
    w = c*w - eta*d
    delta = rho*delta + (1 - rho)*d**2

An untouched weight has ``d = 0``: k missed steps multiply ``v`` and ``delta`` by
``rho**k``.
"""

import math

from numba import njit

NAME = "adadelta"
SLOTS = ("w", "v", "delta", "last")  # "last": the timestamp, always the final slot
STORED = ("w",)  # slots that scale with the global weight-decay scale
W, V, DELTA = 0, 1, 2


@njit(cache=True, inline="always", error_model="numpy")
def catch_up(P, j, k, decay):
    """``decay`` is ``rho**missed``, computed once per feature."""
    P[j, k, V] *= decay
    P[j, k, DELTA] *= decay


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, eta, inv_scale, rho, eps):
    v = rho * P[j, k, V] + (1.0 - rho) * g * g
    P[j, k, V] = v
    # sqrt(delta + eps) / sqrt(v + eps) as one square root of the ratio: the same to
    # rounding, one square root fewer per nonzero (the epoch measured 7% faster).
    d = math.sqrt((P[j, k, DELTA] + eps) / (v + eps)) * g
    P[j, k, W] -= eta * inv_scale * d
    P[j, k, DELTA] = rho * P[j, k, DELTA] + (1.0 - rho) * d * d
