"""sparseopt: adaptive optimizers for linear models on large sparse data.

Numba kernels run SGD, Adagrad, RMSProp, Adadelta, Adam/AdamW and FTRL-Proximal over CSR
rows with exact lazy per-coordinate updates; ``SparseClassifier`` and
``SparseRegressor`` wrap them as scikit-learn estimators.

Nothing is compiled at import, and nothing heavy is imported until it is used: the
estimators (and scikit-learn with them) load on first access.
"""

__version__ = "0.1.0"
__all__ = ["SparseClassifier", "SparseRegressor", "DivergenceError", "save", "load"]

_LAZY = {
    "SparseClassifier": "estimators",
    "SparseRegressor": "estimators",
    "DivergenceError": "estimators",
    "save": "persistence",
    "load": "persistence",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparseopt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
