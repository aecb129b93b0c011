"""Data-parallel training on a Dask cluster: the data stays on the workers, the model moves.

``fit(estimator, X, y)`` trains a ``SparseClassifier`` or ``SparseRegressor`` on data held
by Dask workers, in *rounds*: every partition starts from the same model, the exact lazy
kernel runs over its rows (one pass per epoch, or ``sync_every`` rows at a time), and the
partitions' models are combined into the start of the next round (iterative parameter
mixing, as Vowpal Wabbit's AllReduce). The combining rule of each optimizer's state and
why it is what it is: ``sparseopt._mixing`` (sums for accumulators and counters, mass-
weighted means for weights and moving averages).

What travels: the model (weights and optimizer state, a few arrays of ``n_features``
floats) to each partition's task, the partitions' models to one combining task on a
worker, and a few numbers per round (loss, rows) to the client. The rows never leave the
worker that holds them, and the client downloads the model once, at the end.

Determinism and failures: each partition is its own task, its rows shuffled by a
generator seeded from ``(random_state, epoch, partition index)``, and the models are
combined in partition order, so the result depends on neither the number of workers nor
on which worker ran which partition. Every task is a pure function of its inputs and of
data that Dask can recompute from its graph: when a worker dies mid-round, the scheduler
reruns its tasks elsewhere and the fit ends with the same model, bit for bit.

Needs ``dask`` and ``distributed`` (``pip install "sparseopt[dask]"``); ``import
sparseopt`` does not import this module.
"""

import uuid
from dataclasses import dataclass

import dask
import numpy as np
from distributed import Future, default_client
from sklearn.base import ClassifierMixin, clone
from sklearn.datasets import load_svmlight_file
from sklearn.utils import check_random_state

from . import _engine, _mixing
from .estimators import DivergenceError

__all__ = ["fit", "svmlight_partitions"]


@dataclass
class _PartitionResult:
    """What one partition's task sends to the combining task."""

    model: object  # LazyModel after the round
    loss: float  # sum of sample_weight * progressive loss over the rows processed
    weight: float  # sum of the sample weights of those rows (the intercept's mass)
    feature_mass: np.ndarray  # (n_features,) sum of sample_weight * x_ij**2


def fit(estimator, X, y=None, *, epochs=3, classes=None, sync_every=None, client=None,
        random_state=None):
    """Train ``estimator`` on data held by Dask workers, combining the models every round.

    Parameters
    ----------
    estimator : SparseClassifier or SparseRegressor
        Its hyperparameters are used (``optimizer``, ``loss``, ``alpha``, ``eta0``,
        ``shuffle``, ``class_weight`` as a dict, ...); ``max_iter``, ``tol`` and
        ``early_stopping`` are not (``epochs`` passes are run). It is fitted in place,
        starting from a fresh model, and behaves afterwards as if fitted by ``fit``
        (``partial_fit`` continues its optimizer state).
    X : dask.array.Array or sequence of dask.delayed.Delayed or distributed.Future
        Either a 2-D Dask array chunked along rows only (each block a scipy.sparse matrix
        or a NumPy array), with ``y`` a 1-D Dask array of the same row chunks; or, with
        ``y=None``, a sequence of delayed objects or futures each giving one partition's
        ``(X, y)`` (for example :func:`svmlight_partitions`). One block is one partition.
    y : dask.array.Array or None
    epochs : int, default=3
        Passes over the data.
    classes : array-like or None
        Classifier labels; None reads them from the partitions (only the distinct labels
        travel).
    sync_every : int or None, default=None
        Rows each partition processes between two combinations; None combines once per
        epoch. Smaller values track one-machine training more closely and move the model
        more often.
    client : distributed.Client or None
        None uses the default client.
    random_state : int, RandomState or None
        Seeds the shuffles; None takes ``estimator.random_state``.

    Returns
    -------
    estimator
        Fitted: ``coef_``, ``intercept_``, ``t_`` (rows processed by all partitions),
        ``n_iter_ = epochs``, ``loss_curve_`` (per epoch: mean progressive loss over all
        partitions plus the penalty of the combined model).
    """
    client = client or default_client()
    if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if sync_every is not None and not (isinstance(sync_every, (int, np.integer))
                                       and sync_every >= 1):
        raise ValueError(f"sync_every must be None or a positive int, got {sync_every!r}")
    run_id = uuid.uuid4().hex[:12]  # fresh task keys: no result of another fit is reused

    def key(name, *index):
        return "-".join(["sparseopt", name, run_id] + [str(i) for i in index])

    raw = _partition_futures(client, X, y)
    n_features = client.submit(_n_features, raw[0], key=key("width")).result()
    shell = _shell(estimator, n_features, classes, raw, client, key)
    settings = shell._settings(0)
    n_outputs = shell._n_outputs() if isinstance(shell, ClassifierMixin) else 1

    parts = [client.submit(_prepare, shell, part, key=key("prepare", p))
             for p, part in enumerate(raw)]
    n_rows = client.gather([client.submit(_n_rows, part, key=key("rows", p))
                            for p, part in enumerate(parts)])
    longest = max(n_rows)
    step = longest if sync_every is None else int(sync_every)
    rounds_per_epoch = max(1, -(-longest // step))
    base_seed = _base_seed(estimator.random_state if random_state is None else random_state)

    model = client.submit(_engine.LazyModel, settings.optimizer, n_features, n_outputs,
                          key=key("start"))
    loss_curve = []
    for epoch in range(epochs):
        epoch_loss = epoch_weight = 0.0
        for r in range(rounds_per_epoch):
            results = [
                client.submit(_train_partition, shell, settings, model, part,
                              (base_seed, epoch, p), r * step, (r + 1) * step,
                              key=key("train", epoch, r, p))
                for p, part in enumerate(parts)
            ]
            model = client.submit(_combine, model, settings, *results,
                                  key=key("combine", epoch, r))
            loss, weight, penalty, finite = client.submit(
                _summary, shell, settings, model, *results, key=key("summary", epoch, r)
            ).result()
            del results  # the combined model keeps its lineage for recomputation
            if not finite:
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}: the weights or the loss are no "
                    f"longer finite; try a smaller eta0 (now {settings.hp[0]:g})"
                )
            epoch_loss += loss
            epoch_weight += weight
        loss_curve.append(epoch_loss / max(epoch_weight, 1e-300) + penalty)

    final = model.result()
    _install(estimator, shell, final, epochs, loss_curve)
    return estimator


def svmlight_partitions(paths, n_features, **kwargs):
    """One delayed ``(X, y)`` partition per svmlight/libsvm file, read by the worker.

    Parameters
    ----------
    paths : sequence of str
        Files every worker can open (a shared file system, or each worker's own disk).
    n_features : int
        Width of every partition (must be the same for all).
    **kwargs
        Passed to :func:`sklearn.datasets.load_svmlight_file` (``zero_based``, ...).

    Returns
    -------
    list of dask.delayed.Delayed
        For :func:`fit` with ``y=None``.
    """
    return [dask.delayed(_load_svmlight, pure=True)(path, n_features, kwargs)
            for path in paths]


# --------------------------------------------------------------------------- on the client


def _partition_futures(client, X, y):
    """Futures of the partitions' raw ``(X, y)``, in partition order."""
    import dask.array as da

    if isinstance(X, da.Array):
        if not isinstance(y, da.Array):
            raise ValueError("with a Dask array X, y must be a Dask array with the same "
                             "row chunks")
        if X.ndim != 2 or X.numblocks[1] != 1:
            raise ValueError(
                "X must be a 2-D Dask array chunked along rows only (one block of columns): "
                "use X.rechunk({1: -1})"
            )
        if y.ndim != 1 or y.chunks[0] != X.chunks[0]:
            raise ValueError(f"y must be 1-D with X's row chunks {X.chunks[0]}, got "
                             f"{y.chunks}")
        blocks = [dask.delayed(tuple)([xb, yb]) for xb, yb in
                  zip(X.to_delayed().ravel(), y.to_delayed().ravel())]
        return client.compute(blocks)
    if y is not None:
        raise ValueError("y must be None when X is a sequence of (X, y) partitions")
    items = list(X)
    if not items:
        raise ValueError("no partitions")
    if all(isinstance(item, Future) for item in items):
        return items
    if all(dask.is_dask_collection(item) for item in items):
        return client.compute(items)
    raise ValueError("X must be a Dask array, or a sequence of delayed objects or futures "
                     "each giving an (X, y) partition")


def _shell(estimator, n_features, classes, raw, client, key):
    """An unfitted clone that knows the labels and width: workers validate with it."""
    shell = clone(estimator)
    shell._check_params()
    if getattr(shell, "early_stopping", False):
        raise ValueError("early_stopping is not available with sparseopt.dask.fit; "
                         "it runs `epochs` passes")
    if isinstance(shell, ClassifierMixin):
        if isinstance(shell.class_weight, str):
            raise ValueError(
                "class_weight='balanced' would be computed per partition; pass a dict "
                "(sklearn.utils.compute_class_weight on the labels) instead"
            )
        if classes is None:
            labels = client.gather([client.submit(_labels, part, key=key("labels", p))
                                    for p, part in enumerate(raw)])
            classes = np.unique(np.concatenate(labels))
        shell.classes_ = np.unique(np.asarray(classes))
        if len(shell.classes_) < 2:
            raise ValueError(f"need at least two classes, got {shell.classes_!r}")
    shell.n_features_in_ = int(n_features)
    return shell


def _base_seed(random_state):
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def _install(estimator, shell, model, epochs, loss_curve):
    """Make ``estimator`` look fitted by its own ``fit`` on one machine."""
    for attr in ("coef_", "intercept_", "classes_", "feature_names_in_"):
        if hasattr(estimator, attr):
            delattr(estimator, attr)
    if hasattr(shell, "classes_"):
        estimator.classes_ = shell.classes_
    estimator.n_features_in_ = shell.n_features_in_
    estimator._model = model
    estimator._rng = check_random_state(estimator.random_state)
    estimator.loss_curve_ = list(loss_curve)
    estimator.n_iter_ = epochs
    estimator.t_ = model.t
    estimator._set_coef(model)


# --------------------------------------------------------------------------- on the workers


def _load_svmlight(path, n_features, kwargs):
    X, y = load_svmlight_file(path, n_features=n_features, **kwargs)
    return X, y


def _n_features(part):
    return int(part[0].shape[1])


def _labels(part):
    return np.unique(np.asarray(part[1]))


def _n_rows(part):
    return int(part[0].shape[0])


def _prepare(shell, part):
    """Validate a partition once and turn it into kernel input (CSR, label codes, weights)."""
    X, y = part
    return shell._prepare(X, y, None, False)


def _train_partition(shell, settings, model, part, seed, start, stop):
    """Run rows ``start:stop`` of this epoch's shuffled order of one partition."""
    X, y, sample_weight = part
    n = X.shape[0]
    # The estimator's own shuffle mode (blocks of rows by default), seeded per partition.
    order = _engine.row_order(n, shell.shuffle, np.random.default_rng(list(seed)))[start:stop]
    # A worker hands the same deserialized model to all its tasks of the round: copy it.
    model = model.copy()
    loss = model.run_epoch(X, y, sample_weight, order, settings).loss if order.size else 0.0
    row_weight = np.zeros(n)
    row_weight[order] = sample_weight[order]
    per_nonzero = np.repeat(row_weight, np.diff(X.indptr)) * np.square(X.data)
    mass = np.bincount(X.indices, weights=per_nonzero, minlength=X.shape[1])
    return _PartitionResult(model, float(loss), float(row_weight.sum()), mass)


def _combine(start, settings, *results):
    return _mixing.combine(start, [r.model for r in results],
                           np.stack([r.feature_mass for r in results]),
                           np.array([r.weight for r in results]), settings)


def _summary(shell, settings, model, *results):
    """(loss, weight, penalty, finite) of a round: a few numbers for the client."""
    loss = float(sum(r.loss for r in results))
    weight = float(sum(r.weight for r in results))
    penalty = shell._penalty(settings, *model.penalty_sums())  # NaN if not finite
    finite = bool(np.isfinite(loss) and np.isfinite(penalty))
    return loss, weight, penalty, finite
