"""chainrule: dense neural networks trained by backpropagation, with a C++/Eigen core."""

import os
import sys

from ._dispatch import load_core as _load_core

# How idle OpenMP workers wait between the core's products (docs/performance.md, "Threads on
# small and shared machines"). Spinning without end took CPU from the thread doing the serial
# work, and on virtual machines a woken sleeper arrives tens of µs late for every product. So:
# sleep (passive), but with libgomp spin first for 300 000 rounds (about 4 ms at the 12 ns a
# `pause` took on the Intel VM), which spans the gaps inside a training step. On Zen 4, 10 000
# rounds took 2 threads at batch 256 from 1.51x to 1.69x one thread's speed; on the Intel VM
# 10 000 was too short, and 300 000 gained another 10-20 %. Only defaults: OMP_WAIT_POLICY is
# left alone where the user set it, GOMP_SPINCOUNT where the user set either (an explicit spin
# count overrides the policy's in libgomp). OpenMP reads them once, at load.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "300000"
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# The fastest build of the C++ core this CPU runs, under the one name the package uses.
_core = _load_core()
sys.modules[__name__ + "._core"] = _core

from . import callbacks, datasets, initializers, optimizers, schedules  # noqa: E402
from ._core import get_num_threads, set_num_threads  # noqa: E402
from .history import History
from .layers import Dense, Dropout
from .model import Sequential
from .serialization import ModelFileError, load
from . import plots  # noqa: E402  (imports matplotlib only when a plot is drawn)
from .backprop import backprop, explain, gradcheck  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Dense", "Dropout", "History", "ModelFileError", "Sequential", "backprop",
           "callbacks", "datasets", "explain", "get_num_threads", "gradcheck", "initializers",
           "load", "optimizers", "plots", "schedules", "set_num_threads", "__version__"]

if os.environ.get("CHAINRULE_NUM_THREADS"):
    try:
        set_num_threads(int(os.environ["CHAINRULE_NUM_THREADS"]))
    except ValueError:  # a bad setting should not make the package unimportable
        import warnings

        warnings.warn(f"CHAINRULE_NUM_THREADS={os.environ['CHAINRULE_NUM_THREADS']!r} is not "
                      f"a positive integer; ignored", RuntimeWarning, stacklevel=2)
