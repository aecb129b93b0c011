"""The trajectory picture: six optimizers on a two-feature logistic regression.

This is a picture, not the kernel: tiny dense numpy versions of the update rules written
in the README (one weight vector, no intercept, no laziness). The data have one frequent
feature and one rare feature (nonzero in ~15% of the rows), so the objective is a long
valley along the rare weight: where plain SGD crawls and the per-coordinate methods
rescale.

Every optimizer sees the same sequence of mini-batches of two rows and takes the same
number of steps from the same start. The objective is the mean log loss plus
``lam/2 * |w|^2``: SGD, Adagrad, RMSProp, Adadelta and Adam add ``lam * w`` to the
gradient (classic L2); AdamW decays the weight directly, ``w -= eta*lam*w``, outside the
adaptive scaling (Loshchilov & Hutter). (``sparseopt``'s own ``adam`` is always the
decoupled form, so it is the AdamW path here.)
"""

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

N_POINTS = 200
BATCH = 2
LAM = 0.01
START = np.array([-1.5, -2.5])

# Step sizes for the picture (the README's rules, not sparseopt's defaults: with Adam's
# 0.001 nothing would move visibly in a few hundred steps).
STEP_SIZES = {
    "sgd": 0.5,
    "adagrad": 0.5,
    "rmsprop": 0.05,
    "adadelta": 1.0,
    "adam": 0.05,
    "adamw": 0.05,
}


def make_problem(seed=0, n=N_POINTS):
    """``n`` points: x1 dense N(0,1), x2 rare (15% of rows, N(0,1) there)."""
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    x2 = rng.standard_normal(n) * (rng.random(n) < 0.15)
    X = np.column_stack([x1, x2])
    w_true = np.array([1.0, 5.0])
    y = (rng.random(n) < expit(X @ w_true)).astype(float)
    return X, y


def objective(w, X, y, lam=LAM):
    z = X @ w
    return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * w @ w)


def _grad(w, X, y):
    return X.T @ (expit(X @ w) - y) / len(y)


def optimum(X, y, lam=LAM):
    res = minimize(objective, np.zeros(2), args=(X, y, lam),
                   jac=lambda w, X, y, lam: _grad(w, X, y) + lam * w, method="BFGS")
    return res.x


def batches(n, n_steps, seed=1, batch=BATCH):
    """Index arrays of the mini-batches: reshuffled epochs, cut into ``batch`` rows."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_steps:
        order = rng.permutation(n)
        out.extend(order[i:i + batch] for i in range(0, n - batch + 1, batch))
    return out[:n_steps]


def run(name, X, y, idx, eta, lam=LAM, eps=None, rho=0.9, b1=0.9, b2=0.999, start=START):
    """Path (n_steps + 1, 2) of optimizer ``name`` over the mini-batches ``idx``."""
    if eps is None:
        eps = 1e-6 if name == "adadelta" else 1e-8
    w = np.array(start, dtype=float)
    v = np.zeros(2)
    u = np.zeros(2)
    m = np.zeros(2)
    path = [w.copy()]
    for t, rows in enumerate(idx, start=1):
        g = _grad(w, X[rows], y[rows])
        if name != "adamw":
            g = g + lam * w
        if name == "sgd":
            w = w - eta * g
        elif name == "adagrad":
            v += g * g
            w = w - eta * g / (np.sqrt(v) + eps)
        elif name == "rmsprop":
            v = rho * v + (1 - rho) * g * g
            w = w - eta * g / (np.sqrt(v) + eps)
        elif name == "adadelta":
            v = rho * v + (1 - rho) * g * g
            d = np.sqrt(u + eps) / np.sqrt(v + eps) * g
            w = w - eta * d
            u = rho * u + (1 - rho) * d * d
        elif name in ("adam", "adamw"):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            step = eta * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
            if name == "adamw":
                w = (1 - eta * lam) * w - step
            else:
                w = w - step
        else:
            raise ValueError(f"unknown optimizer {name!r}")
        path.append(w.copy())
    return np.array(path)


def compute(n_steps=300, seed=0):
    """Everything the figure needs: data, optimum, contour grid and paths."""
    X, y = make_problem(seed)
    w_star = optimum(X, y)
    idx = batches(len(y), n_steps, seed + 1)
    paths = {name: run(name, X, y, idx, eta) for name, eta in STEP_SIZES.items()}
    lo = np.minimum(START, w_star) - 1.0
    hi = np.maximum(START, w_star) + 1.0
    for p in paths.values():
        lo = np.minimum(lo, p.min(axis=0) - 0.3)
        hi = np.maximum(hi, p.max(axis=0) + 0.3)
    g1 = np.linspace(lo[0], hi[0], 160)
    g2 = np.linspace(lo[1], hi[1], 160)
    W1, W2 = np.meshgrid(g1, g2)
    Z = X[:, 0, None, None] * W1 + X[:, 1, None, None] * W2  # (n, 160, 160)
    F = np.mean(np.logaddexp(0.0, Z) - y[:, None, None] * Z, axis=0)
    F += 0.5 * LAM * (W1**2 + W2**2)
    final = {name: objective(p[-1], X, y) for name, p in paths.items()}
    return {
        "X": X, "y": y, "w_star": w_star, "f_star": objective(w_star, X, y),
        "W1": W1, "W2": W2, "F": F, "paths": paths, "final_objective": final,
        "n_steps": n_steps, "batch": BATCH, "lam": LAM, "start": START.copy(),
        "step_sizes": dict(STEP_SIZES),
    }
