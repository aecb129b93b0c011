"""``python -m bench``: the benchmark study of sparseopt (see ``bench/study.py``)."""

import argparse
import sys

from .study import OPTIMIZERS, Config, run


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark every sparseopt optimizer against scikit-learn's SGDClassifier "
        "and the exact L2 optimum on synthetic rare-feature data and on the shipped PyPI "
        "sample; writes PNG figures, results.md and results.json.",
    )
    p.add_argument("--out", default="bench/results",
                   help="output directory (default: %(default)s)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="run the real-data part on this file instead of the shipped sample "
                   "(PyPI TSV format or svmlight, via bench.data_io.load_dataset)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of every method (default: 3)")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                   help="comma-separated subset of %(default)s")
    p.add_argument("--quick", action="store_true",
                   help="small problems and grids: the whole run in well under a minute")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    opts = tuple(o.strip() for o in args.optimizers.split(",") if o.strip())
    bad = [o for o in opts if o not in OPTIMIZERS]
    if bad or not opts:
        p.error(f"unknown optimizers {bad}; choose from {','.join(OPTIMIZERS)}")
    return Config(out=args.out, data=args.data, epochs=args.epochs, optimizers=opts,
                  quick=args.quick, seed=args.seed)


def main(argv=None):
    run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
