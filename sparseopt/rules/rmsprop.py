"""RMSProp (Tieleman & Hinton 2012).

Dense rule for a weight ``w`` with running mean square ``v`` (decay ``rho``)::

    v = rho*v + (1 - rho)*g**2
    w = c*w - eta*g / (sqrt(v) + eps)

While a weight is untouched its step is zero and ``v`` decays: k missed steps are one
multiplication by ``rho**k``, read off the feature's timestamp.
"""

import math

from numba import njit

NAME = "rmsprop"
SLOTS = ("w", "v", "last")  # "last": the timestamp, always the final slot
STORED = ("w",)  # slots that scale with the global weight-decay scale
W, V = 0, 1


@njit(cache=True, inline="always", error_model="numpy")
def catch_up(P, j, k, decay):
    """``decay`` is ``rho**missed``, computed once per feature."""
    P[j, k, V] *= decay


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, eta, inv_scale, rho, eps):
    v = rho * P[j, k, V] + (1.0 - rho) * g * g
    P[j, k, V] = v
    P[j, k, W] -= eta * inv_scale * g / (math.sqrt(v) + eps)
