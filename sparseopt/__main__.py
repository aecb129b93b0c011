"""``python -m sparseopt``: the command line (see ``sparseopt.cli``)."""

import sys

from .cli import main

sys.exit(main())
