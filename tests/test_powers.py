"""``rules.powers.power``: ``base**k`` for any gap length, from two tables."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparseopt.rules.powers import N_HIGH, N_LOW, power, power_table

BASES = np.array([0.999, 0.9, 0.5, 1.0 - 1e-7])
TABLE = power_table(BASES)


@settings(max_examples=300, deadline=None)
@given(i=st.integers(0, len(BASES) - 1),
       k=st.one_of(st.integers(0, 3 * N_LOW), st.integers(0, 2 * N_LOW * N_HIGH)))
def test_power_is_pow_to_a_few_roundings(i, k):
    base = BASES[i]
    got = power(TABLE, i, base, k)
    want = base ** float(k)
    if want < 1e-300:  # a product of two tables can underflow a little earlier
        assert got <= 1e-290
    else:
        assert abs(got - want) <= 4 * np.spacing(want), (base, k, got, want)


def test_short_gaps_are_the_table_itself():
    # A gap under N_LOW goes through the product with base**0, which is exactly 1: the
    # values are the table's, as they were when short gaps were read directly.
    assert np.all(TABLE[N_LOW] == 1.0)
    for i, base in enumerate(BASES):
        for k in (0, 1, 2, 17, N_LOW - 1):
            assert power(TABLE, i, base, k) == TABLE[k, i]
    assert power(TABLE, 0, BASES[0], 0) == 1.0
