"""The rules' compiled loops in Numba's on-disk cache.

Each rule's epoch loop is a copy of one template (``_kernels._for_rule``). Numba names a
function's cache files after its qualified name: if two copies shared one, a later
process would load another rule's loop for this one, and nothing else would notice.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from dense_reference import dense_fit
from test_exactness import ATOL, ETA0, RTOL, random_orders, sparse_problem

import sparseopt
from sparseopt import _kernels

# A child process runs the engine on one of test_exactness's problems, with the loops
# that its Numba cache holds, and reports the weights and its cache hits and misses.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from test_exactness import ETA0, csr_from_dense, random_orders, run_engine, sparse_problem
from sparseopt import _kernels
X, y, sw = sparse_problem(3, "log_loss")
orders = random_orders(3, len(y), 2)
out = {}
for opt in sys.argv[2].split(","):
    model, _ = run_engine(opt, "log_loss", 1, csr_from_dense(X), y, sw, orders,
                          eta0=ETA0[opt])
    stats = _kernels.EPOCH[opt].stats
    out[opt] = {"coef": model.coef.tolist(), "hits": sum(stats.cache_hits.values()),
                "misses": sum(stats.cache_misses.values())}
print(json.dumps(out))
"""

# Two rules with the same number of state slots: a loop of either runs on the other's
# model without an error (with different numbers).
OPTIMIZERS = ("adagrad", "ftrl")


def _run_child(env):
    tests = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", CHILD, tests, ",".join(OPTIMIZERS)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_each_rule_loads_its_own_loop_from_the_cache():
    # The children use this process's cache (warm when the suite has compiled the
    # kernels) and its sparseopt (the source tree, as in conftest.py).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(sparseopt.__file__).parents[1]), env.get("PYTHONPATH")]))
    _run_child(env)  # compiles into the cache what it does not find there
    loaded = _run_child(env)
    X, y, sw = sparse_problem(3, "log_loss")
    orders = random_orders(3, len(y), 2)
    for opt in OPTIMIZERS:
        assert loaded[opt]["hits"] >= 1 and loaded[opt]["misses"] == 0, (opt, loaded[opt])
        ref = dense_fit(X, y, sw, orders, opt, "log_loss", 1, eta0=ETA0[opt])
        np.testing.assert_allclose(loaded[opt]["coef"], ref["coef"], rtol=RTOL, atol=ATOL,
                                   err_msg=opt)


def test_each_rule_has_its_own_compiled_loops():
    names = [d.py_func.__qualname__ for table in (_kernels.EPOCH, _kernels.HOGWILD,
                                                  _kernels._LANE) for d in table.values()]
    assert len(set(names)) == len(names) == 18, names
    for table in (_kernels.EPOCH, _kernels.HOGWILD, _kernels._LANE):
        assert sorted(table) == sorted(rule for rule in sparseopt.rules.RULES
                                       if rule != "adamw")
        for name, dispatcher in table.items():
            rule = sparseopt.rules.RULES[name].code
            assert dispatcher.py_func.__globals__["RULE"] == rule
    for name, dispatcher in _kernels.HOGWILD.items():
        assert dispatcher.py_func.__globals__["LANE"] is _kernels._LANE[name]
