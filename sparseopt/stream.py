"""Training from files larger than memory: chunk readers and ``fit_stream``.

Memory is bounded by the chunk (or the shuffle buffer of chunks) and the model, never the
file::

    from sparseopt import SparseClassifier
    from sparseopt.stream import fit_stream, svmlight_chunks

    source = svmlight_chunks(["day1.svm.gz", "day2.svm.gz"], n_features=2**20)
    model = fit_stream(SparseClassifier(shuffle=False), source, epochs=3, classes=[0, 1],
                       holdout_every=10)
    model.stream_history_[-1].holdout_loss

With ``shuffle=False`` on the estimator and no ``shuffle_buffer``, training over chunks is
the same computation as ``fit`` on the whole file with ``shuffle=False`` and
``max_iter=epochs`` (the engine brings every weight up to date at the end of each
``partial_fit`` call, and its lazy catch-up is exact), so ``coef_`` agrees to rounding.
"""

import math
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.utils import check_random_state

from ._readers import (
    DEFAULT_CHUNK_ROWS,
    Chunk,
    DataError,
    SvmlightSource,
    TextSource,
    open_binary,
    svmlight_chunks,
    text_chunks,
)
from ._validation import check_number

__all__ = ["fit_stream", "svmlight_chunks", "text_chunks", "EpochRecord", "Chunk",
           "DataError", "SvmlightSource", "TextSource", "DEFAULT_CHUNK_ROWS", "open_binary",
           "discover_classes", "EPOCH_TABLE_HEADER", "format_epoch"]


@dataclass
class EpochRecord:
    """What ``fit_stream`` measured over one epoch.

    Attributes
    ----------
    epoch : int
        Counted from 1 within this ``fit_stream`` call.
    rows : int
        Rows trained on (hold-out rows excluded).
    holdout_rows : int
    seconds : float
        Wall time of the epoch, reading and parsing included.
    train_loss : float
        Progressive training loss: the mean loss of each trained row, taken just before
        its own step (as Vowpal Wabbit's "average loss"); the penalty is not included.
    holdout_loss : float or None
        Mean loss of the hold-out rows (None without ``holdout_every``); each hold-out
        chunk is scored by the model as it is when the chunk goes by (progressive
        validation), and is never trained on.
    """

    epoch: int
    rows: int
    holdout_rows: int
    seconds: float
    train_loss: float
    holdout_loss: object = None

    @property
    def rows_per_second(self):
        return (self.rows + self.holdout_rows) / self.seconds if self.seconds > 0 else math.inf


def _where(chunk, index, row):
    if isinstance(chunk, Chunk):
        return chunk.path, chunk.line_of(row)
    return f"chunk {index}", f"row {row}"


def _check_labels(chunk, index, y, classes):
    """Raise naming the line of the first label outside ``classes`` (an ndarray)."""
    y = np.asarray(y)
    bad = ~np.isin(y, classes)
    if bad.any():
        row = int(np.argmax(bad))
        path, line = _where(chunk, index, row)
        message = f"label {y[row].item()!r} is not one of classes {classes.tolist()}"
        if isinstance(chunk, Chunk):
            raise DataError(path, line, message)
        raise ValueError(f"{path}, {line}: {message}")


def discover_classes(source):
    """Every label in ``source``: one full pass, holding only the distinct labels."""
    classes = None
    for _, y in source:
        if y is None:
            raise ValueError("the source has no labels (label_column=None)")
        labels = np.unique(y)
        classes = labels if classes is None else np.union1d(classes, labels)
    if classes is None:
        raise ValueError("the source has no rows")
    return classes


class _Trainer:
    """``partial_fit`` calls with the bookkeeping of one epoch (losses, rows)."""

    def __init__(self, estimator, classes):
        self.estimator = estimator
        self.kwargs = {} if classes is None else {"classes": classes}
        self.classes = classes

    def start_epoch(self):
        self.rows = self.holdout_rows = 0
        self.train_loss_sum = self.holdout_loss_sum = 0.0

    def train(self, X, y):
        estimator = self.estimator
        estimator.partial_fit(X, y, **self.kwargs)
        # loss_curve_[-1] is this call's objective: the progressive mean loss plus the
        # penalty at its end; the penalty is taken off so that train and hold-out losses
        # measure the same thing.
        self.train_loss_sum += X.shape[0] * (estimator.loss_curve_[-1] - _penalty(estimator))
        self.rows += X.shape[0]

    @property
    def fitted(self):
        return hasattr(self.estimator, "_model")

    def score_holdout(self, X, y):
        estimator = self.estimator
        target = np.searchsorted(estimator.classes_, y) if self.classes is not None else y
        mean = estimator._mean_loss(X, target.astype(np.float64), np.ones(X.shape[0]))
        self.holdout_loss_sum += X.shape[0] * mean
        self.holdout_rows += X.shape[0]


def _penalty(estimator):
    """The penalty term of the estimator's objective at its current weights."""
    settings = estimator._settings(estimator._model.t)
    return estimator._penalty(settings, *estimator._model.penalty_sums())


def _progress_bar(progress, epoch, total):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=f"epoch {epoch}", unit=" rows", unit_scale=True,
                leave=False, file=sys.stderr)


def fit_stream(estimator, source, epochs=3, classes=None, holdout_every=None,
               shuffle_buffer=None, random_state=None, progress=None, verbose=0):
    """Train ``estimator`` through ``partial_fit`` over ``source`` for several epochs.

    The estimator's optimizer state and step counter run on from chunk to chunk and from
    epoch to epoch, as in ``fit``. An estimator already fitted continues from its state
    (as with ``partial_fit``); pass ``sklearn.base.clone(estimator)`` to start afresh.

    Parameters
    ----------
    estimator : SparseClassifier or SparseRegressor
        Or any estimator with ``partial_fit``, although the losses reported need a
        sparseopt estimator.
    source : re-iterable of (X, y)
        Iterated once per epoch (plus once more to find ``classes`` if needed), so it must
        start again on each ``iter()``: :func:`svmlight_chunks`, :func:`text_chunks`, a
        list of ``(X, y)`` pairs. A generator is refused when ``epochs > 1``.
    epochs : int, default=3
    classes : array-like or None, default=None
        All labels (classifiers). None: the estimator's ``classes_`` if it is already
        fitted, otherwise found by a first pass over ``source``. A label outside
        ``classes`` raises :class:`DataError` naming its file and line.
    holdout_every : int or None, default=None
        Hold out every k-th chunk (chunks k-1, 2k-1, ... counted from 0): never trained
        on, scored with the current model when it goes by (progressive validation, as
        Vowpal Wabbit's hold-out); the mean is reported after each epoch. A hold-out chunk
        met before anything was trained (possible with ``shuffle_buffer``) is scored after
        the first training call.
    shuffle_buffer : int or None, default=None
        Gather this many training chunks, permute their rows together and train on them in
        one ``partial_fit`` call: rows mix across chunks, memory grows to that many
        chunks. Off by default, so that streaming follows the file order exactly.
        Independently of this, ``partial_fit`` permutes the rows it is given when the
        estimator's ``shuffle`` is True (its default, with its ``random_state``): set
        ``shuffle=False`` on the estimator for training in file order, the one that equals
        ``fit(X, y)`` with ``shuffle=False`` to rounding.
    random_state : int, RandomState or None, default=None
        Seeds the shuffle buffer's permutations (the same seed gives the same model).
    progress : bool or None, default=None
        A tqdm progress bar with rows/s on stderr; None shows it when stderr is a
        terminal. Without tqdm installed there is no bar.
    verbose : int, default=0
        Print a table on stdout, one line per epoch as it ends (epoch, rows, seconds,
        rows/s, training loss, hold-out loss).

    Returns
    -------
    estimator
        Fitted, with ``stream_history_``: a list of :class:`EpochRecord`, one per
        completed epoch (rows, seconds, progressive training loss, hold-out loss).

    Raises
    ------
    DataError
        On a malformed line, a label outside ``classes`` or a truncated compressed file,
        naming the file and line. The estimator then keeps the state it had after its last
        complete ``partial_fit`` call: the rows of the chunk that failed (and of a
        partly filled shuffle buffer) are not trained on; ``stream_history_`` holds the
        completed epochs.
    DivergenceError
        As raised by ``partial_fit`` (the estimator is then left unfitted).
    """
    check_number("epochs", epochs, low=1, integer=True)
    check_number("holdout_every", holdout_every, low=2, integer=True, allow_none=True)
    check_number("shuffle_buffer", shuffle_buffer, low=1, integer=True, allow_none=True)
    if epochs > 1 and iter(source) is source:
        raise TypeError("source is an iterator, consumed after one epoch: pass a re-iterable "
                        "object (svmlight_chunks, text_chunks, a list of (X, y) pairs)")
    if is_classifier(estimator):
        if classes is None:
            classes = (estimator.classes_ if hasattr(estimator, "classes_")
                       else discover_classes(source))
        classes = np.unique(np.asarray(classes))
    else:
        classes = None
    rng = check_random_state(random_state)
    trainer = _Trainer(estimator, classes)
    estimator.stream_history_ = history = []
    total = None
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        trainer.start_epoch()
        bar = _progress_bar(progress, epoch, total)
        try:
            _run_epoch(trainer, source, holdout_every, shuffle_buffer, rng, bar)
        finally:
            if bar is not None:
                bar.close()
        if trainer.rows == 0:
            raise ValueError("the source has no training rows")
        record = EpochRecord(
            epoch=epoch, rows=trainer.rows, holdout_rows=trainer.holdout_rows,
            seconds=time.perf_counter() - start,
            train_loss=float(trainer.train_loss_sum / trainer.rows),
            holdout_loss=(float(trainer.holdout_loss_sum / trainer.holdout_rows)
                          if trainer.holdout_rows else None),
        )
        history.append(record)
        if holdout_every is not None and epoch == 1 and not record.holdout_rows:
            warnings.warn(f"holdout_every={holdout_every}, but the source has fewer than "
                          f"{holdout_every} chunks: nothing was held out (lower chunk_rows)",
                          stacklevel=2)
        total = trainer.rows + trainer.holdout_rows
        if verbose:
            if epoch == 1:
                print(EPOCH_TABLE_HEADER)
            print(format_epoch(record), flush=True)
    return estimator


EPOCH_TABLE_HEADER = (f"{'epoch':>5}  {'rows':>12}  {'seconds':>9}  {'rows/s':>10}  "
                      f"{'train loss':>11}  {'hold-out loss':>13}")


def format_epoch(record):
    """One row of the table ``fit_stream(verbose=1)`` prints (header: EPOCH_TABLE_HEADER)."""
    holdout = "-" if record.holdout_loss is None else f"{record.holdout_loss:.6g}"
    return (f"{record.epoch:>5}  {record.rows:>12,}  {record.seconds:>9.2f}  "
            f"{record.rows_per_second:>10,.0f}  {record.train_loss:>11.6g}  {holdout:>13}")


def _run_epoch(trainer, source, holdout_every, shuffle_buffer, rng, bar):
    buffer = []  # training chunks waiting for a shuffled partial_fit
    waiting = []  # hold-out chunks met before anything was trained

    def train_buffer():
        if shuffle_buffer is None:
            (X, y), = buffer
        else:
            X = sp.vstack([X for X, _ in buffer], format="csr")
            y = np.concatenate([y for _, y in buffer])
            order = rng.permutation(X.shape[0])
            X, y = X[order], y[order]
        buffer.clear()
        trainer.train(X, y)
        for X, y in waiting:
            trainer.score_holdout(X, y)
        waiting.clear()

    for index, chunk in enumerate(source):
        X, y = chunk
        if y is None:
            raise ValueError("the source has no labels (label_column=None)")
        if trainer.classes is not None:
            _check_labels(chunk, index, y, trainer.classes)
        if X.shape[0] == 0:
            continue
        if holdout_every is not None and index % holdout_every == holdout_every - 1:
            if trainer.fitted:
                trainer.score_holdout(X, y)
            else:
                waiting.append((X, y))
        else:
            buffer.append((X, y))
            if len(buffer) >= (shuffle_buffer or 1):
                train_buffer()
        if bar is not None:
            bar.update(X.shape[0])
    if buffer:
        train_buffer()
