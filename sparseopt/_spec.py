"""Integer codes and the hyperparameter layout shared by the kernels and the engine.

Kernels receive hyperparameters as one float64 array ``hp`` (plain numbers keep
``cache=True`` working) and the loss and schedule as small integers, switched once per
row. The names below are the only place these positions are written down.
"""

# Positions in the float64 hyperparameter array ``hp``.
ETA0 = 0  # base step size (FTRL: its ``alpha``)
LAM = 1  # L2: decoupled weight decay (FTRL: ``lam2`` inside its closed form)
LAM1 = 2  # L1 strength
BETA1 = 3  # Adam first-moment decay
BETA2 = 4  # Adam second-moment decay
EPS = 5  # damping added to the denominator of adaptive steps
RHO = 6  # RMSProp / Adadelta decay of the running averages
FTRL_BETA = 7  # FTRL's ``beta`` in its per-coordinate rate
POWER_T = 8  # exponent of the inverse-scaling schedule
OPTIMAL_INIT = 9  # offset t0 of scikit-learn's "optimal" schedule
OPTIMAL_ALPHA = 10  # total regularization alpha used by the "optimal" schedule
LOSS_PARAM = 11  # epsilon of the huber and epsilon-insensitive losses
FIT_INTERCEPT = 12  # 1.0 to learn the intercept, 0.0 to keep it at zero
AVERAGE_START = 13  # sgd only: first step included in the Polyak average (0 = off)
INTERCEPT_RATE = 14  # the intercept's step size is eta * this (scikit-learn's intercept_decay)
N_HP = 15

# Losses (``loss_id``).
LOG_LOSS = 0
SQUARED_ERROR = 1
HINGE = 2
MODIFIED_HUBER = 3
HUBER = 4
EPSILON_INSENSITIVE = 5
MULTINOMIAL = 6

LOSSES = {
    "log_loss": LOG_LOSS,
    "squared_error": SQUARED_ERROR,
    "hinge": HINGE,
    "modified_huber": MODIFIED_HUBER,
    "huber": HUBER,
    "epsilon_insensitive": EPSILON_INSENSITIVE,
    "multinomial": MULTINOMIAL,
}
CLASSIFICATION_LOSSES = ("log_loss", "hinge", "modified_huber", "multinomial")

# Learning-rate schedules (``sched_id``).
CONSTANT = 0
INVSCALING = 1
OPTIMAL = 2
SCHEDULES = {"constant": CONSTANT, "invscaling": INVSCALING, "optimal": OPTIMAL}

# Scalars carried between steps, stored in the float64 array ``G``.
G_SCALE = 0  # global weight-decay scale: true weight = scale * stored weight
G_L1_TOTAL = 1  # running L1 budget, sum eta_s*lam1_s/scale_s (stored-weight units)
G_SCALE_SUM = 2  # averaging: sum of the scales of the averaged steps, in stored units
G_AVG_COUNT = 3  # averaging: number of averaged steps so far
N_G = 4

# When the global scale falls below this, every coordinate is flushed and the scale is
# folded into the stored weights (scikit-learn folds its ``wscale`` at the same point).
MIN_SCALE = 1e-9
