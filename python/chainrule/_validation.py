"""Input checks shared by the models: convert once, deliberately, or refuse with a clear error."""

import os

import numpy as np

from . import _core

_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype):
    """np.float32 or np.float64 from a name or a numpy dtype."""
    try:  # np.dtype(None) is float64: None is refused rather than taken for a choice
        resolved = np.dtype(dtype).type if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def _first_nonfinite(a):
    if _core_checks(a):
        bad = np.unravel_index(_core.first_nonfinite(a), a.shape)
    else:
        bad = np.argwhere(~np.isfinite(a))[0]
    return tuple(int(i) for i in bad)


def _place(where):
    return f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where[0]}"


def _core_checks(a):
    """Whether the core's one-pass test takes a (C-contiguous float32 or float64)."""
    return (a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and a.ndim > 0
            and a.size > 0)


def _all_finite(a):
    """Whether every element of the float array a is finite, without a temporary of a's size.

    The core tests float32 and float64 in one pass (cpp/chainrule/finite.hpp). Otherwise: NaN
    propagates through max and min, and an infinity makes max - min infinite, so a finite
    max - min proves every element finite; only when it is not (which finite extremes of opposite
    sign can also cause, by overflowing) is the exact element-wise test run."""
    if _core_checks(a):
        return _core.first_nonfinite(a) < 0
    if a.size < 1 << 14:  # small: the exact test is as fast and needs no fallback
        return bool(np.isfinite(a).all())
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.max() - a.min()):
            return True
    return bool(np.isfinite(a).all())


def check_finite(a, name):
    if not _all_finite(a):
        where = _place(_first_nonfinite(a))
        raise ValueError(f"{name} contains NaN or infinity (first at {where})")


def _as_array(a, name):
    """np.asarray(a), with ragged nested lists and other non-arrays refused by name."""
    if type(a).__module__.startswith("scipy.sparse"):  # asarray would wrap it in an object
        raise TypeError(f"{name} is a sparse matrix; the core is dense: pass {name}.toarray() "
                        f"(chainrule.sklearn's estimators accept sparse input)")
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} is not a rectangular array of numbers ({e})") from None


def _convert(a, dtype, name):
    """a as a C-contiguous array of dtype, refusing non-finite values and values that overflow
    dtype (a float64 1e300 is finite but becomes inf in float32)."""
    if a.dtype.kind == "f":
        check_finite(a, name)
    with np.errstate(over="ignore", invalid="ignore"):
        converted = np.ascontiguousarray(a, dtype=dtype)
    # Only a narrowing float conversion (float64 to float32) can overflow: integers up to 2**64
    # and floats widened or kept as they are stay finite.
    narrowing = a.dtype.kind == "f" and a.dtype.itemsize > np.dtype(dtype).itemsize
    if narrowing and not _all_finite(converted):
        where = _first_nonfinite(converted)
        raise ValueError(f"{name} holds {a[where].item()!r} at {_place(where)}, which overflows "
                         f"{np.dtype(dtype).name}")
    return converted


def as_features(X, n_features, dtype, name="X"):
    """X as a C-contiguous (n, n_features) array of dtype; the same object when it already is.

    Integers and booleans are converted to dtype deliberately; object, string, complex and other
    non-real dtypes are refused with a TypeError."""
    X = _as_array(X, name)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (reshape a single sample with X.reshape(1, -1))" if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    if X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features, the model expects {n_features}")
    return _convert(X, dtype, name)


def as_targets(y, n_samples, n_outputs, loss, dtype):
    """Targets in the form the core takes: int32 labels for cross-entropy with class indices,
    else a C-contiguous (n, n_outputs) float array."""
    y = _as_array(y, "y")
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y must hold numbers, got dtype {y.dtype}")
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0] if y.ndim else 0}")
    if loss == "cross_entropy" and y.ndim == 2 and y.shape[1] == 1 < n_outputs:
        y = y.ravel()  # a column of class indices (Keras' sparse labels), not one-hot rows
    if loss == "cross_entropy" and y.ndim == 1:
        return as_labels(y, n_outputs)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"y must have shape ({n_samples}, {n_outputs}) for this model, "
                         f"got {y.shape}")
    y = _convert(y, dtype, "y")
    if loss == "binary_cross_entropy":  # probabilities: outside [0, 1] the cost is meaningless
        outside = np.flatnonzero((y < 0) | (y > 1))
        if outside.size:
            row, column = divmod(int(outside[0]), y.shape[1])
            raise ValueError(f"binary_cross_entropy targets must be in [0, 1], got "
                             f"{y[row, column].item()!r} at row {row}, column {column}")
    return y


def as_labels(y, n_classes):
    """Class indices 0..n_classes-1 as int32."""
    if y.dtype.kind == "f":
        check_finite(y, "y")
        if not np.all(y == np.round(y)):
            raise ValueError("class labels must be whole numbers")
    if y.dtype.kind == "b":
        y = y.astype(np.int32)
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(f"label {y[bad[0]].item()!r} at index {bad[0]} is outside [0, {n_classes}): "
                         f"the output layer has {n_classes} units")
    return np.ascontiguousarray(y, dtype=np.int32)


def seed_value(seed):
    """A seed numpy's SeedSequence takes: None or a non-negative integer."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None, got {seed}")
    return int(seed)


def finite_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_network_size(sizes, itemsize, n_buffers=2):
    """Refuse architectures whose buffers cannot fit in memory before anything is allocated:
    the parameter and gradient buffers (n_buffers flat buffers) and the float64 initial weights
    of the largest layer. A MemoryError naming the size beats an allocation failure deep in C++
    or, with memory overcommit, the kernel killing the process when the pages are touched."""
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))  # Python ints: no overflow
    largest_layer = max(a * b for a, b in zip(sizes, sizes[1:]))
    need = n_params * itemsize * n_buffers + largest_layer * 8  # + float64 initial weights
    if n_params >= 2 ** 62 // max(itemsize, 1):
        raise ValueError(f"a network of sizes {list(sizes)} has {n_params:,} parameters, more "
                         f"than can be indexed")
    available = _physical_memory()
    if available is not None and need > available:
        raise MemoryError(f"a network of sizes {list(sizes)} has {n_params:,} parameters and "
                          f"needs about {need / 2 ** 30:,.1f} GiB for its weights and "
                          f"gradients alone; this machine has {available / 2 ** 30:,.1f} GiB")
    return n_params


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def positive_int(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def positive_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value
