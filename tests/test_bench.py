"""The benchmark study runs end to end (``python -m bench --quick``) and writes valid output.

The run inherits the environment (in particular ``NUMBA_CACHE_DIR``). With a warm Numba
cache it takes well under a minute; with an empty one the kernels are compiled first
(in two processes), which adds roughly half a minute on an idle two-core machine.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "ftrl")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_quick")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    return proc, out


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def test_exit_status_and_progress(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "warm-up" in proc.stdout
    assert "done:" in proc.stdout


def test_figures_are_valid_pngs(quick_run):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = sorted(out.glob("*.png"))
    names = {p.name for p in pngs}
    for prefix in ("a_curves_", "b_eta_sweep", "c_rare_", "d_trajectories"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for png in pngs:
        with open(png, "rb") as fh:
            assert fh.read(8) == PNG_SIGNATURE, png
        image = plt.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, png
        assert image.std() > 0, f"{png} is blank"


def test_json_has_a_finite_row_per_method(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text().startswith("# sparseopt benchmark results")
    datasets = results["datasets"]
    binary = [name for name, d in datasets.items() if d["task"] == "binary"]
    assert len(binary) >= 2  # the synthetic set and the PyPI sample
    for name in binary:
        rows = {r["method"]: r for r in datasets[name]["rows"]}
        wanted = list(OPTIMIZERS) + ["SGDClassifier"]
        assert all(m in rows for m in wanted), (name, sorted(rows))
        assert any(m.startswith("SGDClassifier(alpha=") for m in rows)
        assert any(m.startswith("LogisticRegression") for m in rows)
        for method in wanted:
            row = rows[method]
            for key in ("test_log_loss", "auc", "seconds_per_epoch",
                        "ratio_to_sgdclassifier", "ratio_to_matvec"):
                assert _finite(row.get(key)), (name, method, key, row.get(key))
            assert row["test_log_loss"] > 0 and 0 <= row["auc"] <= 1
            assert row["seconds_per_epoch"] > 0
        assert rows["SGDClassifier"]["ratio_to_sgdclassifier"] == pytest.approx(1.0)
    multiclass = [d for d in datasets.values() if d["task"] == "multiclass"]
    assert multiclass and all(_finite(r["accuracy"]) for r in multiclass[0]["rows"])
    regression = [d for d in datasets.values() if d["task"] == "regression"]
    assert regression
    methods = {r["method"] for r in regression[0]["rows"]}
    assert set(OPTIMIZERS) | {"SGDRegressor"} <= methods
    assert all(_finite(r["test_rmse"]) for r in regression[0]["rows"])


def test_defaults_study_runs_every_setting_of_a_grid():
    """bench.defaults expands each optimizer's grid over all its keys (rho included) and
    passes every setting to the estimator."""
    from bench import defaults
    from sparseopt.datasets import make_sparse_classification

    X, y, _ = make_sparse_classification(n_samples=2000, n_features=2**10, random_state=0)
    grid = {"adadelta": {"rho": [0.9, 0.999], "epsilon": [1e-3]}}
    result = defaults.study("tiny", X[:1500], X[1500:], y[:1500], y[1500:], grid, Cs=[1.0])
    rows = [row for row in result["rows"] if row["method"] == "adadelta"]
    assert [row["settings"] for row in rows] == ["rho=0.9 epsilon=0.001",
                                                  "rho=0.999 epsilon=0.001"]
    assert all(len(row["test_log_loss"]) == 3 for row in rows)
    assert rows[0]["test_log_loss"] != rows[1]["test_log_loss"]
