"""Losses of the margin: value and derivative, one small function pair per loss.

All functions are numerically safe for margins of any size: no ``exp`` of a large
positive number and no ``log(0)``. ``row_loss_grad`` is what the kernels call once per
row; it fills ``dl[k]`` with the derivative of the loss with respect to margin ``k`` and
returns the loss value. With one output and the log loss they inline
``log_loss_and_dloss`` instead.

Targets: regression losses take the real target; classification losses take the class
index. With one output the index is the binary target in {0, 1}; with K > 1 outputs and a
binary loss, output ``k`` is the one-vs-rest problem "class == k"; ``multinomial`` uses
all K outputs together (softmax).
"""

import math

import numpy as np
from numba import njit

from . import _spec


@njit(cache=True, inline="always", error_model="numpy")
def log_loss_and_dloss(z, target):
    """``-log p(target)`` with ``p = sigmoid(z)``, and its derivative ``p - target``.

    Both from one ``e = exp(-|z|)``, never of a positive number: the loss as
    ``log1p(e) + max(z, 0) - target*z``, ``p`` as ``1/(1 + e)`` or ``e/(1 + e)``. (The
    loss and the sigmoid each took their own ``exp``: a second one in every row.)
    """
    e = math.exp(-abs(z))
    p = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
    return math.log1p(e) + max(z, 0.0) - target * z, p - target


@njit(cache=True, inline="always", error_model="numpy")
def hinge(z, target):
    ys = 2.0 * target - 1.0
    return max(0.0, 1.0 - ys * z)


@njit(cache=True, inline="always", error_model="numpy")
def hinge_dloss(z, target):
    ys = 2.0 * target - 1.0
    # scikit-learn's Hinge(threshold=1) takes the subgradient -y at the kink itself.
    return -ys if ys * z <= 1.0 else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def modified_huber(z, target):
    m = (2.0 * target - 1.0) * z
    if m >= 1.0:
        return 0.0
    if m >= -1.0:
        return (1.0 - m) * (1.0 - m)
    return -4.0 * m


@njit(cache=True, inline="always", error_model="numpy")
def modified_huber_dloss(z, target):
    ys = 2.0 * target - 1.0
    m = ys * z
    if m >= 1.0:
        return 0.0
    if m >= -1.0:
        return -2.0 * ys * (1.0 - m)
    return -4.0 * ys


@njit(cache=True, inline="always", error_model="numpy")
def squared_error(z, y):
    r = z - y
    return 0.5 * r * r


@njit(cache=True, inline="always", error_model="numpy")
def squared_error_dloss(z, y):
    return z - y


@njit(cache=True, inline="always", error_model="numpy")
def huber(z, y, c):
    r = abs(z - y)
    if r <= c:
        return 0.5 * r * r
    return c * r - 0.5 * c * c


@njit(cache=True, inline="always", error_model="numpy")
def huber_dloss(z, y, c):
    r = z - y
    if abs(r) <= c:
        return r
    return c if r > 0.0 else -c


@njit(cache=True, inline="always", error_model="numpy")
def epsilon_insensitive(z, y, c):
    return max(0.0, abs(y - z) - c)


@njit(cache=True, inline="always", error_model="numpy")
def epsilon_insensitive_dloss(z, y, c):
    if y - z > c:
        return -1.0
    if z - y > c:
        return 1.0
    return 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _binary_loss_grad(loss_id, z, target, c):
    """Loss value and derivative of one scalar output."""
    if loss_id == _spec.LOG_LOSS:
        return log_loss_and_dloss(z, target)
    if loss_id == _spec.SQUARED_ERROR:
        return squared_error(z, target), squared_error_dloss(z, target)
    if loss_id == _spec.HINGE:
        return hinge(z, target), hinge_dloss(z, target)
    if loss_id == _spec.MODIFIED_HUBER:
        return modified_huber(z, target), modified_huber_dloss(z, target)
    if loss_id == _spec.HUBER:
        return huber(z, target, c), huber_dloss(z, target, c)
    return epsilon_insensitive(z, target, c), epsilon_insensitive_dloss(z, target, c)


@njit(cache=True, error_model="numpy")
def row_loss_grad(loss_id, z, y, c, dl):
    """Fill ``dl`` with d loss / d z_k for the margins ``z`` of one row; return the loss.

    ``z`` and ``dl`` have one entry per output; ``c`` is the huber/epsilon parameter.
    """
    n_out = z.shape[0]
    if loss_id == _spec.MULTINOMIAL:
        zmax = z[0]
        for k in range(1, n_out):
            zmax = max(zmax, z[k])
        total = 0.0
        for k in range(n_out):
            dl[k] = math.exp(z[k] - zmax)
            total += dl[k]
        label = int(y)
        for k in range(n_out):
            dl[k] /= total
        dl[label] -= 1.0
        return zmax + math.log(total) - z[label]
    if n_out == 1:
        value, dl[0] = _binary_loss_grad(loss_id, z[0], y, c)
        return value
    # K > 1 with a binary loss: independent one-vs-rest outputs.
    value = 0.0
    label = int(y)
    for k in range(n_out):
        target = 1.0 if k == label else 0.0
        v, dl[k] = _binary_loss_grad(loss_id, z[k], target, c)
        value += v
    return value


def dloss_at(loss, z, y, c=0.1):
    """Derivative of a scalar loss at one margin, in plain Python (for schedules)."""
    zz = np.array([float(z)])
    dl = np.zeros(1)
    row_loss_grad(_spec.LOSSES[loss], zz, float(y), float(c), dl)
    return float(dl[0])
