"""Draw the shipped real-data sample ``bench/data/pypi_popular_100k.tsv.gz``.

Source: ``/work/shared/data/pypi_popular.tsv.gz``, the project's shared copy of PyPI
package metadata: 841,708 packages, one per row, sorted by name, with the tab-separated
columns ``name, summary, month, popular`` (``popular`` is 1 for the 15,000 most
downloaded packages, 14,731 of which are in the file: 1.75 % positive). The file has no
quoting: no field contains a tab or a newline, and quote characters are literal text.

Sample: 100,000 rows drawn uniformly at random without replacement (not stratified, so
the positive rate is the natural one up to sampling noise), with NumPy's legacy
``RandomState(SEED).choice``, whose stream NumPy keeps fixed across versions. The rows
keep the source's order (by name) and are copied byte for byte, header included. The
output is written with gzip level 9 and a zero timestamp, so the same source always
gives the same bytes. Should it exceed 5 MB, summaries are cut to 200 characters and
the script says so (not needed today: the longest summary has 160 characters).

Run from the repository root::

    python -m bench.make_sample [--source PATH] [--output PATH]

``bench/data/README.md`` records the numbers this script printed.
"""

import argparse
import gzip
import hashlib
import os

import numpy as np

SOURCE = "/work/shared/data/pypi_popular.tsv.gz"
OUTPUT = os.path.join(os.path.dirname(__file__), "data", "pypi_popular_100k.tsv.gz")
HEADER = b"name\tsummary\tmonth\tpopular\n"
N_ROWS = 100_000
SEED = 20240601
MAX_BYTES = 5 * 1024 * 1024
SUMMARY_CHARS = 200  # cut applied only if the sample is over MAX_BYTES


def read_rows(path):
    """The data lines of the source (bytes, newline kept), after checking the header."""
    with gzip.open(path, "rb") as f:
        header = f.readline()
        if header != HEADER:
            raise ValueError(f"{path}: unexpected header {header!r}, expected {HEADER!r}")
        rows = f.readlines()
    for i, row in enumerate(rows, start=2):
        if row.count(b"\t") != 3 or not row.endswith(b"\n"):
            raise ValueError(f"{path}, line {i}: expected 4 tab-separated fields: {row!r}")
    return rows


def cut_summary(row, n_chars):
    name, summary, month, popular = row.decode("utf-8").split("\t")
    return "\t".join([name, summary[:n_chars], month, popular]).encode("utf-8")


def write_gzip(path, rows):
    """Write header and rows with gzip level 9, no file name and mtime 0 (reproducible)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(HEADER)
            f.writelines(rows)
    return os.path.getsize(path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=SOURCE)
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args(argv)

    rows = read_rows(args.source)
    chosen = np.sort(np.random.RandomState(SEED).choice(len(rows), size=N_ROWS, replace=False))
    sample = [rows[i] for i in chosen]
    size = write_gzip(args.output, sample)
    if size > MAX_BYTES:
        print(f"{size} bytes > {MAX_BYTES}: cutting summaries to {SUMMARY_CHARS} characters")
        size = write_gzip(args.output, [cut_summary(row, SUMMARY_CHARS) for row in sample])
        if size > MAX_BYTES:
            raise SystemExit(f"{args.output}: still {size} bytes after cutting summaries")

    n_pos = sum(row.endswith(b"\t1\n") for row in sample)
    n_pos_source = sum(row.endswith(b"\t1\n") for row in rows)
    print(f"source  {args.source}: {len(rows)} rows, {n_pos_source} popular")
    print(f"        sha256 {sha256(args.source)}")
    print(f"sample  {args.output}: {N_ROWS} rows (seed {SEED}), {size} bytes")
    print(f"        {n_pos} popular ({n_pos / N_ROWS:.4%}; source {n_pos_source / len(rows):.4%})")
    print(f"        sha256 {sha256(args.output)}")


if __name__ == "__main__":
    main()
