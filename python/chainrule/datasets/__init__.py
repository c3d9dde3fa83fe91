"""Small image-classification datasets for examples, tests and benchmarks.

All loaders return ``((X_train, y_train), (X_test, y_test))`` with ``X`` a
floating array scaled to [0, 1] (rows of features unless ``flatten=False``)
and ``y`` int64 class labels.

* :func:`load_digits` - 8x8 handwritten digits (UCI optdigits, 1797 samples),
  shipped inside the package, no network needed.
* :func:`load_mnist`, :func:`load_fashion_mnist` - 28x28 images, 60000 + 10000,
  read from a directory or downloaded once into a cache, always checked
  against the official SHA-256 checksums.
* :func:`read_idx` - reader for the IDX format (raw or gzip) those use.
* :func:`load` - the above by name, for the command line.
"""

from __future__ import annotations

from ._digits import load_digits
from ._idx import read_idx
from ._mnist import ChecksumError, DownloadError, default_cache_dir, load_fashion_mnist, load_mnist

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DownloadError",
    "default_cache_dir",
    "load",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]

#: Names accepted by :func:`load`.
DATASETS = ("digits", "mnist", "fashion-mnist")


def load(name, path=None, **kw):
    """Load dataset ``name`` ("digits", "mnist" or "fashion-mnist").

    ``path`` and the keyword arguments go to the dataset's loader
    (``load_mnist``, ``load_fashion_mnist``); ``digits`` is built in, so it
    takes no ``path`` and only ``dtype`` and ``flatten``. Case, and ``_`` in
    place of ``-``, do not matter in ``name``.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key == "digits":
        if path is not None:
            raise ValueError("the digits dataset is built into chainrule; it takes no path")
        return load_digits(**kw)
    if key == "mnist":
        return load_mnist(path, **kw)
    if key == "fashion-mnist":
        return load_fashion_mnist(path, **kw)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
