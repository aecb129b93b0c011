"""Re-iterable readers of svmlight and delimited text files, in CSR chunks of fixed width.

A reader is an object whose ``__iter__`` opens its files again from the start, so it can
be iterated once per epoch. Each item is a :class:`Chunk`: an ``(X, y)`` pair (``X`` CSR
float64 of shape ``(n_rows, n_features)`` with ``n_rows <= chunk_rows``, the same
``n_features`` for every chunk) that also remembers the file and line of each of its rows,
so that a check made later (a label outside ``classes``, in ``fit_stream``) can still name
the line. A chunk never spans two files: the last chunk of each file may be shorter.

Files may be plain, gzip, bzip2 or xz, recognized by their first bytes (not their names).
Every malformed line raises :class:`DataError` naming the file and line; so does a
compressed file that ends early (a truncated download must not look like a short file).

svmlight lines are parsed by scikit-learn's own parser (``load_svmlight_file`` on a block
of ``chunk_rows`` lines joined in memory), so values are bit for bit those of loading the
whole file at once. Only when a block fails is it re-parsed line by line, to find the line.
"""

import bz2
import csv
import gzip
import io
import lzma
import os
import zlib

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_svmlight_file

from ._validation import check_number

DEFAULT_CHUNK_ROWS = 100_000

# (first bytes, opener): compression is recognized by content, so a ``.gz`` that is in fact
# plain text, or a compressed file without suffix, is still read correctly.
_MAGIC = ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open))
# What the decompressors raise on truncated or corrupt input (gzip: EOFError or
# BadGzipFile, an OSError; bz2: EOFError or OSError; xz: EOFError or LZMAError).
_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)


class DataError(ValueError):
    """A malformed line, or a compressed file that ends early.

    Attributes
    ----------
    path : str
        The file.
    line : int
        The line number, counted from 1 (physical lines, header and comments included).
    """

    def __init__(self, path, line, message):
        self.path = str(path)
        self.line = int(line)
        super().__init__(f"{path}, line {line}: {message}")


class Chunk(tuple):
    """An ``(X, y)`` pair of rows read from one file, which remembers their lines.

    It unpacks like a tuple (``X, y = chunk``); ``path`` and :meth:`line_of` say where a
    row came from.
    """

    def __new__(cls, X, y, path, row_lines):
        chunk = super().__new__(cls, (X, y))
        chunk.path = str(path)
        chunk.row_lines = np.asarray(row_lines, dtype=np.int64)
        return chunk

    @property
    def X(self):
        return self[0]

    @property
    def y(self):
        return self[1]

    def line_of(self, row):
        """Line number (from 1) of row ``row`` of this chunk in ``self.path``."""
        return int(self.row_lines[row])


def open_binary(path):
    """Open ``path`` for reading bytes, decompressing gzip, bzip2 or xz by magic number."""
    with open(path, "rb") as f:
        magic = f.read(6)
    for prefix, opener in _MAGIC:
        if magic.startswith(prefix):
            return opener(path, "rb")
    return open(path, "rb")


def check_paths(paths):
    """One path or a list of paths -> list of str; every one must be a readable file."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("no input files given")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    return paths


def check_chunk_rows(chunk_rows):
    check_number("chunk_rows", chunk_rows, low=1, integer=True)
    return int(chunk_rows)


def _line_blocks(path, chunk_rows):
    """Yield ``(first_line_number, lines)``: blocks of up to ``chunk_rows`` raw lines."""
    with open_binary(path) as f:
        first = 1
        while True:
            lines = []
            try:
                # A Python loop per line, not per value: it costs ~50 ns a line against
                # ~10 us to parse one, and keeps the exact line where a stream breaks.
                for line in f:
                    lines.append(line)
                    if len(lines) == chunk_rows:
                        break
            except _STREAM_ERRORS as exc:
                raise DataError(path, first + len(lines),
                                f"compressed data ends early or is corrupt ({exc})") from None
            if not lines:
                return
            yield first, lines
            first += len(lines)


def _snippet(line, width=60):
    text = line.rstrip(b"\r\n")
    return repr(text[:width] + (b"..." if len(text) > width else b""))


def _is_svmlight_data(line):
    """Whether scikit-learn's parser makes a row of ``line`` (not blank, not a comment)."""
    return bool(line.split(b"#", 1)[0].split())


class SvmlightSource:
    """Re-iterable svmlight/libsvm reader; make one with :func:`svmlight_chunks`."""

    def __init__(self, paths, n_features, chunk_rows=DEFAULT_CHUNK_ROWS, zero_based="auto"):
        self.paths = check_paths(paths)
        if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) \
                or n_features < 1:
            raise ValueError(f"n_features must be a positive int, got {n_features!r}")
        self.n_features = int(n_features)
        self.chunk_rows = check_chunk_rows(chunk_rows)
        if zero_based not in ("auto", True, False):
            raise ValueError(f"zero_based must be True, False or 'auto', got {zero_based!r}")
        self.zero_based = zero_based
        self.zero_based_ = None if zero_based == "auto" else zero_based

    def __repr__(self):
        return (f"svmlight_chunks({self.paths!r}, n_features={self.n_features}, "
                f"chunk_rows={self.chunk_rows}, zero_based={self.zero_based!r})")

    def __iter__(self):
        # "auto" is decided once for the whole source (see svmlight_chunks), then kept:
        # a decision per chunk would shift the columns of some chunks and not others.
        zero_based = None if self.zero_based == "auto" else self.zero_based
        for path in self.paths:
            for first, lines in _line_blocks(path, self.chunk_rows):
                indptr, indices, data, y, row_lines = _parse_svmlight(path, first, lines)
                if zero_based is None and indices.size:
                    zero_based = bool(indices.min() == 0)
                    self.zero_based_ = zero_based
                X = self._to_matrix(path, indptr, indices, data, row_lines, zero_based)
                yield Chunk(X, y, path, row_lines)

    def _to_matrix(self, path, indptr, indices, data, row_lines, zero_based):
        """Raw parsed indices -> CSR of width n_features, after the range checks."""

        def fail(position, message):
            row = int(np.searchsorted(indptr, position, side="right")) - 1
            raise DataError(path, row_lines[row], message)

        if indices.size:
            if not zero_based and indices.min() == 0:
                fail(int(np.argmin(indices)),
                     "feature index 0 in a file read as one-based (detected from the first "
                     "chunk, which has no index 0); pass zero_based=True if indices start at 0")
            top = self.n_features - 1 if zero_based else self.n_features
            if indices.max() > top:
                position = int(np.argmax(indices > top))
                fail(position, f"feature index {indices[position]} is out of range for "
                               f"n_features={self.n_features} "
                               f"({'zero' if zero_based else 'one'}-based indices)")
        bad = ~np.isfinite(data)
        if bad.any():
            fail(int(np.argmax(bad)), "feature value is NaN or infinite")
        index_dtype = np.int32 if self.n_features < 2**31 else np.int64
        if not zero_based:
            indices = indices - 1
        return sp.csr_matrix(
            (data, indices.astype(index_dtype, copy=False), indptr.astype(index_dtype)),
            shape=(indptr.shape[0] - 1, self.n_features),
        )


def _parse_svmlight(path, first, lines):
    """Parse a block with scikit-learn's parser; raw (unshifted) indices.

    Returns ``indptr, indices, data, y, row_lines`` where ``row_lines[i]`` is the line
    number of row ``i`` (comments and blank lines make no row).
    """
    try:
        X, y = load_svmlight_file(io.BytesIO(b"".join(lines)), zero_based=True,
                                  dtype=np.float64)
    except (ValueError, OverflowError) as exc:
        # Only now look at single lines, to name the first bad one.
        for offset, line in enumerate(lines):
            try:
                load_svmlight_file(io.BytesIO(line), zero_based=True)
            except (ValueError, OverflowError) as line_exc:
                raise DataError(path, first + offset,
                                f"cannot parse {_snippet(line)}: {line_exc}") from None
        raise DataError(path, first, f"cannot parse lines {first}-{first + len(lines) - 1}: "
                                     f"{exc}") from None
    if X.shape[0] == len(lines):
        row_lines = np.arange(first, first + len(lines))
    else:
        row_lines = first + np.flatnonzero([_is_svmlight_data(line) for line in lines])
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(path, row_lines[int(np.argmax(bad))], "label is NaN or infinite")
    return X.indptr, X.indices, X.data, y, row_lines


def svmlight_chunks(paths, n_features, chunk_rows=DEFAULT_CHUNK_ROWS, zero_based="auto"):
    """Read svmlight/libsvm files as ``(X, y)`` chunks, again from the start on every pass.

    Parameters
    ----------
    paths : str, path-like or list of them
        Files read one after the other, plain or compressed (gzip, bzip2, xz; recognized
        by content). Lines are ``label [qid:q] index:value ...`` with increasing indices;
        ``#`` starts a comment; ``qid`` is ignored.
    n_features : int
        Width of every chunk. A feature index beyond it is an error, not a wider matrix.
    chunk_rows : int, default=100_000
        Lines per chunk (a chunk has fewer rows when it holds comments or blank lines, and
        at the end of each file). Memory is about ``chunk_rows`` rows of text plus their
        CSR matrix.
    zero_based : bool or "auto", default="auto"
        Whether indices start at 0. "auto" is scikit-learn's rule (zero-based when some
        index is 0), applied to the first chunk of the first file that has any feature and
        kept for every file and every pass: if a later line has index 0 in a source read
        as one-based, it raises :class:`DataError` (pass ``zero_based=True``) rather than
        shifting some chunks and not others. The decision is stored in ``zero_based_``.

    Returns
    -------
    SvmlightSource
        Iterating it yields :class:`Chunk` objects: ``(X, y)`` with ``X`` CSR float64 of
        shape ``(n_rows, n_features)`` (int32 indices) and ``y`` float64 labels.

    Raises
    ------
    FileNotFoundError
        At once, if a path is not a file.
    DataError
        While iterating, naming the file and line: a token that does not parse, indices
        not increasing, an index out of range for ``n_features`` (or 0 when one-based), a
        NaN or infinite value or label, a compressed file that ends early.
    """
    return SvmlightSource(paths, n_features, chunk_rows, zero_based)


class TextSource:
    """Re-iterable delimited-text reader; make one with :func:`text_chunks`."""

    def __init__(self, paths, vectorizer, chunk_rows=DEFAULT_CHUNK_ROWS, label_column=-1,
                 text_columns=None, delimiter="\t", header=True, quoting=csv.QUOTE_NONE,
                 encoding="utf-8", label_dtype=np.float64):
        self.paths = check_paths(paths)
        if not hasattr(vectorizer, "transform"):
            raise TypeError(f"vectorizer must have a transform method, got {vectorizer!r}")
        self.vectorizer = vectorizer
        self.chunk_rows = check_chunk_rows(chunk_rows)
        if not header and any(isinstance(c, str) for c in [label_column, *(text_columns or [])]):
            raise ValueError("columns can be named only when the files have a header")
        self.label_column = label_column
        self.text_columns = None if text_columns is None else list(text_columns)
        self.delimiter = delimiter
        self.header = header
        self.quoting = quoting
        self.encoding = encoding
        self.label_dtype = label_dtype
        self.n_features = None  # known after the first chunk

    def __repr__(self):
        return f"text_chunks({self.paths!r}, {self.vectorizer!r}, chunk_rows={self.chunk_rows})"

    def __iter__(self):
        for path in self.paths:
            yield from self._read_file(path)

    def _columns(self, path, names, width):
        """Resolve label and text columns (names or positions) to positions."""

        def position(column):
            if isinstance(column, str):
                if column not in names:
                    raise DataError(path, 1, f"no column {column!r} in the header {names}")
                return names.index(column)
            if not -width <= column < width:
                raise DataError(path, 1, f"column {column} does not exist: lines have "
                                         f"{width} fields")
            return column % width

        label = None if self.label_column is None else position(self.label_column)
        if self.text_columns is None:
            text = [c for c in range(width) if c != label]
        else:
            text = [position(c) for c in self.text_columns]
        return label, text

    def _read_file(self, path):
        raw = open_binary(path)
        with io.TextIOWrapper(raw, encoding=self.encoding, newline="") as f:
            reader = csv.reader(f, delimiter=self.delimiter, quoting=self.quoting)
            rows = _checked_rows(path, reader)
            width = label = text = None
            if self.header:
                names, _ = next(rows, ([], 0))
                width = len(names)
                label, text = self._columns(path, names, width)
            docs, labels, lines = [], [], []
            for fields, line in rows:
                if width is None:
                    width = len(fields)
                    label, text = self._columns(path, [], width)
                if len(fields) != width:
                    raise DataError(path, line, f"expected {width} fields, saw {len(fields)}")
                docs.append(" ".join(fields[c] for c in text))
                labels.append(None if label is None else fields[label])
                lines.append(line)
                if len(docs) == self.chunk_rows:
                    yield self._chunk(path, docs, labels, lines)
                    docs, labels, lines = [], [], []
            if docs:
                yield self._chunk(path, docs, labels, lines)

    def _chunk(self, path, docs, labels, lines):
        X = sp.csr_matrix(self.vectorizer.transform(docs), dtype=np.float64)
        if self.n_features is None:
            self.n_features = X.shape[1]
        elif X.shape[1] != self.n_features:
            raise ValueError(f"the vectorizer made {X.shape[1]} columns for {path}, line "
                             f"{lines[0]} on, {self.n_features} before: use a stateless "
                             "vectorizer such as HashingVectorizer")
        bad = ~np.isfinite(X.data)
        if bad.any():
            row = int(np.searchsorted(X.indptr, int(np.argmax(bad)), side="right")) - 1
            raise DataError(path, lines[row], "the vectorizer made a NaN or infinite value")
        y = None if self.label_column is None else self._labels(path, labels, lines)
        return Chunk(X, y, path, lines)

    def _labels(self, path, labels, lines):
        try:
            y = np.asarray(labels).astype(self.label_dtype)
        except (ValueError, TypeError):
            for label, line in zip(labels, lines):
                try:
                    np.asarray([label]).astype(self.label_dtype)
                except (ValueError, TypeError) as exc:
                    raise DataError(path, line, f"bad label {label!r}: {exc}") from None
            raise
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y)
            if bad.any():
                row = int(np.argmax(bad))
                raise DataError(path, lines[row], f"label {labels[row]!r} is NaN or infinite")
        return y


def _checked_rows(path, reader):
    """Yield ``(fields, line_number)`` of non-blank rows; errors name the line."""
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise DataError(path, line, f"not valid text in this encoding ({exc})") from None
        except csv.Error as exc:
            raise DataError(path, line, str(exc)) from None
        except _STREAM_ERRORS as exc:
            raise DataError(path, line,
                            f"compressed data ends early or is corrupt ({exc})") from None
        if fields:
            yield fields, line


def text_chunks(paths, vectorizer, chunk_rows=DEFAULT_CHUNK_ROWS, label_column=-1,
                text_columns=None, delimiter="\t", header=True, quoting=csv.QUOTE_NONE,
                encoding="utf-8", label_dtype=np.float64):
    """Read delimited text files as ``(X, y)`` chunks through a vectorizer.

    Each line is one row: its text columns, joined with a space, are one document given to
    ``vectorizer.transform``; its label column is the target.

    Parameters
    ----------
    paths : str, path-like or list of them
        Files read one after the other, plain or compressed (gzip, bzip2, xz).
    vectorizer : object with ``transform(list of str) -> sparse matrix``
        Called once per chunk and never fitted, so it must be stateless (scikit-learn's
        ``HashingVectorizer``) or already fitted; every chunk must get the same width.
    chunk_rows : int, default=100_000
        Rows per chunk (the last chunk of each file may be shorter).
    label_column : int, str or None, default=-1
        Position (negative counts from the end) or header name of the label; None when
        the files have no label (``y`` is then None).
    text_columns : list of int or str, or None, default=None
        Columns that make the document; None takes every column but the label.
    delimiter : str, default="\\t"
    header : bool, default=True
        Whether each file's first line names the columns.
    quoting : csv quoting constant, default=csv.QUOTE_NONE
        No quoting by default: quote characters are text (as in the PyPI TSV). Pass
        ``csv.QUOTE_MINIMAL`` for quoted CSV.
    encoding : str, default="utf-8"
    label_dtype : dtype, default=float64
        Labels are converted to it; ``str`` keeps them as text.

    Returns
    -------
    TextSource
        Iterating it yields :class:`Chunk` objects ``(X, y)``, ``X`` CSR float64.

    Raises
    ------
    FileNotFoundError
        At once, if a path is not a file.
    DataError
        While iterating, naming the file and line: wrong number of fields, a label that
        does not convert (or is NaN), text not valid in ``encoding``, a compressed file
        that ends early.
    """
    return TextSource(paths, vectorizer, chunk_rows, label_column, text_columns, delimiter,
                      header, quoting, encoding, label_dtype)
