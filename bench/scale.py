"""``python -m bench.scale``: files larger than memory (not part of the main benchmark).

Measures, on generated svmlight files:

1. parse throughput of ``sparseopt.stream.svmlight_chunks`` against scikit-learn's
   ``load_svmlight_file`` on the same file (plain and gzip), in MB/s of text and rows/s;
2. one epoch of a streaming fit (``fit_stream``) against loading the file and fitting in
   memory, each in a fresh child process that reports its own peak RSS
   (``ru_maxrss``), for files of growing size, at least 10x the chunk buffer: streaming
   memory should stay flat while the in-memory fit grows with the file;
3. Dask with 1 and 2 workers against one process (``bench.dask_scale``), when installed.

Writes ``scale.md`` and ``scale.json`` to ``--out`` (default ``bench/results/scale``,
ignored by git) and prints the tables. ``--quick`` is a smoke run of a few seconds.
"""

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse as sp

NNZ_PER_ROW = 12


def generate_svmlight(path, n_rows, n_features, seed=0, block=50_000):
    """Write a binary problem with ``NNZ_PER_ROW`` features a row, block by block."""
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(seed)
    true_w = rng.normal(size=n_features)
    with open(path, "wb") as f:
        for start in range(0, n_rows, block):
            n = min(block, n_rows - start)
            cols = np.sort(rng.integers(0, n_features, size=(n, NNZ_PER_ROW)), axis=1)
            X = sp.csr_matrix((np.round(rng.random(n * NNZ_PER_ROW), 4), cols.ravel(),
                               np.arange(0, n * NNZ_PER_ROW + 1, NNZ_PER_ROW)),
                              shape=(n, n_features))
            X.sum_duplicates()
            y = (X @ true_w + 0.5 * rng.normal(size=n) > 0).astype(int)
            dump_svmlight_file(X, y, f, zero_based=False)


# -------------------------------------------------------------------- child processes


def child(mode, path, n_features, chunk_rows):
    """Run one measurement in this (fresh) process; print a JSON line."""
    from sklearn.datasets import load_svmlight_file

    from sparseopt import SparseClassifier
    from sparseopt.stream import fit_stream, svmlight_chunks

    # Compile (or load from the cache) before timing, in every mode alike.
    tiny = sp.csr_matrix(np.eye(2, n_features))
    SparseClassifier(max_iter=1).fit(tiny, [0, 1])
    start = time.perf_counter()
    rows = 0
    if mode == "stream":
        model = fit_stream(SparseClassifier(shuffle=False), svmlight_chunks(
            path, n_features, chunk_rows=chunk_rows), epochs=1, classes=[0, 1], progress=False)
        rows = model.stream_history_[0].rows
    elif mode == "memory":
        X, y = load_svmlight_file(path, n_features=n_features)
        SparseClassifier(shuffle=False, max_iter=1).fit(X, y)
        rows = X.shape[0]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}))


def run_child(mode, path, n_features, chunk_rows):
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", mode, str(path),
         "--n-features", str(n_features), "--chunk-rows", str(chunk_rows)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------- measurements


def measure_parse(path, n_features, chunk_rows):
    """Seconds to read ``path`` whole (scikit-learn) and in chunks (sparseopt)."""
    from sklearn.datasets import load_svmlight_file

    from sparseopt.stream import svmlight_chunks

    text_mb = _text_bytes(path) / 1e6
    result = []
    for reader, read in [
        ("load_svmlight_file",
         lambda: load_svmlight_file(path, n_features=n_features)[0].shape[0]),
        ("svmlight_chunks", lambda: sum(X.shape[0] for X, _ in svmlight_chunks(
            path, n_features, chunk_rows=chunk_rows))),
    ]:
        start = time.perf_counter()
        rows = read()
        seconds = time.perf_counter() - start
        result.append({"file": os.path.basename(path), "reader": reader, "rows": rows,
                       "seconds": seconds, "mb_per_s": text_mb / seconds,
                       "rows_per_s": rows / seconds})
    return result


def _text_bytes(path):
    from sparseopt.stream import open_binary

    with open_binary(path) as f:
        return sum(len(block) for block in iter(lambda: f.read(1 << 20), b""))


def measure_memory(folder, sizes, n_features, chunk_rows):
    baseline = run_child("baseline", "-", n_features, chunk_rows)["peak_rss_mb"]
    # Both modes once on a small file first, unreported: each may need kernels of its own
    # (index dtypes differ), and their compilation is not what is measured here.
    warm = os.path.join(folder, "warm.svm")
    generate_svmlight(warm, 2 * chunk_rows, n_features, seed=2)
    for mode in ("stream", "memory"):
        run_child(mode, warm, n_features, chunk_rows)
    os.remove(warm)
    rows_out = []
    for n_rows in sizes:
        path = os.path.join(folder, f"scale_{n_rows}.svm")
        generate_svmlight(path, n_rows, n_features)
        file_mb = os.path.getsize(path) / 1e6
        chunk_mb = file_mb * chunk_rows / n_rows
        for mode in ("stream", "memory"):
            r = run_child(mode, path, n_features, chunk_rows)
            rows_out.append({
                "rows": n_rows, "file_mb": file_mb, "chunk_text_mb": chunk_mb,
                "file_over_chunk": file_mb / chunk_mb, "mode": mode,
                "seconds": r["seconds"], "rows_per_s": r["rows"] / r["seconds"],
                "peak_rss_mb": r["peak_rss_mb"], "above_baseline_mb": r["peak_rss_mb"] - baseline,
            })
        os.remove(path)
    return baseline, rows_out


# -------------------------------------------------------------------- report


def _table(rows, columns):
    head = "| " + " | ".join(title for title, _, _ in columns) + " |"
    rule = "|" + "|".join("---:" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt.format(row[key]) for _, key, fmt in columns) + " |"
            for row in rows]
    return "\n".join([head, rule, *body])


def report(config, parse, baseline, memory, dask_rows):
    lines = [
        "# Files larger than memory (`python -m bench.scale`)", "",
        f"{config['machine']}; n_features={config['n_features']}, chunk_rows="
        f"{config['chunk_rows']}, {NNZ_PER_ROW} nonzeros a row, one epoch of "
        "`SparseClassifier(shuffle=False)` (Adagrad).", "",
        "## Parse throughput", "",
        _table(parse, [("file", "file", "{}"), ("reader", "reader", "{}"),
                       ("rows", "rows", "{:,}"), ("seconds", "seconds", "{:.2f}"),
                       ("MB/s (text)", "mb_per_s", "{:.1f}"),
                       ("rows/s", "rows_per_s", "{:,.0f}")]), "",
        "## Streaming against in-memory fit: time and peak memory", "",
        f"Peak RSS of a child that only imports and compiles: {baseline:.0f} MB. "
        "`stream` = `fit_stream` over `svmlight_chunks` (parse included); `memory` = "
        "`load_svmlight_file` then `fit` (parse included).", "",
        _table(memory, [("rows", "rows", "{:,}"), ("file MB", "file_mb", "{:.1f}"),
                        ("file / chunk", "file_over_chunk", "{:.0f}x"), ("mode", "mode", "{}"),
                        ("seconds", "seconds", "{:.2f}"), ("rows/s", "rows_per_s", "{:,.0f}"),
                        ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
                        ("above baseline MB", "above_baseline_mb", "{:.0f}")]), "",
    ]
    lines += dask_section(dask_rows)
    return "\n".join(lines)


def measure_dask(quick):
    """``bench.dask_scale.measure`` on the shipped pypi sample (its first 10k rows with
    ``--quick``), or None when dask is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return None
    from . import dask_scale
    from .data_io import load_dataset

    X_train, X_test, y_train, y_test = load_dataset(dask_scale.SAMPLE, n_features=2**18)
    if quick:
        X_train, y_train = X_train[:10_000], y_train[:10_000]
    return dask_scale.measure(X_train, y_train, X_test, y_test)


def dask_section(rows):
    """Dask with 1 and 2 workers against one process (``bench.dask_scale``)."""
    head = ["## Dask: one process against a LocalCluster of 1 and 2 workers", ""]
    if rows is None:
        return head + ["Not measured: dask is not installed (`pip install \".[dask]\"`).", ""]
    from .dask_scale import markdown

    return head + [
        "Shipped pypi sample (100k rows hashed to 2^18 columns), Adagrad, 3 epochs; "
        "`sparseopt.dask.fit` with as many partitions as the largest cluster has workers; "
        "partitions persisted on the workers and kernels warmed before timing.", "",
        markdown(rows), ""]


def parse_args(argv=None):
    from sparseopt.cli import n_features_type

    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench/results/scale", help="(default: %(default)s)")
    p.add_argument("--rows", default="200000,400000,800000",
                   help="comma-separated file sizes in rows (default: %(default)s)")
    p.add_argument("--chunk-rows", type=int, default=20_000, help="(default: %(default)s)")
    p.add_argument("--n-features", type=n_features_type, default=2**20,
                   help="(default: 2**20)")
    p.add_argument("--quick", action="store_true", help="tiny files: a smoke run")
    p.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.chunk_rows, args.n_features = "4000,8000", 400, 2**12
    args.sizes = [int(r) for r in args.rows.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.n_features, args.chunk_rows)
        return 0
    os.makedirs(args.out, exist_ok=True)
    config = {"n_features": args.n_features, "chunk_rows": args.chunk_rows,
              "sizes": args.sizes, "machine": f"{os.cpu_count()} cores, {sys.platform}",
              "date": time.strftime("%Y-%m-%d")}
    folder = tempfile.mkdtemp(prefix="sparseopt_scale_")
    try:
        path = os.path.join(folder, "parse.svm")
        generate_svmlight(path, args.sizes[-1], args.n_features, seed=1)
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        parse = (measure_parse(path, args.n_features, args.chunk_rows)
                 + measure_parse(path + ".gz", args.n_features, args.chunk_rows))
        os.remove(path)
        os.remove(path + ".gz")
        baseline, memory = measure_memory(folder, args.sizes, args.n_features, args.chunk_rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    dask_rows = measure_dask(args.quick)
    text = report(config, parse, baseline, memory, dask_rows)
    with open(os.path.join(args.out, "scale.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "scale.json"), "w") as f:
        json.dump({"config": config, "parse": parse, "baseline_rss_mb": baseline,
                   "memory": memory, "dask": dask_rows}, f, indent=2)
    print(text)
    print(f"\nwritten to {args.out}/scale.md and scale.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
