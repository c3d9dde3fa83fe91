"""chainrule: dense neural networks trained by backpropagation, with a C++/Eigen core."""

import os
import sys

from ._dispatch import load_core as _load_core

# OpenMP workers that spin between the core's products take CPU time from the thread doing the
# serial work (activations, updates); on small and virtual machines sleeping at once measured
# up to 2x faster (docs/performance.md). Only a default: OpenMP reads it once, at load.
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
    set_num_threads(int(os.environ["CHAINRULE_NUM_THREADS"]))
