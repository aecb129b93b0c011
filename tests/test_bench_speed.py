"""The speed benchmark runs end to end (``python -m bench.speed --quick``) and writes its
results. Nothing here asserts how fast anything is: benchmarks are not timed unit tests.

The run inherits the environment (in particular ``NUMBA_CACHE_DIR``). It compiles every
kernel once more in a child process with an empty Numba cache (that is one of its
measurements), so it takes about a minute on an idle two-core machine, more under load.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from bench.host import handoff_ns
from bench.speed import (
    SHARING_OPTIMIZERS,
    sharing_bound,
    speedup_by_handoff,
    without_top_columns,
)

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw", "ftrl")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_speed_quick")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.speed", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    return proc, out


def _positive(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def test_exit_status(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_every_optimizer_has_finite_positive_seconds(quick_run):
    proc, out = quick_run
    result = json.loads((out / "speed.json").read_text())
    assert set(result["optimizers"]) == set(OPTIMIZERS)
    for opt in OPTIMIZERS:
        entry = result["optimizers"][opt]
        assert "error" not in entry, (opt, entry["error"])
        for key in ("n_jobs=1", "n_jobs=-1", "kernel"):
            assert _positive(entry[key]["seconds_per_epoch"]), (opt, key, entry[key])
            assert _positive(entry[key]["ns_per_nnz"]), (opt, key, entry[key])
        assert _positive(entry["first_fit_seconds"]), (opt, entry)
        assert abs(entry["test_loss_other_seed_vs_one"]) < 1.0, (opt, entry)
        # Every timed all-cores fit's test loss, the last one's as in the table.
        fits = entry["test_loss_all_cores_fits"]
        assert len(fits) == len(entry["n_jobs=-1"]["all"]) // 2, (opt, fits)
        assert fits[-1] == entry["test_loss_all_cores_vs_one"], (opt, fits)
        # The ratios are to yardsticks timed in the same rounds as the optimizer's fits:
        # one entry per round (two timed epochs per fit), three SGDClassifier pairs each
        # with --quick.
        floors = entry["floors"]
        rounds = len(entry["n_jobs=1"]["all"]) // 2
        assert len(floors["sgdclassifier"]["all"]) == 3 * rounds, (opt, floors)
        assert len(floors["matvec"]["all"]) == 5 * rounds, (opt, floors)
        one = entry["n_jobs=1"]
        assert one["vs_matvec"] == pytest.approx(
            one["seconds_per_epoch"] / floors["matvec"]["seconds"], rel=1e-12)
        if floors["sgdclassifier"]["seconds"] > 0:
            assert one["vs_sgdclassifier"] == pytest.approx(
                one["seconds_per_epoch"] / floors["sgdclassifier"]["seconds"], rel=1e-12)
        spread = entry["speedup_per_epoch"]
        # the ratio of the medians lies within the per-epoch ratios' range
        assert spread["min"] <= entry["speedup_all_cores"] <= spread["max"], (opt, entry)
        if result["machine"]["usable_cores"] > 1:
            ceiling = entry["independent_fits"]
            assert ceiling["fits"] == result["machine"]["usable_cores"]
            assert _positive(ceiling["speedup"]), (opt, ceiling)
            # the host probed just before and after every fit: each fit counted once
            for timing, split in ((entry["n_jobs=-1"], entry["speedup_by_handoff"]),
                                  (ceiling, ceiling["speedup_by_handoff"])):
                assert len(timing["probes"]) == rounds, (opt, timing["probes"])
                assert split["near"]["fits"] + split["far"]["fits"] == rounds, split


def test_report_has_every_part(quick_run):
    _, out = quick_run
    result = json.loads((out / "speed.json").read_text())
    assert result["errors"] == []
    for key in ("machine", "load_start", "load_end", "data", "matvec", "sgdclassifier",
                "shuffle", "startup", "memory", "scaling", "sharing", "private_records"):
        assert key in result, key
    # --quick's 10,000 rows are too few for private records (PRIVATE_MIN_ROWS): said so.
    assert result["private_records"]["plan"] is None
    assert "Private records of the hot columns: none on this data" in (
        out / "speed.md").read_text()
    assert _positive(result["matvec"]["seconds"])
    assert _positive(result["sgdclassifier"]["seconds_per_epoch"])
    assert _positive(result["startup"]["cold"]["all_first_fits"])
    memory = result["memory"]
    for when in ("before_fit", "after_fit", "before_all_cores", "after_all_cores"):
        assert _positive(memory[when]["ru_maxrss"]), when
    if memory["peak_reset"] and "VmHWM" in memory["after_all_cores"]:
        assert "Then a 2-epoch adagrad fit with n_jobs=-1" in (out / "speed.md").read_text()
    for opt in ("adagrad", "adam"):
        assert _positive(result["scaling"]["small"][opt]["seconds_per_epoch"])
    sharing = result["sharing"]
    assert 0 < sharing["nnz_without"] < sharing["nnz"]
    for opt in SHARING_OPTIMIZERS:
        for name in ("all", "without"):
            assert _positive(sharing["optimizers"][opt][name]["speedup"]), (opt, name)
    # The sizes alternate round by round: each has as many timed epochs as the others.
    sizes = result["scaling"]["rows"]
    assert len({len(size["all"]) for size in sizes}) == 1, sizes
    assert [size["fraction"] for size in sizes] == ["1/8", "1/4", "1/2", "all"]
    columns = [size["columns"] for size in sizes]
    assert 0 < columns[0] <= columns[1] <= columns[2] <= columns[3], columns
    floor = dict(result["startup"]["floor"])
    # Whether scikit-learn's import brought pandas along: so it does, where it is installed.
    assert floor.pop("pandas") == (importlib.util.find_spec("pandas") is not None)
    assert all(_positive(v) for v in floor.values())
    if result["machine"]["usable_cores"] > 1:
        handoff = result["handoff"]
        assert 0 < handoff["min_ns"] <= handoff["median_ns"] <= handoff["max_ns"]
        assert handoff["limit_ns"] == 2 * handoff["min_ns"]
        for opt in SHARING_OPTIMIZERS:
            for name in ("all", "without"):
                m = sharing["optimizers"][opt][name]
                assert len(m["probes"]) == len(m["all"]) // 2 > 0
                assert m["by_handoff"]["near"]["fits"] + m["by_handoff"]["far"]["fits"] == (
                    len(m["probes"]))
    markdown = (out / "speed.md").read_text()
    assert "| method | n_jobs | s/epoch |" in markdown
    assert "What any Numba-compiled scikit-learn estimator pays" in markdown
    assert "## What Hogwild's sharing costs" in markdown
    if result["machine"]["usable_cores"] > 1:
        assert "| bound near |" in markdown
    for opt in OPTIMIZERS:
        assert f"| {opt} | 1 |" in markdown


def test_without_top_columns_removes_exactly_the_most_frequent():
    # column 3 in every row, column 1 in two, columns 0 and 2 in one each
    X = sp.csr_matrix(np.array([[1.0, 2, 0, 4], [0, 5, 0, 6], [7, 0, 8, 9]]))
    out = without_top_columns(X, 2)
    assert out.shape == X.shape
    np.testing.assert_array_equal(out.toarray(), [[1, 0, 0, 0], [0, 0, 0, 0], [7, 0, 8, 0]])
    assert X.nnz == 8  # the input is left alone


def test_speedup_by_handoff_splits_fits_by_both_probes():
    # one thread: 1 s per epoch; fits (probe before, probe after, all-cores epochs)
    fits = [(25, 26, [0.5, 0.5]),    # near
            (26, 170, [0.9, 1.1]),   # far after: far
            (170, 25, [1.0, 1.0]),   # far before: far
            (30, 24, [0.6, 0.6])]    # near
    split = speedup_by_handoff(1.0, fits, limit=50)
    assert split["near"] == {"fits": 2, "speedup": pytest.approx(1 / 0.55)}
    assert split["far"] == {"fits": 2, "speedup": pytest.approx(1.0)}
    none_far = speedup_by_handoff(1.0, fits[:1], limit=50)
    assert none_far["far"] == {"fits": 0, "speedup": None}
    # two fits at once (the ceiling): each epoch is one of two fits' worth of work
    assert speedup_by_handoff(1.0, fits[:1], 50, fits_at_once=2)["near"]["speedup"] == (
        pytest.approx(4.0))


def test_handoff_probe_measures_a_time():
    import numba

    ns = handoff_ns(turns=2000)
    if numba.get_num_threads() < 2:
        assert math.isnan(ns)
    else:
        # a move takes more than nothing and less than a millisecond on any machine
        assert 0 < ns < 1e6, ns


def test_sharing_bound_is_the_cores_less_the_wait_for_shared_records():
    # Session 12's figures: an adagrad row of 193 ns, 4.45 shared nonzeros per row, half of
    # them moved at 24 ns: 2 x 193 / (193 + 53.4).
    assert sharing_bound(193.0, 4.45, 24.0, 2) == pytest.approx(386.0 / (193.0 + 53.4))
    assert sharing_bound(193.0, 4.45, 0.0, 2) == 2.0  # nothing shared moves: the cores
    assert sharing_bound(193.0, 0.0, 24.0, 4) == 4.0
    # Four threads: three quarters of the shared records were written by another thread.
    assert sharing_bound(100.0, 4.0, 25.0, 4) == pytest.approx(400.0 / (100.0 + 75.0))
    # A faster row gains less from the same moves.
    assert sharing_bound(146.0, 4.45, 24.0, 2) < sharing_bound(193.0, 4.45, 24.0, 2)


def test_source_digest_changes_with_any_source_of_the_package_or_the_bench(tmp_path):
    from bench.speed import source_digest

    for rel in ("sparseopt/a.py", "sparseopt/rules/b.py", "bench/c.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    before = source_digest(tmp_path)
    assert source_digest(tmp_path) == before  # the same sources, the same digest
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "speed.md").write_text("a report")  # not a source
    assert source_digest(tmp_path) == before
    for rel in ("sparseopt/rules/b.py", "bench/c.py"):
        (tmp_path / rel).write_text("x = 2\n")
        changed = source_digest(tmp_path)
        assert changed != before, rel
        before = changed
    (tmp_path / "bench" / "d.py").write_text("")  # a new module counts too
    assert source_digest(tmp_path) != before


def test_plan_timing_measures_the_private_records_plan(monkeypatch):
    import numba

    from bench.speed import _private_lines, generate_matrix, plan_timing
    from sparseopt import _engine

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("private records are for two threads or more")
    X = generate_matrix(60_000, n_features=2**16)[0]
    # Too few rows for the warm tier (WARM_MERGES), and said so:
    pl = plan_timing(X, 2, repeats=1)
    assert pl["plan"] and pl["warm_columns"] == 0
    text = "".join(_private_lines(pl, {}))
    assert "and no warm columns (fewer than WARM_MERGES x WARM_SYNC rows a thread)" in text
    monkeypatch.setattr(_engine, "WARM_MERGES", 0)  # a warm tier on these rows
    pl = plan_timing(X, 2, repeats=2)
    assert pl["plan"] and _positive(pl["seconds"]) and len(pl["all"]) == 2
    assert 0 < pl["hot_columns"] <= 256 and 0.0 < pl["hot_share"] < 1.0
    assert 0 < pl["warm_columns"] and 0.0 < pl["warm_share"] < 1.0 - pl["hot_share"]
    assert pl["bytes"] == X.indices.nbytes and pl["private_threads"] == 1
    assert "adam" in pl["optimizers"] and "adagrad" in pl["optimizers"]
    text = "".join(_private_lines(pl, {"adagrad": {"n_jobs=-1": {"seconds_per_epoch": 1.0}}}))
    assert f"{pl['hot_columns']} columns in at least 1% of the rows" in text
    assert f"and {pl['warm_columns']} warm columns" in text
    assert "of adagrad's all-cores epoch" in text
