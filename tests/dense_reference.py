"""Dense reference implementation of the optimizer contract (the test oracle).

This is a deliberately naive, plain NumPy implementation of ``shared/LAZY_UPDATES.md``:
every coordinate of the weight matrix is updated at every step with the literal formulas
of the contract (``g = 0`` for the features absent from the row). It shares no code with
the engine (not even the loss functions), so that a mistake in one is not silently
repeated in the other. Speed does not matter; readability does.

Shapes: ``X`` is (n, d), the weights ``w`` are (d, K), the intercept ``b`` is (K,),
``K = n_outputs``.
"""

import math

import numpy as np

__all__ = ["dense_fit", "STATE_NAMES", "loss_value_and_derivative", "dense_mean_loss"]

# Optimizer state arrays, by the names the engine exposes (``model.state(name)``).
STATE_NAMES = {
    "sgd": (),
    "adagrad": ("v",),
    "rmsprop": ("v",),
    "adadelta": ("v", "delta"),
    "adam": ("m", "v"),
    "ftrl": ("z", "n"),
}

BINARY_LOSSES = ("log_loss", "hinge", "modified_huber")
REGRESSION_LOSSES = ("squared_error", "huber", "epsilon_insensitive")
ALL_LOSSES = BINARY_LOSSES + REGRESSION_LOSSES + ("multinomial",)

L1_OPTIMIZERS = ("sgd", "adagrad", "ftrl")
SCHEDULE_OPTIMIZERS = ("sgd",)


# --------------------------------------------------------------------------------------
# Losses: value and derivative with respect to the margin z, for one scalar output.
# --------------------------------------------------------------------------------------


def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _scalar_loss(loss, z, target, c):
    """(value, d value / d z) of one output with margin ``z``.

    ``target`` is the binary target in {0, 1} for classification losses and the real
    target for regression losses; ``c`` is the huber / epsilon-insensitive parameter.
    """
    if loss == "log_loss":
        value = math.log1p(math.exp(-abs(z))) + max(z, 0.0) - target * z
        return value, _sigmoid(z) - target
    if loss == "hinge":
        ys = 2.0 * target - 1.0
        value = max(0.0, 1.0 - ys * z)
        return value, (-ys if ys * z <= 1.0 else 0.0)
    if loss == "modified_huber":
        ys = 2.0 * target - 1.0
        m = ys * z
        if m >= 1.0:
            return 0.0, 0.0
        if m >= -1.0:
            return (1.0 - m) ** 2, -2.0 * ys * (1.0 - m)
        return -4.0 * m, -4.0 * ys
    if loss == "squared_error":
        r = z - target
        return 0.5 * r * r, r
    if loss == "huber":
        r = z - target
        if abs(r) <= c:
            return 0.5 * r * r, r
        return c * abs(r) - 0.5 * c * c, c * np.sign(r)
    if loss == "epsilon_insensitive":
        value = max(0.0, abs(target - z) - c)
        if target - z > c:
            return value, -1.0
        if z - target > c:
            return value, 1.0
        return value, 0.0
    raise ValueError(f"unknown scalar loss {loss!r}")


def loss_value_and_derivative(loss, z, y, epsilon_loss=0.1):
    """Loss value (summed over outputs) and its derivative ``dl`` (K,) for margins ``z`` (K,).

    ``y`` is the class index (as a float) for classification losses and the real target
    for regression losses. Not multiplied by the sample weight.
    """
    z = np.asarray(z, dtype=np.float64)
    K = z.shape[0]
    if loss == "multinomial":
        if K < 2:
            raise ValueError("multinomial needs n_outputs >= 2")
        label = int(y)
        zmax = z.max()
        e = np.exp(z - zmax)
        p = e / e.sum()
        value = zmax + math.log(e.sum()) - z[label]
        onehot = np.zeros(K)
        onehot[label] = 1.0
        return value, p - onehot
    if K == 1:
        value, dl = _scalar_loss(loss, float(z[0]), float(y), epsilon_loss)
        return value, np.array([dl], dtype=np.float64)
    if loss not in BINARY_LOSSES:
        raise ValueError(f"{loss!r} with n_outputs={K} is not part of the contract")
    # K > 1 with a binary loss: independent one-vs-rest problems, output k is "y == k".
    value = 0.0
    dl = np.zeros(K)
    for k in range(K):
        target = 1.0 if int(y) == k else 0.0
        v, dl[k] = _scalar_loss(loss, float(z[k]), target, epsilon_loss)
        value += v
    return value, dl


def dense_mean_loss(X, y, coef, intercept, loss, sample_weight=None, epsilon_loss=0.1):
    """Mean (optionally sample-weighted: sum(sw*loss)/n) loss of a fixed model."""
    X = np.asarray(X, dtype=np.float64)
    Z = X @ coef + intercept
    n = X.shape[0]
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    total = 0.0
    for i in range(n):
        total += sw[i] * loss_value_and_derivative(loss, Z[i], y[i], epsilon_loss)[0]
    return total / n


# --------------------------------------------------------------------------------------
# Learning-rate schedules.
# --------------------------------------------------------------------------------------


def _optimal_init(loss, alpha, epsilon_loss):
    """Offset of scikit-learn's "optimal" schedule (``_plain_sgd``).

    scikit-learn: ``typw = sqrt(1/sqrt(alpha))``,
    ``initial_eta0 = typw / max(1.0, loss.dloss(y=1.0, p=-typw))`` -- the *signed*
    derivative at margin ``-typw`` of a positive example (binary target 1 / regression
    target 1), ``optimal_init = 1/(initial_eta0*alpha)``. For every loss of the contract
    that derivative is negative, so scikit-learn's ``initial_eta0`` is ``typw``.
    """
    typw = math.sqrt(1.0 / math.sqrt(alpha))
    _, dl = _scalar_loss("log_loss" if loss == "multinomial" else loss, -typw, 1.0, epsilon_loss)
    initial_eta0 = typw / max(1.0, dl)
    return 1.0 / (initial_eta0 * alpha)


def make_schedule(
    learning_rate, eta0, power_t=0.5, lam=0.0, lam1=0.0, loss="log_loss", epsilon_loss=0.1
):
    """Return ``eta(t)`` for the step t = 1, 2, ..."""
    if learning_rate == "constant":
        return lambda t: eta0
    if learning_rate == "invscaling":
        return lambda t: eta0 / t**power_t
    if learning_rate == "optimal":
        alpha = lam + lam1
        if not alpha > 0.0:
            raise ValueError("the optimal schedule needs lam + lam1 > 0")
        optimal_init = _optimal_init(loss, alpha, epsilon_loss)
        return lambda t: 1.0 / (alpha * (optimal_init + t - 1))
    raise ValueError(f"unknown learning_rate {learning_rate!r}")


# --------------------------------------------------------------------------------------
# One step of each optimizer, applied to a whole array of coordinates.
# ``w`` and the state arrays are updated in place; ``g`` is the gradient (0 where the
# feature is absent), ``c`` the decoupled decay factor 1 - eta*lam (1 for the intercept).
# --------------------------------------------------------------------------------------


def _step(optimizer, w, g, st, *, eta, c, t, lam1, lam2, hp):
    eps = hp["epsilon"]
    if optimizer == "sgd":
        w[...] = c * w - eta * g
        if lam1 > 0.0:
            # Cumulative L1 penalty (Tsuruoka et al. 2009) whose records decay with the
            # weights: global A, per-coordinate B.
            st["A"] = c * st["A"] + eta * lam1
            A = st["A"]
            B = st["B"]
            B *= c
            old = w.copy()
            pos = w > 0.0
            neg = w < 0.0
            w[pos] = np.maximum(0.0, w[pos] - (A + B[pos]))
            w[neg] = np.minimum(0.0, w[neg] + (A - B[neg]))
            B += w - old
    elif optimizer == "adagrad":
        v = st["v"]
        v += g * g
        w[...] = c * w - eta * g / (np.sqrt(v) + eps)
        if lam1 > 0.0:
            w[...] = np.sign(w) * np.maximum(np.abs(w) - eta * lam1 / (np.sqrt(v) + eps), 0.0)
    elif optimizer == "rmsprop":
        rho = hp["rho"]
        v = st["v"]
        v[...] = rho * v + (1.0 - rho) * g * g
        w[...] = c * w - eta * g / (np.sqrt(v) + eps)
    elif optimizer == "adadelta":
        rho = hp["rho"]
        v = st["v"]
        delta = st["delta"]
        v[...] = rho * v + (1.0 - rho) * g * g
        d = np.sqrt(delta + eps) / np.sqrt(v + eps) * g
        w[...] = c * w - eta * d
        delta[...] = rho * delta + (1.0 - rho) * d * d
    elif optimizer == "adam":
        b1 = hp["beta_1"]
        b2 = hp["beta_2"]
        m = st["m"]
        v = st["v"]
        m[...] = b1 * m + (1.0 - b1) * g
        v[...] = b2 * v + (1.0 - b2) * g * g
        mh = m / (1.0 - b1**t)
        vh = v / (1.0 - b2**t)
        w[...] = c * w - eta * mh / (np.sqrt(vh) + eps)
    elif optimizer == "ftrl":
        a = eta  # its alpha: eta0 (constant), times intercept_rate for the intercept
        beta = hp["ftrl_beta"]
        z = st["z"]
        n = st["n"]
        sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / a
        z += g - sigma * w
        n += g * g
        with np.errstate(divide="ignore", invalid="ignore"):  # beta = 0, n = 0: unused
            closed_form = -(z - np.sign(z) * lam1) / ((beta + np.sqrt(n)) / a + lam2)
        w[...] = np.where(np.abs(z) <= lam1, 0.0, closed_form)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")


def _check_combination(optimizer, loss, n_outputs, lam1, learning_rate):
    if optimizer not in STATE_NAMES:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    if loss not in ALL_LOSSES:
        raise ValueError(f"unknown loss {loss!r}")
    if lam1 > 0.0 and optimizer not in L1_OPTIMIZERS:
        raise ValueError(f"L1 is not offered for {optimizer!r}")
    if learning_rate != "constant" and optimizer not in SCHEDULE_OPTIMIZERS:
        raise ValueError(f"schedule {learning_rate!r} is not offered for {optimizer!r}")
    if loss == "multinomial" and n_outputs < 2:
        raise ValueError("multinomial needs n_outputs >= 2")
    if loss in REGRESSION_LOSSES and n_outputs != 1:
        raise ValueError("regression losses take one output")


def dense_fit(
    X,
    y,
    sw,
    orders,
    optimizer,
    loss,
    n_outputs,
    *,
    eta0,
    lam=0.0,
    lam1=0.0,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
    rho=0.9,
    ftrl_beta=1.0,
    learning_rate="constant",
    power_t=0.5,
    epsilon_loss=0.1,
    fit_intercept=True,
    intercept_rate=1.0,
    t_start=0,
    state=None,
):
    """Run the dense reference over the epochs ``orders`` (one row order per epoch).

    Returns a dict: "coef" (d, K), "intercept" (K,), "t" (steps done), each optimizer
    state array of the weights by name (d, K) and of the intercept as "intercept_<name>"
    (K,), the L1 bookkeeping of sgd ("l1_A", "l1_B"), and "losses": the loss value of
    every step at the margins before that step's update (not sample-weighted), one list
    per epoch. Pass the returned dict as ``state`` to continue (then ``t_start`` is
    ignored and the step counter continues from ``state["t"]``).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    sw = np.asarray(sw, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError("X must be 2-d")
    n, d = X.shape
    K = int(n_outputs)
    _check_combination(optimizer, loss, K, lam1, learning_rate)
    names = STATE_NAMES[optimizer]

    if state is None:
        w = np.zeros((d, K))
        b = np.zeros(K)
        st_w = {name: np.zeros((d, K)) for name in names}
        st_b = {name: np.zeros(K) for name in names}
        st_w["A"] = 0.0
        st_w["B"] = np.zeros((d, K))
        t = int(t_start)
    else:
        w = np.array(state["coef"], dtype=np.float64, copy=True)
        b = np.array(state["intercept"], dtype=np.float64, copy=True)
        st_w = {name: np.array(state[name], dtype=np.float64, copy=True) for name in names}
        st_b = {
            name: np.array(state["intercept_" + name], dtype=np.float64, copy=True)
            for name in names
        }
        st_w["A"] = float(state["l1_A"])
        st_w["B"] = np.array(state["l1_B"], dtype=np.float64, copy=True)
        t = int(state["t"])

    hp = dict(
        eta0=eta0, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, rho=rho, ftrl_beta=ftrl_beta
    )
    eta_of = make_schedule(learning_rate, eta0, power_t, lam, lam1, loss, epsilon_loss)

    losses = []
    for order in orders:
        epoch_losses = []
        for i in np.asarray(order, dtype=np.int64):
            t += 1
            x = X[i]
            z = x @ w + b  # margins with the weights before this step
            value, dl = loss_value_and_derivative(loss, z, y[i], epsilon_loss)
            epoch_losses.append(value)
            dl = sw[i] * dl
            g = np.outer(x, dl)  # (d, K); exactly 0 for the features absent from the row
            eta = eta_of(t)
            if optimizer == "ftrl":
                # FTRL: no decoupled decay, its L2 is lam2 = lam inside the closed form.
                _step(optimizer, w, g, st_w, eta=eta, c=1.0, t=t, lam1=lam1, lam2=lam, hp=hp)
            else:
                _step(
                    optimizer,
                    w,
                    g,
                    st_w,
                    eta=eta,
                    c=1.0 - eta * lam,
                    t=t,
                    lam1=lam1,
                    lam2=0.0,
                    hp=hp,
                )
            if fit_intercept:
                # Never decayed, never L1-penalized; same rule with its own state, its step
                # size eta * intercept_rate.
                _step(optimizer, b, dl, st_b, eta=eta * intercept_rate, c=1.0, t=t, lam1=0.0,
                      lam2=0.0, hp=hp)
        losses.append(epoch_losses)

    out = {
        "coef": w,
        "intercept": b,
        "t": t,
        "losses": losses,
        "l1_A": st_w["A"],
        "l1_B": st_w["B"],
    }
    for name in names:
        out[name] = st_w[name]
        out["intercept_" + name] = st_b[name]
    return out
