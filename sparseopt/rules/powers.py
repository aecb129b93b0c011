"""Powers ``base**k`` of a few fixed bases for any gap length ``k``, mostly without pow().

The timestamped rules (RMSProp, Adadelta, Adam) need ``rho**k`` or ``b1**k, b2**k, c**k``
for the gap ``k`` of every feature they touch; a pow() per nonzero was a large part of
their epoch. Half the nonzeros of hashed text have gaps above 1,000 steps, so a table of
short gaps alone is not enough: ``k = 1024*h + l`` reads ``base**(1024*h)`` and
``base**l`` from two tables and multiplies them (within about one rounding of pow());
only gaps beyond ``1024 * N_HIGH`` call pow().
"""

import numpy as np
from numba import njit

N_LOW = 1024
N_HIGH = 1024


@njit(cache=True, error_model="numpy")
def power_table(bases):
    """``table[l, i] = bases[i]**l`` for l < N_LOW, then ``bases[i]**(N_LOW*h)`` rows."""
    table = np.empty((N_LOW + N_HIGH, bases.shape[0]))
    for i in range(bases.shape[0]):
        for low in range(N_LOW):
            table[low, i] = bases[i] ** float(low)
        for high in range(N_HIGH):
            table[N_LOW + high, i] = bases[i] ** float(N_LOW * high)
    return table


# Not inlined by Numba (LLVM inlines it, it is small): inside Adam's inlined catch-up, a
# second level of Numba inlining raises NumbaIRAssumptionWarning at compile time.
@njit(cache=True, error_model="numpy")
def power(table, i, base, k):
    """``base**k`` where ``base`` is column ``i`` of ``table`` (``k >= 0``).

    Short gaps go through the product too, times ``base**0 = 1`` (exact): a branch on
    ``k < N_LOW`` went either way about as often, and its mispredictions cost more than
    the multiplication."""
    high = k // N_LOW
    if high < N_HIGH:
        return table[N_LOW + high, i] * table[k - high * N_LOW, i]
    return base ** float(k)
