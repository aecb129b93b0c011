"""PNG figures of the study (matplotlib, Agg backend)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402

COLORS = {
    "sgd": "tab:blue", "adagrad": "tab:red", "rmsprop": "tab:green",
    "adadelta": "tab:purple", "adam": "tab:orange", "adamw": "tab:brown",
    "ftrl": "tab:pink", "SGDClassifier": "black", "SGDRegressor": "black",
}
DPI = 110


def _style(name):
    """Color, line style and marker of a method (by its name)."""
    base = name.split("(")[0].split(" ")[0]
    if name.startswith(("SGDClassifier(", "SGDRegressor(")):
        return {"color": "0.45", "linestyle": "--", "marker": "s"}
    if name.startswith(("LogisticRegression", "Ridge")):
        return {"color": "0.2", "linestyle": ":", "marker": "D"}
    style = {"color": COLORS.get(base, "tab:gray"), "linestyle": "-", "marker": "o"}
    if base == "adamw":
        style.update(linestyle="--", marker="x")  # often on top of adam
    if base in ("SGDClassifier", "SGDRegressor"):
        style["marker"] = "s"
    return style


def _save(fig, path):
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path.name


def _loss_limits(values, floor=None, constant=None, cap=2.5):
    """y-range: from the lowest value (or the floor) to the highest, at most
    ``cap`` times the constant-prediction loss (worse curves are clipped)."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if floor is not None:
        vals.append(floor)
    lo, hi = min(vals), max(vals)
    if constant is not None:
        hi = min(hi, cap * constant)
        hi = max(hi, constant)
    return lo / 1.04, hi * 1.04


def _right_legend(fig, ax, width=0.8):
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(width + 0.005, 0.5),
               fontsize=8.5, frameon=False)


def curves_figure(name, runs, data, path):
    """(a) Test loss after each epoch, against epochs and against training seconds."""
    task = data["task"]
    ylabel = "test RMSE" if task == "regression" else "test log loss"
    floor = next((r for r in runs if r.kind == "exact"), None)
    constant = data["info"].get("constant_log_loss", data["info"].get("constant_rmse"))
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.4))
    values = []
    for r in runs:
        if not r.curve_loss:
            continue
        st = _style(r.name)
        epochs = np.arange(1, len(r.curve_loss) + 1)
        axes[0].plot(epochs, r.curve_loss, label=r.name, **st)
        axes[1].plot(r.curve_seconds, r.curve_loss, label=r.name, **st)
        values += r.curve_loss
    floor_value = None
    if floor is not None and not floor.diverged and floor.metrics:
        floor_value = floor.metrics["test_rmse" if task == "regression" else "test_log_loss"]
        for ax in axes:
            ax.axhline(floor_value, color="0.2", linestyle=":", lw=1.5,
                       label=f"{floor.name} (exact optimum)")
    if constant is not None:
        for ax in axes:
            ax.axhline(constant, color="0.6", linestyle="-.", lw=1,
                       label="constant prediction (training mean)")
    lo, hi = _loss_limits(values, floor_value, constant, cap=1.3)
    clipped = [f"{r.name} (ends at {r.curve_loss[-1]:.3g})" for r in runs
               if r.curve_loss and max(r.curve_loss) > hi]
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.set_ylabel(ylabel + " (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
    n_epochs = max((len(r.curve_loss) for r in runs if r.curve_loss), default=1)
    axes[0].set_xlabel("epoch")
    axes[0].set_xticks(np.arange(1, n_epochs + 1))
    axes[0].set_title("test loss after each epoch")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("cumulative training seconds (log scale; compile time excluded)")
    axes[1].set_title("test loss against training time")
    _right_legend(fig, axes[0], 0.76)
    info = data["info"]
    sub = f"\noff the top of the scale: {', '.join(clipped)}" if clipped else ""
    fig.suptitle(f"(a) {name}: {info['n_train']} training rows, {info['n_features']} features, "
                 f"{info['nnz_per_row']:.1f} nonzeros/row; every method at its defaults{sub}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.76, 0.95 if clipped else 0.96))
    return _save(fig, path)


def eta_sweep_figure(sweeps, path):
    """(b) Test log loss against eta0 / default eta0, one panel per data set."""
    n = len(sweeps)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n + 3.6, 5.4), squeeze=False)
    for ax, (name, sw) in zip(axes[0], sweeps.items()):
        factors = np.array(sw["factors"])
        values = []
        for opt, losses in sw["losses"].items():
            st = _style(opt)
            y = np.array([np.nan if v is None else v for v in losses], dtype=float)
            label = f"{opt} (default eta0 {sw['defaults'][opt]:g})"
            if opt == "sgd":
                label = f"sgd, constant schedule (eta0 {sw['defaults'][opt]:g})"
            ax.plot(factors, y, label=label, **st)
            values += [v for v in losses if v is not None]
        floor, constant = sw.get("floor"), sw.get("constant_log_loss")
        lo, hi = _loss_limits(values, floor, constant)
        for opt, losses in sw["losses"].items():
            bad = [f for f, v in zip(factors, losses) if v is None or v > hi]
            if bad:
                ax.plot(bad, [hi / 1.02] * len(bad), linestyle="none", marker="^",
                        color=_style(opt)["color"], ms=9, clip_on=False)
        if sw.get("sgd_optimal_default") is not None:
            ax.axhline(sw["sgd_optimal_default"], color=_style("sgd")["color"], lw=1,
                       linestyle="-.", label="sgd default ('optimal', no eta0)")
        if floor is not None:
            ax.axhline(floor, color="0.2", linestyle=":", lw=1.5,
                       label="LogisticRegression floor")
        if constant is not None:
            ax.axhline(constant, color="0.6", linestyle="-.", lw=1,
                       label="constant prediction")
        ax.axvline(1.0, color="0.7", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xticks(factors)
        ax.set_xticklabels([f"{f:g}" for f in factors])
        ax.set_xlabel("eta0 / optimizer's default eta0 (log scale; 1 = default)")
        ax.set_ylabel("test log loss (log scale)")
        ax.set_title(f"{name}: trained on {sw['n_train_rows']} rows, "
                     f"{sw.get('epochs', 3)} epochs\n"
                     "(triangle at the top: diverged or off the scale)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    width = 6.2 * n / (6.2 * n + 3.6)
    _right_legend(fig, axes[0][0], width)
    fig.suptitle("(b) how much tuning each optimizer needs: test loss over three decades of "
                 "eta0 around its default", fontsize=11)
    fig.tight_layout(rect=(0, 0, width, 0.95))
    return _save(fig, path)


def _bucket_ticks(ax, buckets, labels, xlabel):
    ax.set_xticks(buckets)
    ax.set_xticklabels(labels, fontsize=7, rotation=45, ha="right")
    ax.set_xlabel(xlabel, fontsize=8.5)
    ax.grid(alpha=0.3)


def _count_bars(ax, buckets, counts, what):
    """Light bars of how many features/rows each bucket holds, on a twin log axis."""
    twin = ax.twinx()
    twin.bar(buckets, counts, width=0.6, color="0.85", zorder=0)
    twin.set_yscale("log")
    twin.set_ylabel(f"{what} per bucket (grey bars)", fontsize=7.5, color="0.5")
    twin.tick_params(axis="y", labelsize=7, colors="0.5")
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)


def _row_panel(ax, rv, title):
    xs = np.array(rv["buckets"])
    _count_bars(ax, xs, rv["n_rows"], "test rows")
    for method, values in rv["loss"].items():
        ax.plot(xs, values, label=method, **_style(method))
    if rv.get("positive_rate"):
        pr = np.clip(np.array(rv["positive_rate"]), 1e-15, 1 - 1e-15)
        ent = -(pr * np.log(pr) + (1 - pr) * np.log(1 - pr))
        ax.plot(xs, ent, color="0.6", linestyle="-.", lw=1,
                label="label entropy of the bucket\n(loss of a constant per bucket)")
    # The y-range follows the reference (exact optimum) and the label entropy: methods far
    # above them would flatten every other curve; they are named in the title.
    ref = [v for m, vals in rv["loss"].items() if m.startswith("LogisticRegression")
           for v in vals]
    if rv.get("positive_rate"):
        ref += list(ent)
    if ref:
        top = 1.5 * max(ref)
        low = min(min(vals) for vals in rv["loss"].values())
        ax.set_ylim(0.9 * low, top)
        off = [m for m, vals in rv["loss"].items() if max(vals) > top]
        if off:
            title += f"\noff the top: {', '.join(off)}"
    ax.set_ylabel("mean test log loss of the rows")
    ax.set_title(title, fontsize=9.5)
    _bucket_ticks(ax, xs, rv["labels"], "training frequency of that feature (log2 buckets)")


def rare_figure(name, view, data, path):
    """(c) Rare-feature view: coefficient error and test loss by training frequency."""
    rows_panels = [("rows_rarest", "test loss of rows by their RAREST feature\n"
                    "(smallest training frequency in the row)")]
    if "rows_strongest" in view:
        rows_panels.append(("rows_strongest", "test loss of rows by their STRONGEST feature\n"
                            f"(largest |w x|, w of {view['rows_strongest']['reference']})"))
    if "coef_error" in view:
        fig, axes = plt.subplots(2, 3, figsize=(18, 10.5))
        ce = view["coef_error"]
        thr = ce["large_threshold"]
        panels = [("mae", "all features seen in training", "n_features"),
                  ("mae_large", f"features with |true weight| >= {thr:.2f} (the median)",
                   "n_features_large"),
                  ("mae_small", f"features with |true weight| < {thr:.2f}", None)]
        xs = np.array(ce["buckets"])
        for ax, (key, title, counts) in zip(axes[0], panels):
            if counts:
                _count_bars(ax, xs, ce[counts], "features")
            else:
                _count_bars(ax, xs, np.array(ce["n_features"]) - np.array(
                    ce["n_features_large"]), "features")
            for method, values in ce[key].items():
                y = np.array([np.nan if v is None else v for v in values], dtype=float)
                ax.plot(xs, y, label=method, **_style(method))
            ax.set_ylabel("mean |learned weight - true weight|")
            ax.set_title(f"weight error by training frequency:\n{title}", fontsize=9.5)
            _bucket_ticks(ax, xs, ce["labels"], "training frequency of the feature "
                          "(rows containing it; log2 buckets)")
        row_axes = list(axes[1])
    else:
        fig, axes = plt.subplots(1, 2, figsize=(13, 5.6))
        row_axes = list(axes)
    for ax, (key, title) in zip(row_axes, rows_panels):
        _row_panel(ax, view[key], title)
    spare = row_axes[len(rows_panels):]
    for ax in spare:
        ax.axis("off")
    if spare:  # the legend goes in the empty panel
        handles, labels = row_axes[0].get_legend_handles_labels()
        spare[0].legend(handles, labels, loc="center", fontsize=9.5, frameon=False)
        width = 1.0
    else:
        width = 0.74
        _right_legend(fig, row_axes[0], width)
    fig.suptitle(f"(c) rare-feature view, {name} ({data['info']['n_train']} training rows): "
                 "features and test rows bucketed by training frequency; "
                 "'unseen' = absent from training", fontsize=11)
    fig.tight_layout(rect=(0, 0, width, 0.96))
    return _save(fig, path)


def trajectory_figure(traj, path):
    """(d) Paths of six optimizers on a 2-feature logistic regression."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.6),
                             gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    X, y = traj["X"], traj["y"]
    ax = axes[0]
    rare = X[:, 1] != 0
    ax.scatter(X[~rare & (y == 0), 0], X[~rare & (y == 0), 1], s=10, c="tab:blue",
               label="y=0")
    ax.scatter(X[~rare & (y == 1), 0], X[~rare & (y == 1), 1], s=10, c="tab:red", label="y=1")
    ax.scatter(X[rare & (y == 0), 0], X[rare & (y == 0), 1], s=30, c="tab:blue",
               edgecolors="k")
    ax.scatter(X[rare & (y == 1), 0], X[rare & (y == 1), 1], s=30, c="tab:red",
               edgecolors="k")
    ax.set_xlabel("x1 (frequent: every row)")
    ax.set_ylabel(f"x2 (rare: {int(rare.sum())} of {len(y)} rows, circled)")
    ax.set_title(f"the data: {len(y)} points", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    F = traj["F"]
    levels = traj["f_star"] + np.geomspace(1e-3, F.max() - traj["f_star"], 18)
    cs = ax.contour(traj["W1"], traj["W2"], F, levels=levels, colors="0.75", linewidths=0.8)
    ax.clabel(cs, cs.levels[::3], fontsize=6, fmt="%.2f")
    for name, p in traj["paths"].items():
        st = _style(name)
        ax.plot(p[:, 0], p[:, 1], color=st["color"], linestyle=st["linestyle"], lw=1.4,
                label=f"{name} (eta={traj['step_sizes'][name]:g})")
        ax.plot(p[-1, 0], p[-1, 1], marker="o", color=st["color"], ms=6, mec="k")
    ax.plot(*traj["start"], marker="s", color="k", ms=8, label="start")
    ax.plot(*traj["w_star"], marker="*", color="gold", mec="k", ms=16, label="optimum")
    ax.set_xlabel("w1 (weight of the frequent feature)")
    ax.set_ylabel("w2 (weight of the rare feature)")
    ax.set_title(f"contours of the full objective (mean log loss + {traj['lam']}/2 |w|^2)\n"
                 f"{traj['n_steps']} steps, mini-batches of {traj['batch']}, same batches "
                 "for all", fontsize=10)
    ax.legend(fontsize=8, loc="best")

    ax = axes[2]
    from .trajectory import objective

    for name, p in traj["paths"].items():
        gap = np.array([objective(w, X, y) for w in p]) - traj["f_star"]
        ax.plot(np.arange(len(p)), np.maximum(gap, 1e-8), label=name,
                color=_style(name)["color"], linestyle=_style(name)["linestyle"])
    ax.set_yscale("log")
    ax.set_xlabel("step (mini-batch of 2 rows)")
    ax.set_ylabel("objective - optimum (log scale)")
    ax.set_title("suboptimality along the path", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.suptitle("(d) trajectories on a 2-feature logistic regression (dense numpy versions "
                 "of the README's rules; Adam: L2 in the gradient, AdamW: decoupled decay)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _save(fig, path)
