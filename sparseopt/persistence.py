"""Safe model files: arrays in a ``.npz``, parameters as JSON text, no pickle.

``load`` reads with ``allow_pickle=False``, so opening a model file from someone else
cannot run code. The optimizer state travels too, so a loaded model can continue with
``partial_fit`` exactly where it stopped.
"""

import json

import numpy as np

from . import _engine
from .estimators import SparseClassifier, SparseRegressor

_FORMAT = "sparseopt-model-3"  # 2: timestamps in the records; 3: records' slots named
_CLASSES = {"SparseClassifier": SparseClassifier, "SparseRegressor": SparseRegressor}
_STATE = ("P", "B", "G")


def save(model, path):
    """Write a fitted ``SparseClassifier`` or ``SparseRegressor`` to ``path`` (.npz)."""
    kind = type(model).__name__
    if kind not in _CLASSES or not hasattr(model, "_model"):
        raise ValueError("save() takes a fitted SparseClassifier or SparseRegressor")
    params = model.get_params()
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None  # a RandomState object has no safe text form
    meta = {
        "format": _FORMAT,
        "estimator": kind,
        "params": params,
        "t": int(model._model.t),
        "optimizer": model._model.optimizer,
        "slots": list(model._model.slots),
        "n_iter": int(model.n_iter_),
        "loss_curve": [float(v) for v in model.loss_curve_],
    }
    arrays = {name: getattr(model._model, name) for name in _STATE}
    arrays["coef"] = np.asarray(model.coef_.toarray() if hasattr(model.coef_, "toarray")
                                else model.coef_)
    arrays["intercept"] = model.intercept_
    if hasattr(model, "classes_"):
        classes = np.asarray(model.classes_)
        if classes.dtype == object:
            classes = classes.astype(str) if all(isinstance(c, str) for c in classes) else None
            if classes is None:
                raise ValueError("save() supports numeric or string class labels only")
        arrays["classes"] = classes
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names"] = np.asarray(model.feature_names_in_, dtype=str)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def load(path):
    """Read a model written by ``save``; never unpickles anything."""
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(str(f["meta"]))
        found = meta.get("format")
        if found != _FORMAT:
            if isinstance(found, str) and found.startswith("sparseopt-model-"):
                raise ValueError(f"{path} was written by another version of sparseopt "
                                 f"(format {found!r}; this version reads {_FORMAT!r})")
            raise ValueError(f"{path} is not a sparseopt model file")
        model = _CLASSES[meta["estimator"]](**meta["params"])
        state = _engine.LazyModel.__new__(_engine.LazyModel)
        state.optimizer = meta["optimizer"]
        state.slots = tuple(meta["slots"])
        for name in _STATE:
            setattr(state, name, f[name].copy())
        state.t = meta["t"]
        model._model = state
        model.coef_ = f["coef"].copy()
        model.intercept_ = f["intercept"].copy()
        if "classes" in f.files:
            model.classes_ = f["classes"].copy()
        if "feature_names" in f.files:
            model.feature_names_in_ = f["feature_names"].astype(object)
        model.n_features_in_ = state.P.shape[0]
        model.n_iter_ = meta["n_iter"]
        model.t_ = meta["t"]
        model.loss_curve_ = meta["loss_curve"]
        from sklearn.utils import check_random_state

        model._rng = check_random_state(model.random_state)
    return model
