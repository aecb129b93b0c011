"""The ``sparseopt`` command: fit, predict and evaluate on files, streaming them.

``sparseopt fit`` trains with :func:`sparseopt.stream.fit_stream` (memory bounded by the
chunk and the model) and writes the safe ``.npz`` model of :func:`sparseopt.save`;
``predict`` and ``evaluate`` read it back. Every failure (a missing file, a bad option, a
malformed line) is one line on stderr and a non-zero exit status, never a traceback
(set ``SPARSEOPT_TRACEBACK=1`` to see one).

Only the standard library is imported until a subcommand runs, so ``--help`` is instant.
"""

import argparse
import os
import re
import sys
import warnings

CLASSIFIER_LOSSES = ("log_loss", "hinge", "modified_huber")
REGRESSOR_LOSSES = ("squared_error", "huber", "epsilon_insensitive")
OPTIMIZERS = ("adagrad", "sgd", "rmsprop", "adadelta", "adam", "adamw", "ftrl")
TEXT_SUFFIXES = (".tsv", ".csv")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse alone prints the usage block too)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def n_features_type(text):
    """An int, or a power written ``2**20`` (or ``2^20``)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:\*\*|\^)\s*(\d+)\s*", text)
    try:
        value = int(match[1]) ** int(match[2]) if match else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int or a power such as 2**20, got {text!r}") from None
    if not 1 <= value < 2**40:
        raise argparse.ArgumentTypeError(f"must be between 1 and 2**40, got {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def _column(text):
    """A column given as a position (int) or a header name (str)."""
    try:
        return int(text)
    except ValueError:
        return text


def _data_options():
    """Options that say how to read DATA; shared by the three subcommands."""
    p = _Parser(add_help=False)
    g = p.add_argument_group("data")
    g.add_argument("--format", choices=("auto", "svmlight", "text"), default="auto",
                   help="file format; auto: text for names ending in .tsv or .csv (before "
                   ".gz/.bz2/.xz), svmlight otherwise (default: %(default)s)")
    g.add_argument("--chunk-rows", type=_positive_int, default=100_000, metavar="N",
                   help="lines read at a time; memory grows with it (default: %(default)s)")
    g.add_argument("--zero-based", choices=("auto", "yes", "no"), default="auto",
                   help="svmlight: whether feature indices start at 0; auto decides from the "
                   "first chunk, as scikit-learn's load_svmlight_file (default: %(default)s)")
    g.add_argument("--label-column", type=_column, default=-1, metavar="COL",
                   help="text: position (negative from the end) or header name of the "
                   "label (default: the last column)")
    g.add_argument("--text-columns", default=None, metavar="COL,COL",
                   help="text: comma-separated columns joined into the document (default: "
                   "all but the label)")
    g.add_argument("--delimiter", default=None,
                   help="text: field separator (default: ',' for .csv, tab otherwise)")
    g.add_argument("--no-header", dest="header", action="store_false",
                   help="text: the files have no header line")
    return p


def build_parser():
    data = _data_options()
    parser = _Parser(
        prog="sparseopt",
        description="Train and use sparse linear models on svmlight or delimited text "
        "files larger than memory. Files may be plain, .gz, .bz2 or .xz. Text is "
        "featurized by HashingVectorizer(n_features, alternate_sign=False, norm='l2') "
        "on the text columns joined with spaces; labels are numbers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser(
        "fit", parents=[data], help="train a model by streaming the files",
        description="Train by streaming DATA (in order, for each epoch) and write the model "
        "(.npz, loadable with sparseopt.load). Prints a table with one line per epoch: "
        "rows, seconds, rows/s, progressive training loss, hold-out loss.")
    fit.add_argument("data", nargs="+", metavar="DATA", help="training files")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="model file to write (.npz)")
    fit.add_argument("--loss", default="log_loss",
                     choices=CLASSIFIER_LOSSES + REGRESSOR_LOSSES,
                     help="classification: log_loss, hinge, modified_huber; regression: "
                     "squared_error, huber, epsilon_insensitive (default: %(default)s)")
    fit.add_argument("--optimizer", default="adagrad", choices=OPTIMIZERS,
                     help="(default: %(default)s)")
    fit.add_argument("--epochs", type=_positive_int, default=3, help="(default: %(default)s)")
    fit.add_argument("--eta0", type=float, default=None,
                     help="step size (default: the optimizer's, see the README)")
    fit.add_argument("--alpha", type=float, default=None,
                     help="regularization strength (default: the optimizer's)")
    fit.add_argument("--penalty", default="l2", choices=("l2", "l1", "elasticnet", "none"),
                     help="(default: %(default)s)")
    fit.add_argument("--l1-ratio", type=float, default=0.15,
                     help="elasticnet mix (default: %(default)s)")
    fit.add_argument("--n-features", type=n_features_type, default=2**20, metavar="N",
                     help="number of columns: svmlight indices must fit, text is hashed "
                     "into it; an int or a power such as 2**20 (default: 2**20)")
    fit.add_argument("--classes", default=None, metavar="A,B,...",
                     help="classification: every label, comma-separated (default: found by "
                     "one extra pass over the data before training)")
    fit.add_argument("--holdout-every", type=_positive_int, default=None, metavar="K",
                     help="hold out every K-th chunk (never trained on) and report its loss "
                     "after each epoch; K >= 2")
    fit.add_argument("--shuffle-buffer", type=_positive_int, default=None, metavar="B",
                     help="permute rows across B chunks at a time (memory: B chunks)")
    fit.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                     help="train in file order (by default the rows of each chunk are "
                     "permuted)")
    fit.add_argument("--seed", type=int, default=0,
                     help="seed of every permutation (default: %(default)s)")
    fit.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar with rows/s on stderr (default: when stderr is a "
                     "terminal and tqdm is installed)")
    fit.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict", parents=[data], help="write predictions, one line per row",
        description="Write one line per row of DATA: the probability of the second class "
        "for binary classifiers (the margin for hinge loss), the probabilities of all "
        "classes (tab-separated, in the order of the model's classes) for multiclass, "
        "the predicted value for regression.")
    predict.add_argument("model", metavar="MODEL", help="model file written by fit")
    predict.add_argument("data", nargs="+", metavar="DATA")
    predict.add_argument("-o", "--output", default="-", metavar="FILE",
                         help="where to write (default: standard output)")
    predict.set_defaults(run=run_predict)

    evaluate = commands.add_parser(
        "evaluate", parents=[data], help="print metrics of a model on labelled files",
        description="Print one 'name value' line per metric: rows, log_loss (when the "
        "loss gives probabilities), auc and accuracy for classifiers; rmse for "
        "regression. Predictions (not the data) are held in memory, for the AUC.")
    evaluate.add_argument("model", metavar="MODEL", help="model file written by fit")
    evaluate.add_argument("data", nargs="+", metavar="DATA")
    evaluate.set_defaults(run=run_evaluate)
    return parser


def _base_name(path):
    """Lower-case file name without its compression suffix ("a.tsv.gz" -> "a.tsv")."""
    name = os.path.basename(path).lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _data_format(args):
    """'svmlight' or 'text', for all of ``args.data`` (they must agree)."""
    if args.format != "auto":
        return args.format
    kinds = {"text" if _base_name(path).endswith(TEXT_SUFFIXES) else "svmlight"
             for path in args.data}
    if len(kinds) > 1:
        raise ValueError("DATA mixes text and svmlight files; pass --format")
    return kinds.pop()


def make_source(args, n_features, for_labels=True):
    """The chunk reader for ``args.data``."""
    from .stream import svmlight_chunks, text_chunks

    if _data_format(args) == "svmlight":
        zero_based = {"auto": "auto", "yes": True, "no": False}[args.zero_based]
        return svmlight_chunks(args.data, n_features, args.chunk_rows, zero_based)
    from sklearn.feature_extraction.text import HashingVectorizer

    delimiter = args.delimiter
    if delimiter is None:
        delimiter = "," if _base_name(args.data[0]).endswith(".csv") else "\t"
    text_columns = (None if args.text_columns is None
                    else [_column(c) for c in args.text_columns.split(",")])
    vectorizer = HashingVectorizer(n_features=n_features, alternate_sign=False, norm="l2")
    return text_chunks(args.data, vectorizer, args.chunk_rows, label_column=args.label_column,
                       text_columns=text_columns, delimiter=delimiter, header=args.header,
                       label_dtype=float if for_labels else str)


def _classes(text):
    try:
        return [float(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--classes must be comma-separated numbers, got {text!r}") from None


def run_fit(args):
    from . import persistence
    from .estimators import SparseClassifier, SparseRegressor
    from .stream import fit_stream

    _check_writable(args.output)
    classifier = args.loss in CLASSIFIER_LOSSES
    params = dict(loss=args.loss, optimizer=args.optimizer, eta0=args.eta0, alpha=args.alpha,
                  penalty=None if args.penalty == "none" else args.penalty,
                  l1_ratio=args.l1_ratio, shuffle=args.shuffle, random_state=args.seed)
    model = (SparseClassifier if classifier else SparseRegressor)(**params)
    model._check_params()  # bad combinations fail now, not after a pass over the data
    classes = None
    if classifier and args.classes is not None:
        classes = _classes(args.classes)
    source = make_source(args, args.n_features)
    fit_stream(model, source, epochs=args.epochs, classes=classes,
               holdout_every=args.holdout_every, shuffle_buffer=args.shuffle_buffer,
               random_state=args.seed, progress=args.progress, verbose=not args.quiet)
    with open(args.output, "wb") as f:  # a file object: np.savez would append ".npz"
        persistence.save(model, f)
    if not args.quiet:
        print(f"model written to {args.output}")
    return 0


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist")


def _load(path):
    from .persistence import load

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        return load(path)
    except (ValueError, OSError, KeyError) as exc:
        raise ValueError(f"{path} is not a sparseopt model file ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def _predictions(model, X):
    """What ``predict`` writes for rows ``X``: 1-D or 2-D float array."""
    if not hasattr(model, "classes_"):
        return model.predict(X)
    if model.loss == "hinge":
        return model.decision_function(X)
    proba = model.predict_proba(X)
    return proba[:, 1] if proba.shape[1] == 2 else proba


def run_predict(args):
    import numpy as np

    model = _load(args.model)
    source = make_source(args, model.n_features_in_, for_labels=False)
    out = sys.stdout if args.output == "-" else None
    if out is None:
        _check_writable(args.output)
    f = out or open(args.output, "w")
    try:
        for X, _ in source:
            np.savetxt(f, _predictions(model, X), fmt="%.10g", delimiter="\t")
    finally:
        if out is None:
            f.close()
    return 0


def run_evaluate(args):
    import numpy as np

    from .stream import _check_labels

    model = _load(args.model)
    source = make_source(args, model.n_features_in_)
    ys, scores = [], []
    for index, chunk in enumerate(source):
        X, y = chunk
        if hasattr(model, "classes_"):
            _check_labels(chunk, index, y, model.classes_)
        ys.append(y)
        scores.append(_scores(model, X))
    if not ys:
        raise ValueError("no rows in DATA")
    y = np.concatenate(ys)
    score = np.concatenate(scores)
    for name, value in metrics(model, y, score):
        print(f"{name} {value}")
    return 0


def _scores(model, X):
    """Per-row scores to keep for the metrics: probabilities, margins or values."""
    if not hasattr(model, "classes_"):
        return model.predict(X)
    if model.loss == "hinge":
        return model.decision_function(X)
    return model.predict_proba(X)


def metrics(model, y, score):
    """``[(name, value)]`` for true labels ``y`` and the scores of ``_scores``."""
    import numpy as np
    from sklearn import metrics as skm

    result = [("rows", len(y))]
    if not hasattr(model, "classes_"):
        return result + [("rmse", f"{float(np.sqrt(np.mean((score - y) ** 2))):.6g}")]
    classes = model.classes_
    if model.loss == "hinge":
        predicted = (classes[(score > 0).astype(int)] if score.ndim == 1
                     else classes[np.argmax(score, axis=1)])
    else:
        predicted = classes[np.argmax(score, axis=1)]
        # modified_huber gives probabilities of exactly 0: clip, as scikit-learn's log_loss
        # did before it stopped clipping, so one confident mistake is not infinite.
        clipped = np.clip(score, 1e-15, 1.0)
        clipped /= clipped.sum(axis=1, keepdims=True)
        result.append(("log_loss", f"{skm.log_loss(y, clipped, labels=classes):.6g}"))
    if len(np.unique(y)) < 2:
        auc = "nan"  # undefined with one class present
    elif len(classes) == 2:
        positive = score if score.ndim == 1 else score[:, 1]
        auc = f"{skm.roc_auc_score(y == classes[1], positive):.6g}"
    elif model.loss == "hinge" or len(np.unique(y)) < len(classes):
        auc = "nan"  # one-vs-rest AUC needs probabilities and every class present
    else:
        auc = f"{skm.roc_auc_score(y, score, multi_class='ovr', labels=classes):.6g}"
    result.append(("auc", auc))
    result.append(("accuracy", f"{float(np.mean(predicted == y)):.6g}"))
    return result


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv=None):
    """Run the command line; returns the exit status (0 success, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = lambda message, *_, **__: print(
        f"sparseopt {args.command}: warning: {message}", file=sys.stderr)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader of our output went away (``| head``): stop quietly, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"sparseopt {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one readable line, not a traceback
        if os.environ.get("SPARSEOPT_TRACEBACK"):
            raise
        print(f"sparseopt {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
