"""Session set-up: the kernels are compiled in two processes at once before the tests
start (see ``warm_kernels.py``)."""

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import sparseopt

WARM = Path(__file__).with_name("warm_kernels.py")


# Below this many tests (a file or a few, while developing) the tests compile only what
# they use, one after the other: the warm-up costs about 2.5 minutes.
WARM_FROM = 300


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels(request):
    if len(request.session.items) < WARM_FROM:
        yield
        return
    start = time.perf_counter()
    # The cache is per source file: the processes must import the sparseopt the tests
    # import (the source tree when run from the repository root, not an installed copy).
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(sparseopt.__file__).parents[1]), env.get("PYTHONPATH")]))
    procs = [subprocess.Popen([sys.executable, str(WARM), str(part)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for part in (0, 1)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            warnings.warn(f"warm_kernels.py failed (the tests compile what they need):\n"
                          f"{err[-2000:]}", stacklevel=1)
    print(f"\nkernels compiled in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    yield
