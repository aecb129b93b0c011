"""What an Adagrad epoch cannot avoid: ``python -m bench.floors [--data PATH] [--out DIR]
[--quick] [--rounds N]``.

The speed issue asks for Adagrad's epoch at most 6x one scipy CSR mat-vec, and where
that is out of reach, for the reason in numbers: the cost per nonzero of the square root
and division it cannot avoid and of the memory it touches. Side by side in one process,
on ``bench.speed``'s matrix, in rounds that alternate (medians over the rounds):

* **mat-vec** ``X @ w``: ``bench.speed``'s floor (reads every nonzero once, gathers
  ``w``);
* **memory**: the two passes of a step over each row's feature records in the
  estimator's default order (blocks of 256 rows), as the kernel makes them: the
  margin reads each record's weight, the step then writes its weight and its sum of
  squared gradients, with the records of the row two ahead prefetched; records as wide
  as the default fit's (Adagrad's weight and sum of squares: 16 bytes); no
  square root, no division;
* **arithmetic**: the same loop, each feature's record taken from 1,024 that stay in
  the first-level cache: Adagrad's square root and division at every nonzero, without
  the random memory;
* **plain Adagrad**: both (the textbook step ``v += g*g; w -= eta*g/(sqrt(v)+eps)``,
  nothing else: no regularization, no schedule, no checks);
* **sparseopt's Adagrad**: the kernel epochs (``LazyModel.run_epoch``) of a
  ``SparseClassifier()`` fit with its defaults.

And what two threads can give (with two usable cores): the plain step in Hogwild's
shape, threads taking blocks of 64 rows of the order from an atomic counter, as the
kernel's threads do:

* **plain Adagrad in blocks, 1 thread**: the yardstick of the two below (the same loop);
* **2 threads, shared records**: both write the same records, as Hogwild's threads do
  (the records of the frequent columns at nearly every row);
* **2 threads, own records**: each thread its own records, nothing written in common:
  what the two cores give to this loop when no cache line has to move between them;
* **sparseopt's Adagrad, 2 threads**: the kernel's Hogwild epochs (``n_jobs=2``).

With the host's state (``bench.host.handoff_ns``) before each round. Writes
``floors.md`` and ``floors.json`` to ``--out``.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

from sparseopt._kernels import HOGWILD_BLOCK
from sparseopt._llvm import fetch_add, prefetch

# Records of the arithmetic loop: 1,024 of 16 bytes stay in a 32 KB first-level cache.
_L1_RECORDS = 1023  # a mask


@njit(cache=True, inline="always", error_model="numpy")
def _rows(indptr, indices, data, order, lo, hi, P, mask, with_sqrt):
    """Adagrad's two passes over the rows ``order[lo:hi]`` on the records ``P`` (``(n,
    s)``, s >= 2: weight, sum of squared gradients, then slots this loop does not touch),
    feature ``j`` at record ``j & mask``; the step with its square root and division
    when ``with_sqrt``, else a multiply. Returns the sum of the margins (so that nothing
    is optimized away)."""
    flat = P.reshape(P.size)
    width = P.shape[1]
    total = 0.0
    for r in range(lo, hi):
        if r + 2 < hi:  # the records of the row two ahead, as the kernel asks for them
            ahead = order[r + 2]
            for q in range(indptr[ahead], indptr[ahead + 1]):
                first = width * (indices[q] & mask)
                prefetch(flat, first)  # both ends: a record may straddle two lines
                prefetch(flat, first + width - 1)
        i = order[r]
        margin = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            margin += P[indices[p] & mask, 0] * data[p]
        g_row = 1.0 / (1.0 + math.exp(-margin)) - 0.5  # a loss derivative, once per row
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p] & mask
            g = g_row * data[p]
            v = P[j, 1] + g * g
            P[j, 1] = v
            if with_sqrt:
                P[j, 0] -= 0.01 * g / (math.sqrt(v) + 1e-3)
            else:
                P[j, 0] -= 0.01 * g * v
        total += margin
    return total


@njit(cache=True, error_model="numpy")
def _passes(indptr, indices, data, order, P, mask, with_sqrt):
    """``_rows`` over every row of ``order``."""
    return _rows(indptr, indices, data, order, 0, order.shape[0], P, mask, with_sqrt)


@njit(cache=True, error_model="numpy")
def _lane(indptr, indices, data, order, P, next_block, rows_done, lane):
    """One thread's share: blocks of ``HOGWILD_BLOCK`` positions of ``order`` from the
    counter ``next_block[0]`` until none are left, the plain step on each (``_rows``, no
    prefetch across a block's end); the rows it ran go to ``rows_done[lane]`` (once, at
    the end: a per-block write would share a cache line with the other lanes')."""
    n = order.shape[0]
    n_blocks = (n + HOGWILD_BLOCK - 1) // HOGWILD_BLOCK
    everywhere = np.int64(2**62 - 1)
    total = 0.0
    rows = 0
    blk = fetch_add(next_block, 0, 1)
    while blk < n_blocks:
        lo = blk * HOGWILD_BLOCK
        hi = min(lo + HOGWILD_BLOCK, n)
        total += _rows(indptr, indices, data, order, lo, hi, P, everywhere, True)
        rows += hi - lo
        blk = fetch_add(next_block, 0, 1)
    rows_done[lane] = rows
    return total


@njit(cache=True, parallel=True, error_model="numpy")
def _passes_threads(indptr, indices, data, order, records, n_threads):
    """The plain step over every row of ``order`` on ``n_threads`` threads (``_lane``);
    thread ``lane`` writes ``records[lane % len(records)]``: one array of records for
    all, shared, or one each. Returns the rows each thread ran."""
    next_block = np.zeros(1, dtype=np.int64)
    rows_done = np.zeros(n_threads, dtype=np.int64)
    for lane in prange(n_threads):
        _lane(indptr, indices, data, order, records[lane % records.shape[0]], next_block,
              rows_done, lane)
    return rows_done


def _seconds(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(X, y, rounds=5, seed=0, log=print, threads=None):
    """Seconds of each part (medians over ``rounds`` alternating rounds, and every
    value) and nanoseconds per nonzero, and the two-thread parts' speed-ups (medians of
    the rounds' ratios) when ``threads`` (default: with two threads available); see the
    module docstring. Returns ``(parts, probes)``: the host's nanoseconds per cache-line
    move before each round (empty without threads)."""
    from sparseopt import SparseClassifier, _engine
    from sparseopt.rules import RULES

    from .host import handoff_ns, near_limit
    from .speed import EpochClock, _median, matvec_seconds

    if threads is None:
        threads = numba.config.NUMBA_NUM_THREADS >= 2

    width = len(RULES["adagrad"].layout(0.0, 0))  # the default fit's record, in float64s

    order = _engine.row_order(X.shape[0], True, np.random.RandomState(seed))
    n_features = X.shape[1]
    everywhere = np.int64(2**62 - 1)  # every feature its own record

    # Made (and their pages touched) once, as the kernel's model is before its timed
    # epochs: a fresh array would count its first-touch page faults.
    records = {everywhere: np.zeros((n_features, width)),
               np.int64(_L1_RECORDS): np.zeros((_L1_RECORDS + 1, width))}
    # Every pass starts from the same small random weights (sums of squares 0): from all
    # zeros every margin would be 0, every step 0, and the square root and division would
    # take only zeros, which a divider may take faster (a kernel's epochs do not).
    start = np.zeros((n_features, width))
    start[:, 0] = np.random.RandomState(seed).normal(0.0, 0.01, n_features)

    def restart(P):
        P[:] = start[:P.shape[-2]]

    def passes(mask, with_sqrt):
        P = records[mask]
        restart(P)
        return _seconds(_passes, X.indptr, X.indices, X.data, order, P, mask, with_sqrt)

    def adagrad(n_jobs=None):
        est = SparseClassifier(max_iter=4, tol=None, random_state=seed, n_jobs=n_jobs)
        with EpochClock() as clock:
            est.fit(X, y)
        return [end - start for start, end, _ in sorted(clock.calls)[1:3]]

    parts = {
        "mat-vec": lambda: matvec_seconds(X, 5, seed)[1],
        "memory": lambda: [passes(everywhere, False)],
        "arithmetic": lambda: [passes(np.int64(_L1_RECORDS), True)],
        "plain Adagrad": lambda: [passes(everywhere, True)],
        "sparseopt's Adagrad": adagrad,
    }
    if threads:
        shared = np.zeros((1, n_features, width))  # made once, as ``records`` above
        own = np.zeros((2, n_features, width))

        def in_blocks(n_threads, P):
            restart(P)
            numba.set_num_threads(n_threads)
            start = time.perf_counter()
            rows = _passes_threads(X.indptr, X.indices, X.data, order, P, n_threads)
            seconds = time.perf_counter() - start
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            if rows.sum() != order.shape[0]:  # every row once, whichever thread ran it
                raise RuntimeError(f"the threads ran {rows} rows of {order.shape[0]}")
            return [seconds]

        parts.update({
            "plain Adagrad in blocks, 1 thread": lambda: in_blocks(1, shared),
            "2 threads, shared records": lambda: in_blocks(2, shared),
            "2 threads, own records": lambda: in_blocks(2, own),
            "sparseopt's Adagrad, 2 threads": lambda: adagrad(n_jobs=2),
        })
    for fn in parts.values():  # compiled or loaded from the cache before the clock
        fn()
    times = {name: [] for name in parts}
    probes = []
    for k in range(rounds):
        if threads:
            probes.append(handoff_ns())
        for name, fn in parts.items():
            times[name] += fn()
        log(f"round {k + 1}/{rounds}: " + ", ".join(
            f"{name} {times[name][-1] * 1e3:.1f} ms" for name in parts)
            + (f"; a cache line's move {probes[-1]:.0f} ns before it" if threads else ""))
    out = {}
    for name, values in times.items():
        sec = _median(values)
        out[name] = {"seconds": sec, "ns_per_nnz": sec / X.nnz * 1e9, "all": values}
    floor = out["mat-vec"]["seconds"]
    for part in out.values():
        part["x_matvec"] = part["seconds"] / floor
    if threads:
        # Speed-ups within each round (both sides under the same state of the host).
        pairs = {"2 threads, shared records": "plain Adagrad in blocks, 1 thread",
                 "2 threads, own records": "plain Adagrad in blocks, 1 thread",
                 "sparseopt's Adagrad, 2 threads": "sparseopt's Adagrad"}
        # A round is near as bench.speed's fits are (``near_limit``; the state can also
        # change within a round).
        limit = near_limit(probes)
        near = [v <= limit for v in probes]
        for two, one in pairs.items():
            out[two]["against"] = one
            # sparseopt's parts have two epochs per round: epoch by epoch.
            ratios = [a / b for a, b in zip(times[one], times[two])]
            per_round = len(ratios) // len(probes)
            out[two]["speedup"] = _median(ratios)
            out[two]["speedups"] = ratios
            for state, wanted in (("near", True), ("far", False)):
                these = [v for k, v in enumerate(ratios) if near[k // per_round] == wanted]
                out[two][state] = _median(these) if these else None
    return out, probes


def report(result):
    m = result["parts"]
    six = 6 * m["mat-vec"]["ns_per_nnz"]
    ours = m["sparseopt's Adagrad"]["ns_per_nnz"]
    lines = ["# What an Adagrad epoch cannot avoid (`python -m bench.floors`)", "",
             f"- Machine: {result['machine']}; git {result['git']}.",
             f"- Data: {result['data']}; {result['nnz']:,} nonzeros. Medians over "
             f"{result['rounds']} rounds in which the parts alternate (mat-vec: 5 calls "
             "per round; sparseopt: epochs 2 and 3 of a 4-epoch fit per round).", "",
             "| part | s per pass | ns per nonzero | x mat-vec |", "|---|---|---|---|"]
    for name, part in m.items():
        lines.append(f"| {name} | {part['seconds']:.4g} | {part['ns_per_nnz']:.2f} | "
                     f"{part['x_matvec']:.2f} |")
    threaded = [name for name, part in m.items() if "speedup" in part]
    if threaded:
        probes = result["handoff_ns"]
        lines += ["", "Two threads against one, within each round (median of the rounds' "
                  "ratios, then each round's), and the host's state before each round "
                  "(`bench.host.handoff_ns`, nanoseconds per move of a cache line between "
                  "the cores): " + ", ".join(f"{v:.0f}" for v in probes) + "; near rounds: "
                  "a probe at most twice the fastest.", "",
                  "| two threads | against | speed-up | near / far rounds | per round |",
                  "|---|---|---|---|---|"]
        for name in threaded:
            part = m[name]
            split = " / ".join("-" if part[k] is None else f"{part[k]:.2f}x"
                               for k in ("near", "far"))
            lines.append(f"| {name} | {part['against']} | {part['speedup']:.2f}x | {split} | "
                         + ", ".join(f"{v:.2f}x" for v in part["speedups"]) + " |")
    lines += ["", f"6x the mat-vec is {six:.2f} ns per nonzero. The memory a step touches "
              f"takes {m['memory']['ns_per_nnz']:.2f} ns of it without any arithmetic, the "
              f"square root and division {m['arithmetic']['ns_per_nnz']:.2f} ns without "
              f"the random memory; the plain step, both: "
              f"{m['plain Adagrad']['ns_per_nnz']:.2f} ns; sparseopt's kernel epoch, "
              f"which also has its L2 decay, the loss, the intercept, the progressive loss "
              f"and the end-of-epoch flush: {ours:.2f} ns.", ""]
    if result.get("errors"):
        lines += ["## Failures", ""] + [f"- {e}" for e in result["errors"]] + [""]
    return "\n".join(lines)


def main(argv=None):
    from .speed import (
        FULL_DATA,
        SOURCES_CHANGED,
        _cpu_model,
        _git_state,
        load_data,
        source_digest,
        usable_cores,
    )

    sources = source_digest()

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None,
                    help=f"as bench.speed's (default: {FULL_DATA} if it exists, else a "
                    "generated matrix of its shape)")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.data is None and not args.quick and FULL_DATA.exists():
        args.data = str(FULL_DATA)
    X, _, y, _, description = load_data(args.data, args.quick)
    parts, probes = measure(X, y, args.rounds)
    result = {"machine": f"{_cpu_model()}, {usable_cores()} usable cores",
              "git": _git_state(), "data": description, "nnz": int(X.nnz),
              "rounds": args.rounds, "parts": parts, "handoff_ns": probes,
              "errors": [SOURCES_CHANGED] if source_digest() != sources else []}
    markdown = report(result)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "floors.md").write_text(markdown)
    Path(args.out, "floors.json").write_text(json.dumps(result, indent=1))
    print(markdown)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
