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
to rounding. The bias corrections of the steps that have them are tabulated once per
epoch, so each added term costs one division (``replay_gap``). This is Adam; the "frozen
moments" variant of PyTorch's ``SparseAdam`` is a different optimizer and is not offered.

Once both bias corrections are 1 in floating point (after about 37,000 steps with the
default betas), the sum needs no loop. Step i of a gap moves the stored weight by
``B * r**i / (sqrt(v)*q**i + eps)`` (``r = b1/c``, ``q = sqrt(b2)``). Writing the
denominator as ``(sqrt(v) + eps) * (1 - rho*d_i)`` with ``rho = sqrt(v)/(sqrt(v) + eps)``
and ``d_i = 1 - q**i`` gives ``B/(sqrt(v) + eps) * sum_n rho**n * M_n(L)`` with
``M_n(L) = sum_{i<=L} r**i * d_i**n``: numbers that depend on the betas and the gap
length only, tabulated once per epoch (``catch_up_table``). The weights ``r**i`` die
out long before ``d_i`` grows, so a dozen positive terms reach rounding for the default
betas (the table is built only where they do), at any ``eps``. For other betas, two
alternating expansions (``geometric_catch_up``) cover eps small or large against
sqrt(v); where none is exact to rounding, the loop runs.
"""

import math

import numpy as np
from numba import njit

from .powers import power, power_table

NAME = "adam"
SLOTS = ("w", "m", "v", "last")  # "last": the timestamp, always the final slot
STORED = ("w",)  # slots that scale with the global weight-decay scale
W, M, V = 0, 1, 2

# A term this much smaller than the weight, followed by a geometric tail with ratio
# below ~0.9, changes the weight by less than one rounding error.
_NEGLIGIBLE = 1e-18


# 1 - b**s == 1.0 exactly in float64 once b**s is below half an ulp of 1.
_BIAS_FREE = 2.0**-54
# The expansion 1/(1+x) = 1 - x + x^2 - ... is used only while x stays below this.
_MAX_X = 0.2
_MAX_TERMS = 30
# The table's series: at most this many terms, built only if its last term is below
# _TABLE_TOL of its first for every gap length (with rho = 1, the worst case).
_TABLE_TERMS = 24
_TABLE_TOL = 1e-17


@njit(cache=True, error_model="numpy")
def first_bias_free(b1, b2):
    """The first step ``s`` with ``b1**s`` and ``b2**s`` both below ``_BIAS_FREE``.

    From the logarithms, then corrected by a step either way where pow() rounds across
    (counting up from 1 took a second per epoch for ``b2 = 0.999999``).
    """
    first = 1
    for b in (b1, b2):
        if b > 0.0:
            first = max(first, int(math.ceil(math.log(_BIAS_FREE) / math.log(b))))
    while not (b1 ** float(first) < _BIAS_FREE and b2 ** float(first) < _BIAS_FREE):
        first += 1
    while first > 1 and (b1 ** float(first - 1) < _BIAS_FREE
                         and b2 ** float(first - 1) < _BIAS_FREE):
        first -= 1
    return first


# Rows of the bias-correction table at most (16 MB): betas that need more (b2 above about
# 0.99999) compute the corrections of later steps with pow() in the replay.
_MAX_BIAS_ROWS = 2**20


@njit(cache=True, error_model="numpy")
def catch_up_table(b1, b2, c):
    """What ``catch_up`` reads often, computed once per epoch: ``(powers, sums, first,
    bias)``.

    ``powers`` tabulates ``b1**k, b2**k, c**k`` (``powers.power_table``).
    ``first`` is the first step whose bias corrections are 1 in float64.
    ``sums[L, n] = M_n(L) = sum_{i=1..L} (b1/c)**i * (1 - sqrt(b2)**i)**n``, or 0x0. Rows
    go up to the gap length after which the remaining terms are below 1e-18 of the sum
    (longer gaps use the last row); columns up to the first ``n`` whose term is below
    ``_TABLE_TOL`` of ``M_0``. Empty when no such ``n <= _TABLE_TERMS`` exists (then
    ``catch_up`` uses the other methods).
    ``bias[s] = (1/(1 - b1**s), 1/sqrt(1 - b2**s))`` for the steps ``s < first`` (at most
    ``_MAX_BIAS_ROWS``), the bias corrections that ``replay_gap`` reads.
    """
    powers = power_table(np.array([b1, b2, c]))
    first = first_bias_free(b1, b2)
    bias = np.ones((min(first, _MAX_BIAS_ROWS), 2))
    for s in range(1, bias.shape[0]):
        bias[s, 0] = 1.0 / (1.0 - b1 ** float(s))
        bias[s, 1] = 1.0 / math.sqrt(1.0 - b2 ** float(s))
    r = b1 / c
    log_q = 0.5 * math.log(b2)
    ratio = r / math.exp(log_q)  # the terms' worst-case ratio, (sqrt(v) small)
    if not (0.0 < ratio < 0.99):
        return powers, np.zeros((0, 0)), first, bias
    n_rows = int(math.ceil(math.log(_NEGLIGIBLE * (1.0 - ratio)) / math.log(ratio))) + 1
    sums = np.zeros((n_rows, _TABLE_TERMS + 1))
    r_i = 1.0
    for i in range(1, n_rows):
        r_i *= r
        d_i = -math.expm1(i * log_q)  # 1 - q**i without cancellation
        d_n = 1.0
        for n in range(_TABLE_TERMS + 1):
            sums[i, n] = sums[i - 1, n] + r_i * d_n
            d_n *= d_i
    longest = sums[n_rows - 1]
    for n in range(1, _TABLE_TERMS + 1):
        if longest[n] < _TABLE_TOL * longest[0]:
            return powers, sums[:, : n + 1].copy(), first, bias
    return powers, np.zeros((0, 0)), first, bias


@njit(cache=True, error_model="numpy")  # LLVM inlines it (see powers.power)
def table_sum(T, L, rho):
    """``sum_n rho**n * T[L, n]`` by Horner's rule (all terms positive: no cancellation)."""
    row = min(L, T.shape[0] - 1)
    total = 0.0
    for n in range(T.shape[1] - 1, -1, -1):
        total = total * rho + T[row, n]
    return total


@njit(cache=True, error_model="numpy")
def geometric_sum(q, n):
    """``q + q**2 + ... + q**n`` for ``0 < q``, ``q`` not too close to 1."""
    return q * (1.0 - q ** float(n)) / (1.0 - q)


@njit(cache=True, error_model="numpy")
def _series(A, r, x0, p, L):
    """``A * sum_{i=1..L} r**i / (1 + x0*p**i)`` as an alternating series, or NaN.

    ``1/(1+x) = 1 - x + x**2 - ...`` turns the sum into geometric sums of ratio
    ``r*p**n``; it is used only while every ``x0*p**i`` stays below ``_MAX_X``, and
    stopped once the next term is below 1e-18 of the sum.
    """
    x_max = x0 * max(p, p ** float(L))
    if not x_max < _MAX_X:
        return math.nan
    total = 0.0
    coef = 1.0
    q = r
    for n in range(_MAX_TERMS):
        if abs(1.0 - q) < 0.01:
            return math.nan
        total += coef * geometric_sum(q, L)
        if x_max ** (n + 1) < 1e-18:
            return A * total
        coef *= -x0
        q *= p
    return math.nan


@njit(cache=True, error_model="numpy")
def geometric_catch_up(u, m, v, missed, eta, inv_scale, c, b1, b2, eps):
    """Sum of the missed steps' moves in closed form, or NaN when not exact to rounding.

    With bias corrections equal to 1, step i of the gap moves the stored weight by
    ``B * (b1/c)**i / (sqrt(v)*b2**(i/2) + eps)`` with ``B = eta*inv_scale*c**missed*m``.
    Only the first L steps matter (the rest are below 1e-18 of the weight). Two
    expansions of the denominator give a short series of geometric sums:
    when ``eps`` is small against ``sqrt(v)``, ``1/(sqrt(v)*b2**(i/2)) * 1/(1 + x)`` with
    ``x = eps/(sqrt(v)*b2**(i/2))``; when ``eps`` dominates (large damping, long gaps),
    ``1/eps * 1/(1 + y)`` with ``y = sqrt(v)*b2**(i/2)/eps``. The smaller expansion
    variable wins; in between, the caller loops.
    """
    if v <= 0.0:
        return math.nan
    sqrt_v = math.sqrt(v)
    B = eta * inv_scale * c ** float(missed) * m
    if B == 0.0:
        return 0.0  # the momentum has underflowed: nothing moves
    r_eps = b1 / c  # the ratio of the terms when eps dominates
    r_v = r_eps / math.sqrt(b2)  # ... and when sqrt(v) dominates (the larger one)
    if not r_v < 0.99:
        return math.nan
    # Terms are at most |B|/eps * r_eps**i and |B|/sqrt(v) * r_v**i: find the step after
    # which the rest sums to less than 1e-18 of the weight.
    bound = min(abs(B) / eps, abs(B) / sqrt_v)
    ratio = r_eps if abs(B) / eps <= abs(B) / sqrt_v else r_v
    scale_ref = max(abs(u), bound)
    needed = math.log(_NEGLIGIBLE * scale_ref * (1.0 - ratio) / bound) / math.log(ratio)
    L = min(missed, max(1, int(math.ceil(needed))))
    if eps < sqrt_v:
        move = _series(B / sqrt_v, r_v, eps / sqrt_v, 1.0 / math.sqrt(b2), L)
    else:
        move = _series(B / eps, r_eps, sqrt_v / eps, math.sqrt(b2), L)
    return move


@njit(cache=True, inline="always", error_model="numpy")
def catch_up(P, j, k, missed, last, eta, inv_scale, c, b1, b2, eps, tables):
    """Replay ``missed`` steps with zero gradient after step ``last``.

    ``inv_scale`` is 1/scale at the end of the missed steps and ``c`` the constant decay
    factor of one step; the stored weight moves by ``eta*step_s/scale_s``. ``tables`` is
    ``catch_up_table(b1, b2, c)``. The table's closed form is the common case and is
    inlined; the other methods are not (see ``catch_up_gap``).
    """
    powers, sums, first, bias = tables
    m = P[j, k, M]
    v = P[j, k, V]
    if m != 0.0:
        bias_free = last + 1 >= first
        if bias_free and sums.shape[0] > 0:
            sqrt_v = math.sqrt(v)
            inv = 1.0 / (sqrt_v + eps)
            B = eta * inv_scale * power(powers, 2, c, missed) * m
            P[j, k, W] -= B * inv * table_sum(sums, missed, sqrt_v * inv)
        else:
            catch_up_gap(P, j, k, m, v, missed, last, eta, inv_scale, c, b1, b2, eps,
                         bias_free, bias)
    P[j, k, M] = m * power(powers, 0, b1, missed)
    P[j, k, V] = v * power(powers, 1, b2, missed)


# Not inlined: the rare slow paths stay out of the epoch loop's body.
@njit(cache=True, error_model="numpy")
def catch_up_gap(P, j, k, m, v, missed, last, eta, inv_scale, c, b1, b2, eps, bias_free,
                 bias):
    """The weight's move over a gap without the table: a closed form where one is exact
    to rounding (``geometric_catch_up``, bias corrections 1), else the steps one by one."""
    if bias_free:
        move = geometric_catch_up(P[j, k, W], m, v, missed, eta, inv_scale, c, b1, b2, eps)
        if not math.isnan(move):
            P[j, k, W] -= move
            return
    replay_gap(P, j, k, m, v, missed, last, eta, inv_scale, c, b1, b2, eps, bias)


@njit(cache=True, error_model="numpy")
def replay_gap(P, j, k, m, v, missed, last, eta, inv_scale, c, b1, b2, eps, bias):
    """The missed steps' moves one by one, until a term is below 1e-18 of the weight.

    Step ``i`` of the gap (step ``s = last + i``) moves the stored weight by
    ``A * r**i / (1 - b1**s) / (sqrt(v) * q**i / sqrt(1 - b2**s) + eps)`` with
    ``A = eta * inv_scale * c**missed * m``, ``r = b1/c`` and ``q = sqrt(b2)``: the two
    powers are carried from step to step and the bias corrections read from ``bias``
    (``catch_up_table``), so a step costs one division. Computing the corrections in the
    loop, a step cost four divisions and a square root: with small data every gap falls in
    the first ~37,000 steps, and Adam's epochs on 10,000 rows were spent here.
    """
    u = P[j, k, W]
    # Terms relative to the weight shrink by about b1/(c*sqrt(b2)) per step; only
    # when that ratio is below one may the loop stop before the end.
    may_stop = b1 < c * math.sqrt(b2)
    r = b1 / c
    q = math.sqrt(b2)
    a = eta * inv_scale * c ** float(missed) * m
    sv = math.sqrt(v)
    n_bias = bias.shape[0]
    for i in range(1, missed + 1):
        s = last + i
        a *= r
        sv *= q
        if s < n_bias:
            term = a * bias[s, 0] / (sv * bias[s, 1] + eps)
        else:  # past the table: betas too close to 1 for it
            term = (a / (1.0 - b1 ** float(s))
                    / (sv / math.sqrt(1.0 - b2 ** float(s)) + eps))
        u -= term
        if may_stop and abs(term) <= _NEGLIGIBLE * abs(u):
            break
    P[j, k, W] = u


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, eta, inv_scale, b1, b2, eps, bc1, bc2):
    """``bc1 = 1 - b1**t`` and ``bc2 = 1 - b2**t`` are computed once per row."""
    m = b1 * P[j, k, M] + (1.0 - b1) * g
    v = b2 * P[j, k, V] + (1.0 - b2) * g * g
    P[j, k, M] = m
    P[j, k, V] = v
    if bc2 == 1.0 and bc1 == 1.0:  # after the first ~37,000 steps: two divisions fewer
        P[j, k, W] -= eta * inv_scale * m / (math.sqrt(v) + eps)
    else:
        P[j, k, W] -= eta * inv_scale * (m / bc1) / (math.sqrt(v / bc2) + eps)
