"""sparseopt: adaptive optimizers for linear models on large sparse data.

Numba kernels run SGD, Adagrad, RMSProp, Adadelta, Adam/AdamW and FTRL-Proximal over CSR
rows with exact lazy per-coordinate updates; ``SparseClassifier`` and
``SparseRegressor`` wrap them as scikit-learn estimators. Nothing is compiled at import.
"""

from .estimators import DivergenceError, SparseClassifier, SparseRegressor
from .persistence import load, save

__version__ = "0.1.0"
__all__ = ["SparseClassifier", "SparseRegressor", "DivergenceError", "save", "load"]
