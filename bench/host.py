"""What passing a cache line from one core to another costs on this machine.

Hogwild's threads write the same feature records (those of the most frequent columns at
nearly every row), so such a write often finds the record's cache line in the other
core's cache and waits for it to move. On a virtual machine the host decides where the
virtual CPUs run: on this project's 2-core machine the same two threads passed a line in
about 25 ns at some times and about 170 ns at others, minutes apart (the message of
commit 934b306). :func:`handoff_ns` measures it, so that a Hogwild timing can be read
against the state of the host when it was taken.
"""

import math
import time

import numba
import numpy as np
from numba import njit, prange

from sparseopt._llvm import fetch_add

# Turns without progress after which a thread gives up (no other thread is taking
# turns: a threading layer that ran both lanes on one thread, say).
_PATIENCE = 50_000_000


@njit(parallel=True, cache=True)
def _take_turns(counter, n):
    """Two threads increment ``counter[0]`` in turn (lane 0 when it is even, lane 1 when
    it is odd), ``n`` times each: every increment moves the counter's cache line to the
    other core. Returns False when a thread gave up waiting for its turn."""
    for lane in prange(2):
        done = 0
        idle = 0
        while done < n and idle < _PATIENCE:
            if fetch_add(counter, 0, 0) % 2 == lane:  # an atomic read
                fetch_add(counter, 0, 1)
                done += 1
                idle = 0
            else:
                idle += 1
        if done < n:
            fetch_add(counter, 1, 1)
    return counter[1] == 0


def near_limit(probes):
    """The slowest move that still counts as "near": twice the fastest of ``probes``
    (finite ones; the host's two states differ about 7-fold here). A timing taken while
    the probes stayed within it was taken with the cores close together."""
    return 2.0 * min(p for p in probes if math.isfinite(p))


def handoff_ns(turns=100_000):
    """Nanoseconds per move of one cache line between two cores (two threads taking
    turns at one counter, ``2 * turns`` moves in all); NaN with fewer than two threads.
    """
    if numba.get_num_threads() < 2:
        return math.nan
    _take_turns(np.zeros(2, dtype=np.int64), 1)  # compiled or loaded before the clock
    counter = np.zeros(2, dtype=np.int64)
    start = time.perf_counter()
    ok = _take_turns(counter, turns)
    seconds = time.perf_counter() - start
    return seconds / (2 * turns) * 1e9 if ok else math.nan
