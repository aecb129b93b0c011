"""Tables of the study: printed text, ``results.md`` and ``results.json``."""

import json
import math
from pathlib import Path

import numpy as np

METHOD_NOTES = [
    "Every iterative method runs `epochs` passes; `partial_fit` is called once per epoch "
    "and timed; the test metrics are computed after each epoch, outside the timed region. "
    "`s/epoch` is the median of those epoch times (over up to 3 repeated runs when a run "
    "takes under 1 s).",
    "sparseopt rows: `SparseClassifier`/`SparseRegressor(optimizer=...)` with every other "
    "parameter at its default (3 `partial_fit` epochs are bit for bit `fit(max_iter=3)`).",
    "`SGDClassifier` rows: `loss='log_loss'`, `max_iter=epochs`, `tol=None`; the metrics come "
    "from `fit`, the time per epoch from `partial_fit` epochs. `SGDClassifier(alpha=...)` is "
    "the best `alpha` of the grid on a validation split (20% of the training rows), refitted "
    "on all training rows.",
    "`LogisticRegression`: the exact L2-regularized optimum (lbfgs), the floor of test loss. "
    "`C` is chosen on the same validation split (not matched to `alpha`): a walk on the "
    "half-decade ladder 1, 3, 10, ... (or 1, 0.3, 0.1, ...) while the validation loss falls "
    "(`tol=1e-4`, at most 3 fits), then a refit on all training rows (`tol=1e-5`) "
    "warm-started from the validation fit. `Ridge`: exact, `alpha` from a grid on "
    "validation. Their `s/epoch` is the refit time divided by its iterations (one L-BFGS "
    "iteration is one loss-and-gradient pass over the rows); `fit s` is the whole refit.",
    "Epochs need not cost the same: Adam's lazy catch-up of an absent feature depends on "
    "the step counter (its bias corrections), so its first epoch can be much slower than "
    "the next ones. `results.json` lists every timed epoch (`epoch_seconds_all`).",
    "Compile time is excluded: a tiny warm-up fit per optimizer runs first (its seconds are "
    "listed separately: JIT compile on an empty Numba cache, cache load otherwise).",
    "`x mat-vec`: seconds per epoch over the median time of one scipy CSR mat-vec `X @ w` "
    "on the same training matrix (20 repeats).",
]


def clean(obj):
    """JSON-safe copy: numpy scalars and arrays to Python, NaN and inf to None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def _num(v, digits=4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _seconds(v):
    if v is None or not math.isfinite(v):
        return "-"
    if v < 0.01:
        return f"{v * 1e3:.2f} ms"
    if v < 1:
        return f"{v * 1e3:.0f} ms"
    return f"{v:.2f} s"


def _ratio(v):
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def table_rows(entry, warmup):
    rows = entry["rows"]
    task = entry["task"]
    if task == "regression":
        header = ["method", "test RMSE", "s/epoch", "x SGDRegressor", "x mat-vec", "fit s",
                  "warm-up s"]
    else:
        quality = "ROC AUC" if task == "binary" else "accuracy"
        header = ["method", "test log loss", quality, "s/epoch", "x SGDClassifier",
                  "x mat-vec", "fit s", "warm-up s"]
    body = []
    for r in rows:
        w = warmup.get(r["params"].get("optimizer")) if (
            r["kind"] == "sparseopt" and "params" in r) else None
        line = [r["method"]]
        if task == "regression":
            line += [_num(r.get("test_rmse")), _seconds(r["seconds_per_epoch"]),
                     _ratio(r.get("ratio_to_sgdregressor")), _ratio(r["ratio_to_matvec"])]
        else:
            line += [_num(r.get("test_log_loss")),
                     _num(r.get("auc" if task == "binary" else "accuracy")),
                     _seconds(r["seconds_per_epoch"]), _ratio(r.get("ratio_to_sgdclassifier")),
                     _ratio(r["ratio_to_matvec"])]
        line += [_num(r.get("fit_seconds"), 2), "-" if w is None else f"{w:.2f}"]
        body.append(line)
    return header, body


def _text_table(header, body):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*b) for b in body]
    return "\n".join(lines)


def _md_table(header, body):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(x) for x in b) + " |" for b in body]
    return "\n".join(lines)


def _describe(name, entry):
    extra = ""
    if "constant_log_loss" in entry:
        extra = f", constant-prediction log loss {entry['constant_log_loss']:.4f}"
    if "positive_rate_train" in entry:
        extra += f", positive rate {entry['positive_rate_train']:.4f}"
    if "constant_rmse" in entry:
        extra = f", constant-prediction RMSE {entry['constant_rmse']:.4f}"
    return (f"{name} ({entry['task']}): {entry['n_train']} train / {entry['n_test']} test rows, "
            f"{entry['n_features']} features ({entry['features_seen_in_train']} seen in "
            f"training), {entry['nnz_per_row']:.1f} nonzeros/row, mat-vec "
            f"{entry['matvec_seconds'] * 1e3:.2f} ms{extra}")


def text_tables(results):
    out = []
    warm = results.get("warmup_seconds", {})
    for name, entry in results["datasets"].items():
        out.append(_describe(name, entry))
        out.append(_text_table(*table_rows(entry, warm)))
        out.append("")
    out.append("warm-up (compile or cache load) seconds: " +
               ", ".join(f"{k} {v:.2f}" for k, v in warm.items()))
    out.append(f"wall time {results['wall_seconds']:.1f} s")
    return "\n".join(out)


def markdown(results):
    cfg = results["config"]
    warm = results.get("warmup_seconds", {})
    md = ["# sparseopt benchmark results", ""]
    md.append(f"Run: `python -m bench{' --quick' if cfg['quick'] else ''}` — epochs "
              f"{cfg['epochs']}, seed {cfg['seed']}, wall time "
              f"{results['wall_seconds']:.0f} s on {results['environment']['cpus']} CPUs "
              f"(numpy {results['environment']['numpy']}, scikit-learn "
              f"{results['environment']['sklearn']}, numba {results['environment']['numba']}).")
    md += ["", "## How the numbers are made", ""]
    md += [f"- {n}" for n in METHOD_NOTES]
    md += ["", "## Tables", ""]
    for name, entry in results["datasets"].items():
        md += [f"### {name}", "", _describe(name, entry) + ".", "",
               f"Source: {entry['source']}.", ""]
        md.append(_md_table(*table_rows(entry, warm)))
        notes = [f"- `{r['method']}`: {r['note']}" for r in entry["rows"] if r.get("note")]
        if entry.get("adam_adamw_identical"):
            notes.append("- `adam` and `adamw` learned bit-identical weights: in sparseopt "
                         "both are Adam with decoupled weight decay (the same computation).")
        if notes:
            md += [""] + notes
        md.append("")
        sw = entry.get("eta_sweep")
        if sw:
            md += [f"eta0 sweep (test log loss after {cfg['epochs']} epochs on the first "
                   f"{sw['n_train_rows']} training rows; '-' = diverged; sgd with the "
                   "constant schedule):", ""]
            header = ["optimizer", "default eta0"] + [f"x{f:g}" for f in sw["factors"]]
            body = [[opt, f"{sw['defaults'][opt]:g}"] + [_num(v) for v in losses]
                    for opt, losses in sw["losses"].items()]
            md += [_md_table(header, body), ""]
        rv = entry.get("rare")
        if rv:
            for key, what in (("rows_rarest", "rarest feature"),
                              ("rows_strongest", "strongest feature (largest |w x| of the "
                               "LogisticRegression floor)")):
                rows = rv.get(key)
                if not rows:
                    continue
                md += [f"Test log loss of the rows by the training frequency of their {what} "
                       "(buckets of at least 30 rows):", ""]
                header = ["method"] + [f"{lab} ({n} rows)" for lab, n in
                                       zip(rows["labels"], rows["n_rows"])]
                body = [[m] + [_num(v, 3) for v in vals] for m, vals in rows["loss"].items()]
                md += [_md_table(header, body), ""]
            if "coef_error" in rv:
                ce = rv["coef_error"]
                for key, what in (("mae", "all seen features"),
                                  ("mae_large", f"|true weight| >= {ce['large_threshold']:.2f}"),
                                  ("mae_small", f"|true weight| < {ce['large_threshold']:.2f}")):
                    md += [f"Mean |learned - true weight| by the feature's training frequency "
                           f"({what}; in parentheses: features in the bucket):", ""]
                    counts = ce["n_features"]
                    if key == "mae_large":
                        counts = ce["n_features_large"]
                    elif key == "mae_small":
                        counts = [a - b for a, b in zip(ce["n_features"], ce["n_features_large"])]
                    header = ["method"] + [f"{lab} ({n})" for lab, n in
                                           zip(ce["labels"], counts)]
                    body = [[m] + [_num(v, 3) for v in vals] for m, vals in ce[key].items()]
                    md += [_md_table(header, body), ""]
    md.append("Warm-up (compile or cache load) seconds: " +
              ", ".join(f"{k} {v:.2f}" for k, v in warm.items()) + ".")
    tr = results.get("trajectory")
    if tr:
        md += ["", "## Trajectory picture", "",
               f"{tr['n_points']} points, {tr['n_steps']} steps of mini-batches of "
               f"{tr['batch']}, L2 {tr['lam']}; optimum objective {tr['f_star']:.4f}. "
               "Objective at the end of each path: " +
               ", ".join(f"{k} {v:.4f} (eta {tr['step_sizes'][k]:g})"
                         for k, v in tr["final_objective"].items()) + "."]
    md += ["", "## Figures", ""]
    md += [f"- `{k}`: ![{k}]({v})" for k, v in results["figures"].items()]
    return "\n".join(md) + "\n"


def write(results, out):
    out = Path(out)
    safe = clean(results)
    with open(out / "results.json", "w") as fh:
        json.dump(safe, fh, indent=1, allow_nan=False)
    (out / "results.md").write_text(markdown(safe))
