"""chainrule: dense neural networks trained by backpropagation, with a C++/Eigen core."""

import os

from . import _core, datasets, initializers, optimizers
from ._core import get_num_threads, set_num_threads
from .history import History
from .layers import Dense, Dropout
from .model import Sequential
from .serialization import load

__version__ = "0.1.0"
__all__ = ["Dense", "Dropout", "History", "Sequential", "datasets", "get_num_threads",
           "initializers", "load", "optimizers", "set_num_threads", "__version__"]

if os.environ.get("CHAINRULE_NUM_THREADS"):
    set_num_threads(int(os.environ["CHAINRULE_NUM_THREADS"]))
