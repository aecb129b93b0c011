"""FTRL-Proximal (McMahan et al. 2013), per-coordinate learning rates.

Dense rule for a weight with state ``z, n`` (``a`` = ``eta0``, the paper's alpha;
``beta`` = ``ftrl_beta``; ``lam2`` = the L2 strength, inside the closed form, not a
decay)::

    sigma = (sqrt(n + g**2) - sqrt(n)) / a
    z += g - sigma*w
    n += g**2
    w = 0 if |z| <= lam1 else -(z - sign(z)*lam1) / ((beta + sqrt(n))/a + lam2)

The weight is a function of ``z`` and ``n``, which do not move while it is untouched:
nothing to catch up. The stored ``w`` is kept equal to that function.
"""

import math

from numba import njit

NAME = "ftrl"
SLOTS = ("w", "z", "n")
STORED = ()  # FTRL's L2 is in its closed form: the global decay never runs
W, Z, N = 0, 1, 2


@njit(cache=True, inline="always", error_model="numpy")
def step(P, j, k, g, a, beta, lam1, lam2):
    n = P[j, k, N]
    n_new = n + g * g
    sqrt_new = math.sqrt(n_new)
    sigma = (sqrt_new - math.sqrt(n)) / a
    z = P[j, k, Z] + g - sigma * P[j, k, W]
    P[j, k, Z] = z
    P[j, k, N] = n_new
    # z shrunk towards 0 by lam1, 0 where |z| <= lam1; ``0.0 -`` turns -0.0 into 0.0.
    # Written without a branch: inlined into a loop of a parallel region, the branch's
    # variables broke Numba's SSA pass (NumbaIRAssumptionWarning). The denominator is 0
    # only with n = 0, beta = 0 and lam2 = 0, where z = 0 too: the smallest positive
    # double there keeps 0/0 out (and is no other denominator's maximum).
    shrunk = math.copysign(max(abs(z) - lam1, 0.0), z)
    P[j, k, W] = 0.0 - shrunk / max((beta + sqrt_new) / a + lam2, 5e-324)
