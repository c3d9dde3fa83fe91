"""The 8x8 handwritten digits shipped inside the package (UCI optdigits)."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_digits"]

DIGITS_FILE = "digits.npz"
N_DIGITS = 1797
N_DIGITS_TEST = 355  # every fifth sample of each class, in file order


def _float_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating-point type, got {dt}")
    return dt


def _read_digits_file():
    ref = resources.files(__package__).joinpath("data").joinpath(DIGITS_FILE)
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        images = z["images"]
        labels = z["labels"]
    if images.shape != (N_DIGITS, 8, 8) or labels.shape != (N_DIGITS,):
        raise ValueError(
            f"packaged {DIGITS_FILE} is damaged: images {images.shape}, labels {labels.shape}"
        )
    return images, labels


def load_digits(*, dtype=np.float32, flatten=True):
    """Load the 8x8 handwritten digits (1797 samples, classes 0..9).

    The data is the UCI "Optical Recognition of Handwritten Digits" set by
    E. Alpaydin and C. Kaynak (CC BY 4.0), the same 1797 samples that
    scikit-learn ships, stored inside this package; nothing is downloaded.

    The split is fixed and stratified: within each class, in the order of
    the original file, every fifth sample is a test sample. That gives 1442
    training and 355 test samples (140..147 and 34..36 per class). The file's
    last samples come from writers unlike the rest, so a sequential split
    would test on a different population than it trains on.

    Parameters
    ----------
    dtype : floating dtype, default numpy.float32
        dtype of the images. Pixel counts 0..16 are divided by 16, so values
        lie in [0, 1].
    flatten : bool, default True
        Return images as rows of 64 features, shape ``(n, 64)``; otherwise
        ``(n, 8, 8)``.

    Returns
    -------
    ((X_train, y_train), (X_test, y_test))
        ``X`` of ``dtype``, ``y`` int64 labels 0..9.
    """
    dt = _float_dtype(dtype)
    images, labels = _read_digits_file()
    X = np.divide(images, 16, dtype=dt)
    if flatten:
        X = X.reshape(len(X), 64)
    y = labels.astype(np.int64)
    test = _test_mask(y)
    return (X[~test], y[~test]), (X[test], y[test])


def _test_mask(labels):
    """True for every fifth sample of each class, counted in file order."""
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        where = labels == c
        rank[where] = np.arange(where.sum())
    test = rank % 5 == 4
    assert test.sum() == N_DIGITS_TEST
    return test
